import CLinux
import CProcessSupport
import Foundation
import Glibc
import SkiffSupport

/// Process plumbing for streaming sessions, without forking the multi-threaded daemon: posix_spawn
/// with chosen descriptors as stdio, waitpid on a thread of its own, and the runc console-socket
/// protocol (the runtime connects to a Unix socket and passes the pty master with SCM_RIGHTS).
enum StreamProcess {
    /// Spawns `arguments` with `stdio` as fds 0, 1, 2; every other descriptor is closed in the child.
    static func spawn(_ arguments: [String], stdio: (Int32, Int32, Int32)) throws(SkiffError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdio.0, 0)
        posix_spawn_file_actions_adddup2(&actions, stdio.1, 1)
        posix_spawn_file_actions_adddup2(&actions, stdio.2, 2)
        skiff_spawn_add_closefrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        skiff_spawnattr_clean_signals(&attributes)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, env)
        guard rc == 0 else { throw .internal("spawn \(arguments[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Waits for `pid` on a dedicated thread; the exit code, or 128+signal.
    static func wait(_ pid: pid_t) async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let thread = Thread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                let signal = status & 0x7f
                continuation.resume(returning: signal != 0 ? 128 + signal : (status >> 8) & 0xff)
            }
            thread.stackSize = 128 * 1024
            thread.start()
        }
    }

    static func pipe() throws(SkiffError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard clx_pipe2(&fds, O_CLOEXEC) == 0 else { throw .internal("pipe: \(String(cString: strerror(errno)))") }
        return (fds[0], fds[1])
    }

    static func devNull() throws(SkiffError) -> Int32 {
        let fd = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .internal("open /dev/null: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// The pid written by the runtime's --pid-file, if it is there yet.
    static func readPid(_ path: String) -> pid_t? {
        guard let text = try? FileSystem.readString(path), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            return nil
        }
        return pid
    }
}

/// The listening end of a runc `--console-socket`.
final class ConsoleSocket: Sendable {
    let path: String
    let fd: Int32

    init(path: String) throws(SkiffError) {
        self.path = path
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .internal("console socket: socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            Glibc.close(fd)
            throw .internal("console socket path \(path) is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw .internal("console socket \(path): bind/listen: \(String(cString: strerror(e)))")
        }
        chmod(path, 0o600)
        self.fd = fd
    }

    /// Accepts the runtime's connection and receives the pty master; gives up when `stillWaiting`
    /// says so (the runtime exited without connecting) — checked every 100 ms on a dedicated thread.
    func receiveMaster(stillWaiting: @escaping @Sendable () -> Bool) async throws(SkiffError) -> Int32 {
        let fd = self.fd
        let path = self.path
        let result: Result<Int32, SkiffError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                while stillWaiting() {
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    if poll(&p, 1, 100) <= 0 { continue }
                    let connection = accept(fd, nil, nil)
                    if connection < 0 { continue }
                    _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                    var payload = [CChar](repeating: 0, count: 256)
                    let master = clx_recv_fd(connection, &payload, payload.count)
                    let e = errno
                    Glibc.close(connection)
                    if master < 0 {
                        continuation.resume(returning: .failure(.internal("console socket \(path): receive pty master: \(String(cString: strerror(e)))")))
                    } else {
                        continuation.resume(returning: .success(master))
                    }
                    return
                }
                continuation.resume(returning: .failure(.internal("the runtime never sent the pty master to \(path)")))
            }
            thread.stackSize = 128 * 1024
            thread.start()
        }
        return try result.get()
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}
