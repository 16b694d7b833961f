// Phase timings on stderr when SKIFF_RUNC_TRACE is set (used to find where launch time goes).

#if canImport(Glibc)
import Glibc
#endif

enum Trace {
    static let enabled = getenv("SKIFF_RUNC_TRACE") != nil
    nonisolated(unsafe) static var last: UInt64 = 0

    static func mark(_ what: @autoclosure () -> String) {
        guard enabled else { return }
        let now = Sys.monotonicNanos()
        let us = last == 0 || now < last ? 0 : (now - last) / 1000
        last = now
        let line = "trace[\(getpid())] +\(us)us \(what())\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
