import Glibc

/// Wall-clock time as the CRI wants it: nanoseconds since the Unix epoch.
public func unixNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// A monotonic reading in nanoseconds, for durations in logs.
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// RFC 3339 with nanoseconds in UTC (`2026-11-22T10:00:00.123456789Z`), the CRI log line format.
public func rfc3339Nano(_ nanos: Int64) -> String {
    var seconds = time_t(nanos / 1_000_000_000)
    let fraction = nanos % 1_000_000_000
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
        + "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))"
        + ".\(pad(Int(fraction), 9))Z"
}
