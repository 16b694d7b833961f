// Plain-Swift helpers over Glibc: files, directories, /proc, time. Every failure becomes a
// LauncherError naming the step, the syscall and the path. No Foundation (see module docs).

#if canImport(Glibc)
import Glibc
#endif
import CLinux

enum Sys {
    /// Repeats a call while it fails with EINTR.
    @inline(__always)
    static func retrying<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let r = body()
            if r == -1 && errno == EINTR { continue }
            return r
        }
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0, step: String) throws(LauncherError) -> Int32 {
        let fd = retrying { Glibc.open(path, flags | O_CLOEXEC, mode) }
        if fd < 0 { throw .sys(step, "open", path) }
        return fd
    }

    static func readAll(fd: Int32, step: String, path: String? = nil) throws(LauncherError) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { p in retrying { Glibc.read(fd, p.baseAddress, p.count) } }
            if n < 0 { throw .sys(step, "read", path) }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    static func writeAll(fd: Int32, _ bytes: [UInt8], step: String, path: String? = nil) throws(LauncherError) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { p in retrying { Glibc.write(fd, p.baseAddress! + off, p.count - off) } }
            if n < 0 { throw .sys(step, "write", path) }
            off += n
        }
    }

    static func readFile(_ path: String, step: String) throws(LauncherError) -> [UInt8] {
        let fd = try open(path, O_RDONLY, step: step)
        defer { close(fd) }
        return try readAll(fd: fd, step: step, path: path)
    }

    static func readString(_ path: String, step: String) throws(LauncherError) -> String {
        String(decoding: try readFile(path, step: step), as: UTF8.self)
    }

    /// The file's text, or nil when it cannot be read (missing, permission...).
    static func readStringIfPresent(_ path: String) -> String? {
        try? readString(path, step: "read")
    }

    /// Writes the whole string to an existing file (cgroup and /proc files).
    static func writeString(_ path: String, _ s: String, step: String) throws(LauncherError) {
        let fd = try open(path, O_WRONLY, step: step)
        defer { close(fd) }
        try writeAll(fd: fd, Array(s.utf8), step: step, path: path)
    }

    /// Write-to-temp then rename, so readers never see a half-written file.
    static func writeAtomic(_ path: String, _ s: String, mode: mode_t = 0o600, step: String) throws(LauncherError) {
        let tmp = path + ".tmp"
        let fd = try open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode: mode, step: step)
        do {
            try writeAll(fd: fd, Array(s.utf8), step: step, path: tmp)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw .sys(step, "rename", path, errno: e)
        }
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func mkdirAll(_ path: String, mode: mode_t = 0o755, step: String) throws(LauncherError) {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for comp in path.split(separator: "/") {
            prefix += "/" + comp
            if mkdir(prefix, mode) != 0 && errno != EEXIST { throw .sys(step, "mkdir", prefix) }
        }
    }

    /// Names in a directory, without `.` and `..`; empty when it cannot be read.
    static func listDirectory(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = String(cString: clx_dirent_name(e))
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// Subdirectories of a directory (d_type from readdir: no stat per entry, which matters in
    /// cgroup directories full of control files).
    static func listSubdirectories(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            guard clx_dirent_type(e) == UInt8(DT_DIR) else { continue }
            let name = String(cString: clx_dirent_name(e))
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// Removes a directory tree without following symlinks or crossing into other mounts.
    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in listDirectory(path) {
                let child = path + "/" + name
                var cst = stat()
                if lstat(child, &cst) == 0, (cst.st_mode & S_IFMT) == S_IFDIR, cst.st_dev != st.st_dev { continue }
                removeTree(child)
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func currentDirectory() -> String {
        guard let p = getcwd(nil, 0) else { return "/" }
        defer { free(p) }
        return String(cString: p)
    }

    /// Absolute form of `path` against the current directory, with `.`/`..` folded.
    static func absolute(_ path: String) -> String {
        let base = path.hasPrefix("/") ? path : currentDirectory() + "/" + path
        return cleanPath(base)
    }

    /// Lexical clean: collapses `//`, `.` and `..`; always absolute. (Byte loop: this runs for
    /// every mount, and split/joined cost more than the work.)
    static func cleanPath(_ path: String) -> String {
        var out: [UInt8] = [UInt8(ascii: "/")]
        out.reserveCapacity(path.utf8.count + 1)
        var comp: [UInt8] = []
        func flush() {
            if comp.isEmpty || comp == [UInt8(ascii: ".")] {
            } else if comp == [UInt8(ascii: "."), UInt8(ascii: ".")] {
                if out.count > 1 {
                    while out.last != UInt8(ascii: "/") { out.removeLast() }
                    if out.count > 1 { out.removeLast() }
                }
            } else {
                if out.count > 1 { out.append(UInt8(ascii: "/")) }
                out += comp
            }
            comp.removeAll(keepingCapacity: true)
        }
        for b in path.utf8 {
            if b == UInt8(ascii: "/") { flush() } else { comp.append(b) }
        }
        flush()
        return String(decoding: out, as: UTF8.self)
    }

    /// Number of threads in this process (one stat of /proc/self/task).
    static func threadCount() -> Int { Int(clx_thread_count()) }

    /// Fields of /proc/PID/stat after the command name: [0] = state, [19] = start time.
    static func procStat(_ pid: Int32) -> [Substring]? {
        guard let s = readStringIfPresent("/proc/\(pid)/stat"), let close = s.lastIndex(of: ")") else { return nil }
        return s[s.index(after: close)...].split(separator: " ")
    }

    /// Start time of a process in clock ticks since boot; tells a pid apart from a reused one.
    static func procStartTime(_ pid: Int32) -> UInt64? {
        guard let f = procStat(pid), f.count > 19 else { return nil }
        return UInt64(f[19])
    }

    /// One-letter process state (`R`, `S`, `Z`, ...).
    static func procState(_ pid: Int32) -> Character? {
        procStat(pid)?.first?.first
    }

    static func now() -> timespec {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts
    }

    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// RFC 3339 UTC time with nanoseconds, e.g. `2026-11-22T10:00:00.123456789Z`.
    static func rfc3339(_ ts: timespec = now()) -> String {
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let ns = String(ts.tv_nsec)
        return "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1, 2))-\(pad(tmv.tm_mday, 2))T"
            + "\(pad(tmv.tm_hour, 2)):\(pad(tmv.tm_min, 2)):\(pad(tmv.tm_sec, 2))."
            + String(repeating: "0", count: 9 - ns.count) + ns + "Z"
    }

    static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var rem = timespec()
        while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
    }

    /// A NULL-terminated `char *[]` for execve. The strings are leaked on purpose: the caller execs.
    static func cStringArray(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] {
        strings.map { strdup($0) } + [nil]
    }

    /// Environment of this process as `KEY=VALUE` strings.
    static func environment() -> [String] {
        var out: [String] = []
        guard var p = clx_environ() else { return out }
        while let s = p.pointee {
            out.append(String(cString: s))
            p += 1
        }
        return out
    }
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s = s.dropLast() }
        return s
    }
}

extension String {
    func trimmed() -> String { String(Substring(self).trimmingCharacters()) }
}

/// open(2) flag hidden by Glibc's module without _GNU_SOURCE (asm-generic value).
let O_PATH: Int32 = 0o10000000
