import CProcessSupport
import Foundation
import Glibc
import SkiffSupport

/// Starts a skiff-monitor for one container (or a sandbox's infra) and waits for its verdict on the
/// container's creation. The monitor detaches at once, so skiffd never remains its parent.
public struct MonitorLauncher: Sendable {
    public let monitorPath: String

    public init(monitorPath: String) {
        self.monitorPath = monitorPath
    }

    public struct Request: Sendable {
        public var runtime: OCIRuntime
        public var id: String
        public var bundle: String
        public var directory: String
        public var logPath: String?
        public var oomFile: String?
        /// Listen on `<directory>/attach` for attach clients (containers; not pod infra).
        public var attach: Bool
        /// The container's stdin is a pipe (or its pty) fed by attach clients; else /dev/null.
        public var stdin: Bool
        /// The first attach client's end of stdin closes the container's stdin.
        public var stdinOnce: Bool
        /// The spec has process.terminal: the monitor takes the pty master through --console-socket.
        public var tty: Bool

        public init(
            runtime: OCIRuntime, id: String, bundle: String, directory: String, logPath: String?, oomFile: String?,
            attach: Bool = false, stdin: Bool = false, stdinOnce: Bool = false, tty: Bool = false
        ) {
            self.runtime = runtime
            self.id = id
            self.bundle = bundle
            self.directory = directory
            self.logPath = logPath
            self.oomFile = oomFile
            self.attach = attach
            self.stdin = stdin
            self.stdinOnce = stdinOnce
            self.tty = tty
        }
    }

    /// Returns the pid of the container's init, created and waiting for `start`.
    public func create(_ request: Request) async throws(SkiffError) -> Int32 {
        let monitor = monitorPath
        let outcome: Result<Int32, SkiffError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Self.spawnAndWait(monitor: monitor, request))
            }
            thread.stackSize = 256 * 1024
            thread.start()
        }
        return try outcome.get()
    }

    static func spawnAndWait(monitor: String, _ request: Request) -> Result<Int32, SkiffError> {
        var sync: [Int32] = [-1, -1]
        guard pipe(&sync) == 0 else { return .failure(.internal("pipe for monitor: \(String(cString: strerror(errno)))")) }
        // Both ends close-on-exec: the monitor gets its own copy at fd 3 (dup2 clears the flag there);
        // a stray copy of the write end anywhere else would keep us from ever seeing EOF.
        _ = fcntl(sync[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(sync[1], F_SETFD, FD_CLOEXEC)
        defer { close(sync[0]) }

        var arguments = [
            monitor, "--runtime", request.runtime.path, "--runtime-root", request.runtime.root,
            "--id", request.id, "--bundle", request.bundle, "--dir", request.directory, "--sync-fd", "3",
        ]
        if let log = request.logPath { arguments += ["--log", log] }
        if let oom = request.oomFile { arguments += ["--oom-file", oom] }
        if request.attach { arguments.append("--attach") }
        if request.stdin { arguments.append("--stdin") }
        if request.stdinOnce { arguments.append("--stdin-once") }
        if request.tty { arguments.append("--tty") }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, request.directory + "/monitor.log", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, sync[1], 3)
        skiff_spawn_add_closefrom(&actions, 4)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        skiff_spawnattr_clean_signals(&attributes)

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, monitor, &actions, &attributes, argv, nil)
        close(sync[1])
        guard rc == 0 else { return .failure(.internal("spawn \(monitor): \(String(cString: strerror(rc)))")) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}  // the first fork returns at once

        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(sync[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        let text = String(decoding: reply, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("ok "), let initPid = Int32(text.dropFirst(3)) { return .success(initPid) }
        if text.hasPrefix("error ") { return .failure(.internal("create: \(text.dropFirst(6))")) }
        let log = (try? FileSystem.readString(request.directory + "/monitor.log")) ?? ""
        return .failure(.internal("monitor for \(request.id) ended without a verdict: \(log.isEmpty ? "no output" : log)"))
    }
}
