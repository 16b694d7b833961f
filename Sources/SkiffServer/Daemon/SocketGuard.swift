import Foundation
import Glibc
import SkiffSupport

/// Makes sure one skiffd owns a state directory and a socket. A second skiffd must refuse to start rather
/// than steal the socket from a live one; a socket file left by a crashed skiffd is stale and replaced.
struct SocketGuard {
    let lockFD: Int32

    /// Takes the state directory's lock, then probes the socket: if something accepts connections there,
    /// another server is live and we refuse; otherwise a leftover file is removed.
    static func acquire(stateDir: String, socketPath: String) throws -> SocketGuard {
        let lockPath = stateDir + "/skiffd.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open", lockPath, errno: errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? FileSystem.readString(lockPath))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw ConfigError("another skiffd (pid \(holder)) is running with state directory \(stateDir)")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }

        if isServing(socketPath) {
            close(fd)
            throw ConfigError("another server is already listening on \(socketPath); refusing to replace it")
        }
        if unlink(socketPath) != 0 && errno != ENOENT {
            close(fd)
            throw SystemError("remove stale socket", socketPath, errno: errno)
        }
        return SocketGuard(lockFD: fd)
    }

    func release() {
        close(lockFD)
    }

    /// True if a process accepts connections on the Unix socket at `path`.
    static func isServing(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }
}
