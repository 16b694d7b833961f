// skiff-monitor: the parent of one container's init, like CRI-O's conmon or containerd's shim.
//
//   skiff-monitor --runtime PATH --runtime-root DIR --id ID --bundle DIR --dir DIR
//                 [--log FILE] [--oom-file FILE] [--sync-fd N]
//
// It detaches from skiffd (double fork, own session) so the container outlives skiffd, becomes a child
// subreaper, runs `<runtime> create` with the container's stdout/stderr on pipes, and reports "ok <pid>"
// or "error <message>" on the sync fd. Then it copies the pipes into the CRI log file
// (`<RFC3339Nano> stdout|stderr F|P <text>`), reopens the log on SIGUSR1 (ReopenContainerLog), and when
// the init exits writes `<dir>/exit.json` atomically: exit code (128+signal when killed), finish time in
// Unix ns, and whether the cgroup saw an OOM kill. Single-threaded, Glibc only: it must stay small.
import CLinux
import CProcessSupport
import Glibc

struct Options {
    var runtime = ""
    var runtimeRoot = ""
    var id = ""
    var bundle = ""
    var dir = ""
    var log: String?
    var oomFile: String?
    var syncFD: Int32 = -1
}

func fail(_ message: String) -> Never {
    writeAll(2, Array("skiff-monitor: \(message)\n".utf8))
    exit(1)
}

func parse(_ args: [String]) -> Options {
    var o = Options()
    var i = 1
    func value() -> String {
        i += 1
        guard i < args.count else { fail("\(args[i - 1]) needs a value") }
        return args[i]
    }
    while i < args.count {
        switch args[i] {
        case "--runtime": o.runtime = value()
        case "--runtime-root": o.runtimeRoot = value()
        case "--id": o.id = value()
        case "--bundle": o.bundle = value()
        case "--dir": o.dir = value()
        case "--log": o.log = value()
        case "--oom-file": o.oomFile = value()
        case "--sync-fd": o.syncFD = Int32(value()) ?? -1
        default: fail("unknown argument \(args[i])")
        }
        i += 1
    }
    if o.runtime.isEmpty || o.id.isEmpty || o.bundle.isEmpty || o.dir.isEmpty {
        fail("--runtime, --id, --bundle and --dir are required")
    }
    return o
}

// MARK: - small I/O helpers

func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        off += n
    }
}

func writeFileAtomically(_ path: String, _ text: String) {
    let tmp = path + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return }
    writeAll(fd, Array(text.utf8))
    fsync(fd)
    close(fd)
    rename(tmp, path)
}

func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buf[0..<n]
        if out.count > 1 << 20 { break }
    }
    return String(decoding: out, as: UTF8.self)
}

func nowNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func pad(_ v: Int, _ w: Int) -> String {
    let s = String(v)
    return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
}

func timestamp() -> String {
    let ns = nowNanos()
    var secs = time_t(ns / 1_000_000_000)
    var t = tm()
    gmtime_r(&secs, &t)
    return "\(pad(Int(t.tm_year) + 1900, 4))-\(pad(Int(t.tm_mon) + 1, 2))-\(pad(Int(t.tm_mday), 2))T"
        + "\(pad(Int(t.tm_hour), 2)):\(pad(Int(t.tm_min), 2)):\(pad(Int(t.tm_sec), 2)).\(pad(Int(ns % 1_000_000_000), 9))Z"
}

func jsonEscape(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += "\\u00" + (u.value < 0x10 ? "0" : "") + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
        }
    }
    return out
}

// MARK: - CRI log writer

/// Splits a stream into CRI log lines. A line longer than `maxLine` is written in `P` (partial) pieces
/// followed by a final `F` piece, so a reader can rebuild it and no line blocks the pipe.
struct LogStream {
    let name: String
    var pending: [UInt8] = []
    static let maxLine = 16 * 1024

    mutating func consume(_ bytes: ArraySlice<UInt8>, into sink: (String, String, ArraySlice<UInt8>) -> Void) {
        pending += bytes
        var start = 0
        while true {
            let end = pending[start...].firstIndex(of: 0x0a)
            let available = (end ?? pending.count) - start
            if available > Self.maxLine {
                // Longer than a log line may be, complete or not: emit a partial piece.
                sink(name, "P", pending[start..<(start + Self.maxLine)])
                start += Self.maxLine
            } else if let end {
                sink(name, "F", pending[start..<end])
                start = end + 1
            } else {
                break
            }
        }
        pending.removeFirst(start)
    }

    mutating func flush(into sink: (String, String, ArraySlice<UInt8>) -> Void) {
        if !pending.isEmpty { sink(name, "F", pending[...]) }
        pending.removeAll()
    }
}

final class LogFile {
    let path: String?
    var fd: Int32 = -1

    init(path: String?) {
        self.path = path
        reopen()
    }

    func reopen() {
        if fd >= 0 { close(fd) }
        fd = -1
        guard let path else { return }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
    }

    func write(_ stream: String, _ tag: String, _ text: ArraySlice<UInt8>) {
        guard fd >= 0 else { return }
        var line = Array("\(timestamp()) \(stream) \(tag) ".utf8)
        line += text
        line.append(0x0a)
        writeAll(fd, line)
    }
}

// MARK: - main

/// The whole life of the monitor, in one function so that its state is plain locals (top-level code
/// would be main-actor isolated in Swift 6).
func monitorMain(_ arguments: [String]) -> Never {
    var options = parse(arguments)
    // Whatever skiffd leaked into us must not live as long as the container.
    skiff_close_descriptors_from(3, options.syncFD)

    // Detach: the first child returns to skiffd at once; the grandchild lives on in its own session.
    let first = fork()
    if first < 0 { fail("fork: \(String(cString: strerror(errno)))") }
    if first > 0 {
        var st: Int32 = 0
        waitpid(first, &st, 0)
        exit(0)
    }
    setsid()
    let second = fork()
    if second < 0 { fail("fork: \(String(cString: strerror(errno)))") }
    if second > 0 { _exit(0) }

    if clx_set_child_subreaper(1) != 0 { fail("prctl(PR_SET_CHILD_SUBREAPER): \(String(cString: strerror(errno)))") }
    writeFileAtomically(options.dir + "/monitor.pid", "\(getpid())\n")

    // Signals arrive through a signalfd so that the loop below stays a single poll().
    let handled: [Int32] = [SIGCHLD, SIGUSR1, SIGTERM, SIGINT, SIGHUP, SIGPIPE]
    let sigfd = skiff_signalfd_for(handled, Int32(handled.count))
    if sigfd < 0 { fail("signalfd: \(String(cString: strerror(errno)))") }

    var outPipe: [Int32] = [0, 0]
    var errPipe: [Int32] = [0, 0]
    if clx_pipe2(&outPipe, O_CLOEXEC) != 0 || clx_pipe2(&errPipe, O_CLOEXEC) != 0 { fail("pipe2: \(String(cString: strerror(errno)))") }

    func report(_ text: String) {
        guard options.syncFD >= 0 else { return }
        writeAll(options.syncFD, Array((text + "\n").utf8))
        close(options.syncFD)
        options.syncFD = -1
    }

    // Run `<runtime> create`: its stdio (and so the container's) are our pipes; errors go to runtime.log.
    let pidFile = options.dir + "/init.pid"
    let runtimeLog = options.dir + "/runtime.log"
    unlink(pidFile)
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    let createArgs = [options.runtime] + (options.runtimeRoot.isEmpty ? [] : ["--root", options.runtimeRoot])
        + ["--log", runtimeLog, "create", "--bundle", options.bundle, "--pid-file", pidFile, options.id]
    let creator = fork()
    if creator == 0 {
        skiff_unblock_all_signals()
        dup2(devNull, 0)
        dup2(outPipe[1], 1)
        dup2(errPipe[1], 2)
        if options.syncFD >= 0 { close(options.syncFD) }
        var cargs = createArgs.map { strdup($0) }
        cargs.append(nil)
        execv(options.runtime, &cargs)
        _exit(127)
    }
    if creator < 0 { report("error fork: \(String(cString: strerror(errno)))"); exit(1) }
    close(outPipe[1])
    close(errPipe[1])
    close(devNull)

    var status: Int32 = 0
    while waitpid(creator, &status, 0) < 0 && errno == EINTR {}
    let createOK = (status & 0x7f) == 0 && ((status >> 8) & 0xff) == 0
    guard createOK, let pidText = readSmallFile(pidFile), let initPid = Int32(pidText.filter { $0.isNumber }), initPid > 0 else {
        // Collect what the runtime said: its log, or what it printed on stderr.
        var message = ""
        var buf = [UInt8](repeating: 0, count: 4096)
        _ = fcntl(errPipe[0], F_SETFL, O_NONBLOCK)
        while true {
            let n = buf.withUnsafeMutableBytes { read(errPipe[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            message += String(decoding: buf[0..<n], as: UTF8.self)
        }
        if let log = readSmallFile(runtimeLog), !log.isEmpty { message += log }
        message = message.split(separator: "\n").suffix(5).joined(separator: "; ")
        if message.isEmpty { message = "\(options.runtime) create exited with status \(status >> 8)" }
        writeFileAtomically(options.dir + "/create.err", message)
        report("error " + message)
        exit(1)
    }
    report("ok \(initPid)")

    // Copy output until the init exits and the pipes are drained.
    let logFile = LogFile(path: options.log)
    var streams = [LogStream(name: "stdout"), LogStream(name: "stderr")]
    var fds = [outPipe[0], errPipe[0]]
    var open_ = [true, true]
    var exitStatus: Int32? = nil
    var exitedAt: Int64 = 0
    var drainDeadline: Int64 = 0
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    let sink: (String, String, ArraySlice<UInt8>) -> Void = { logFile.write($0, $1, $2) }

    while true {
        if exitStatus != nil && (!open_[0] && !open_[1] || nowNanos() > drainDeadline) { break }
        var pfds = [pollfd(fd: sigfd, events: Int16(POLLIN), revents: 0)]
        for i in 0..<2 where open_[i] { pfds.append(pollfd(fd: fds[i], events: Int16(POLLIN), revents: 0)) }
        let timeout: Int32 = exitStatus == nil ? -1 : 100
        let n = poll(&pfds, nfds_t(pfds.count), timeout)
        if n < 0 && errno != EINTR { break }
        for p in pfds where p.revents != 0 {
            if p.fd == sigfd {
                while true {
                    let signo = skiff_signalfd_next(sigfd)
                    if signo <= 0 { break }
                    switch signo {
                    case SIGCHLD:
                        var st: Int32 = 0
                        while true {
                            let pid = waitpid(-1, &st, WNOHANG)
                            if pid <= 0 { break }
                            if pid == initPid {
                                exitStatus = st
                                exitedAt = nowNanos()
                                // Processes that inherited the pipes may keep them open: drain, but boundedly.
                                drainDeadline = exitedAt + 2_000_000_000
                            }
                        }
                    case SIGUSR1:
                        logFile.reopen()
                    default:
                        break  // SIGTERM/SIGINT/SIGHUP: the monitor ends only when its container does.
                    }
                }
            } else if let i = fds.firstIndex(of: p.fd) {
                let r = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if r > 0 {
                    streams[i].consume(buffer[0..<r], into: sink)
                } else if r == 0 || (errno != EINTR && errno != EAGAIN) {
                    streams[i].flush(into: sink)
                    open_[i] = false
                }
            }
        }
    }
    for i in 0..<2 { streams[i].flush(into: sink) }

    let st = exitStatus ?? 0
    let signaled = (st & 0x7f) != 0
    let code = signaled ? 128 + (st & 0x7f) : (st >> 8) & 0xff
    var oomKilled = false
    if let oomFile = options.oomFile, let text = readSmallFile(oomFile) {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == "oom_kill", let count = Int(parts[1]), count > 0 { oomKilled = true }
        }
    }
    writeFileAtomically(
        options.dir + "/exit.json",
        "{\"exit_code\":\(code),\"signal\":\(signaled ? st & 0x7f : 0),\"finished_at\":\(exitedAt),\"oom_killed\":\(oomKilled),\"pid\":\(initPid)}\n")
    exit(0)
}

monitorMain(CommandLine.arguments)
