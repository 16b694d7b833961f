import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Small POSIX helpers for the store. Everything that walks or deletes trees works on file
/// descriptors and never follows symlinks: container upper dirs and layers are untrusted content.
enum FS {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func mkdirs(_ path: String, mode: mode_t = 0o700) throws(ImageError) {
        if isDirectory(path) { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try mkdirs(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw .posix("mkdir", path) }
    }

    static func readFile(_ path: String) throws(ImageError) -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { throw ImageError(.notFound, "open(\(path)): no such file") }
            throw .posix("open", path, errno: e)
        }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .posix("read", path)
            }
            if n == 0 { break }
            data.append(buffer, count: n)
        }
        return data
    }

    /// Writes `data` to a temp file beside `path`, fsyncs it, renames it over `path` and fsyncs the
    /// directory: readers see the old file or the new one, never a torn one, even after a crash.
    static func writeAtomically(_ path: String, _ data: Data, mode: mode_t = 0o600) throws(ImageError) {
        let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .posix("open", tmp) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            try writeAll(fd, data, tmp)
            guard fsync(fd) == 0 else { throw ImageError.posix("fsync", tmp) }
        }
        guard rename(tmp, path) == 0 else { throw .posix("rename", "\(tmp) -> \(path)") }
        ok = true
        fsyncDirectory((path as NSString).deletingLastPathComponent)
    }

    static func writeAll(_ fd: Int32, _ data: Data, _ path: String) throws(ImageError) {
        let result: Int32 = data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return 0
        }
        if result != 0 { throw .posix("write", path, errno: result) }
    }

    static func fsyncDirectory(_ path: String) {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    /// Names in a directory (not "." or ".."), as raw bytes without the terminating NUL.
    static func listDirectory(fd: Int32) throws(ImageError) -> [[UInt8]] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw .posix("fdopendir", "fd \(fd)")
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name: [UInt8] = withUnsafePointer(to: &entry.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { bytes in
                    Array(UnsafeBufferPointer(start: bytes, count: strlen(UnsafeRawPointer(bytes).assumingMemoryBound(to: CChar.self))))
                }
            }
            if name == [0x2e] || name == [0x2e, 0x2e] { continue }
            names.append(name)
        }
        return names
    }

    static func listDirectory(_ path: String) throws(ImageError) -> [String] {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return [] }
            throw .posix("open", path)
        }
        defer { close(fd) }
        return try listDirectory(fd: fd).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Removes `path` and everything below it without following symlinks. A missing path is fine.
    static func removeTree(_ path: String) throws(ImageError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw .posix("lstat", path)
        }
        if (st.st_mode & S_IFMT) != S_IFDIR {
            guard unlink(path) == 0 || errno == ENOENT else { throw .posix("unlink", path) }
            return
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .posix("open", path) }
        do {
            defer { close(fd) }
            try removeContents(fd: fd, path: path)
        }
        guard rmdir(path) == 0 || errno == ENOENT else { throw .posix("rmdir", path) }
    }

    /// Removes entry `name` of an open directory (a whole tree if it is a directory). Missing is fine.
    static func removeEntry(dirFD fd: Int32, name: [UInt8], shown: String) throws(ImageError) {
        let cname = name.map { CChar(bitPattern: $0) } + [0]
        var st = stat()
        guard fstatat(fd, cname, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return }
            throw .posix("fstatat", shown)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let child = openat(fd, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { throw .posix("openat", shown) }
            do {
                defer { close(child) }
                try removeContents(fd: child, path: shown)
            }
            guard unlinkat(fd, cname, AT_REMOVEDIR) == 0 || errno == ENOENT else { throw .posix("rmdir", shown) }
        } else {
            guard unlinkat(fd, cname, 0) == 0 || errno == ENOENT else { throw .posix("unlink", shown) }
        }
    }

    private static func removeContents(fd: Int32, path: String) throws(ImageError) {
        for name in try listDirectory(fd: fd) {
            try removeEntry(dirFD: fd, name: name, shown: path + "/" + String(decoding: name, as: UTF8.self))
        }
    }

    /// Allocated bytes and inodes below `path` (hard links counted once), without following symlinks.
    static func usage(_ path: String) -> (bytes: UInt64, inodes: UInt64) {
        var seen = Set<[UInt64]>()
        var bytes: UInt64 = 0
        var inodes: UInt64 = 0
        func account(_ st: stat) {
            if st.st_nlink > 1 && (st.st_mode & S_IFMT) != S_IFDIR {
                guard seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { return }
            }
            bytes += UInt64(max(0, st.st_blocks)) * 512
            inodes += 1
        }
        func walk(_ fd: Int32) {
            guard let names = try? listDirectory(fd: fd) else { return }
            for name in names {
                let cname = name.map { CChar(bitPattern: $0) } + [0]
                var st = stat()
                guard fstatat(fd, cname, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                account(st)
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    let child = openat(fd, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if child >= 0 {
                        walk(child)
                        close(child)
                    }
                }
            }
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { return (0, 0) }
        account(st)
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                walk(fd)
                close(fd)
            }
        }
        return (bytes, inodes)
    }

    /// Whether `path` is the root of a mount of a filesystem with a device of its own (overlay, tmpfs): its
    /// st_dev differs from its parent's. Cheap, unlike mountinfo, which the kernel regenerates whole on
    /// every read and which grows with every container's overlay.
    static func isMountRoot(_ path: String) -> Bool {
        var own = stat()
        var parent = stat()
        guard stat(path, &own) == 0, stat(path + "/..", &parent) == 0 else { return false }
        return own.st_dev != parent.st_dev || own.st_ino == parent.st_ino
    }

    /// Mount points from /proc/self/mountinfo (field 5, with its octal escapes decoded).
    static func mountPoints() -> Set<String> {
        guard let data = try? readFile("/proc/self/mountinfo"), let text = String(data: data, encoding: .utf8) else {
            return []
        }
        var result = Set<String>()
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4 else { continue }
            result.insert(unescapeMountField(fields[4]))
        }
        return result
    }

    static func unescapeMountField(_ s: Substring) -> String {
        var out: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == 0x5c, i + 3 < u.count,
                let v = UInt8(String(decoding: u[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                out.append(v)
                i += 4
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The mount point holding `path` (longest mount point that is a prefix of its real path).
    static func mountPoint(containing path: String) -> String {
        let real = realPath(path) ?? path
        var best = "/"
        for m in mountPoints() where (real == m || real.hasPrefix(m == "/" ? "/" : m + "/")) && m.count > best.count {
            best = m
        }
        return best
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}

/// Runs blocking work (unpacking, fsync, tree walks) on a Dispatch worker instead of the Swift
/// concurrency pool, which on a 2-core machine has only two threads to block.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws(ImageError) -> T) async throws(ImageError) -> T {
    let result: Result<T, ImageError> = await withCheckedContinuation { continuation in
        DispatchQueue.global().async {
            do throws(ImageError) {
                continuation.resume(returning: .success(try body()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
    }
    return try result.get()
}
