import CProcessSupport
import Foundation
import Glibc
import SkiffSupport

/// Runs a helper process (the OCI runtime, a CNI plugin) without forking the multi-threaded daemon:
/// posix_spawn, stdin from bytes, stdout/stderr captured up to a limit each, optional timeout.
/// The wait happens on a dedicated thread so no Swift concurrency thread blocks in waitpid or poll.
public struct ProcessResult: Sendable {
    public var status: Int32           // exit code, or 128+signal
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var timedOut: Bool
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

public struct ProcessSpec: Sendable {
    public var arguments: [String]
    public var environment: [String]? = nil
    public var stdin: [UInt8] = []
    public var timeout: Duration? = nil
    public var outputLimit = 16 * 1024 * 1024
    /// When the timeout fires, this is called (before the spawned process is killed) so that a caller can
    /// kill what the process started, e.g. the exec'd process inside a container.
    public var onTimeout: (@Sendable () -> Void)? = nil
    /// After the process exits, keep reading its pipes at most this long: a background child holding
    /// stdout open must not hang the call.
    public var drainAfterExit: Duration = .seconds(1)

    public init(_ arguments: [String]) {
        self.arguments = arguments
    }
}

public enum ProcessRunner {
    public static func run(_ spec: ProcessSpec) async throws(SystemError) -> ProcessResult {
        let box = ResultBox()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                box.result = runBlocking(spec)
                continuation.resume()
            }
            thread.stackSize = 256 * 1024
            thread.start()
        }
        return try box.result!.get()
    }

    final class ResultBox: @unchecked Sendable {
        var result: Result<ProcessResult, SystemError>?
    }

    /// Spawns and supervises on the calling thread.
    public static func runBlocking(_ spec: ProcessSpec) -> Result<ProcessResult, SystemError> {
        guard let executable = spec.arguments.first else { return .failure(SystemError("spawn", "", errno: EINVAL)) }
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            return .failure(SystemError("pipe", executable, errno: errno))
        }
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        skiff_spawn_add_closefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        skiff_spawnattr_clean_signals(&attributes)

        var pid: pid_t = 0
        let argv = spec.arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env: [UnsafeMutablePointer<CChar>?]
        if let environment = spec.environment {
            env = environment.map { strdup($0) } + [nil]
        } else {
            env = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { env.forEach { free($0) } }
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, env)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            return .failure(SystemError("spawn", executable, errno: rc))
        }

        // Feed stdin (small: process specs, CNI configs) then close it.
        var offset = 0
        while offset < spec.stdin.count {
            let n = spec.stdin.withUnsafeBytes { write(inPipe[1], $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if errno == EINTR { continue }; break }
            offset += n
        }
        close(inPipe[1])

        var result = ProcessResult(status: -1, stdout: [], stderr: [], timedOut: false, stdoutTruncated: false, stderrTruncated: false)
        let start = monotonicNanos()
        let deadline = spec.timeout.map { start + UInt64($0.components.seconds) * 1_000_000_000 + UInt64($0.components.attoseconds / 1_000_000_000) }
        var open = [outPipe[0], errPipe[0]]
        var exitedAt: UInt64?
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let drainNanos = UInt64(spec.drainAfterExit.components.seconds) * 1_000_000_000
            + UInt64(spec.drainAfterExit.components.attoseconds / 1_000_000_000)

        while true {
            if exitedAt == nil {
                var status: Int32 = 0
                // Once both pipes are closed the child is (almost always) gone: block in waitpid unless a
                // timeout must still be enforced.
                let flags = open.isEmpty && deadline == nil ? 0 : WNOHANG
                let w = waitpid(pid, &status, flags)
                if w == pid {
                    result.status = decodeWaitStatus(status)
                    exitedAt = monotonicNanos()
                }
            }
            if open.isEmpty && exitedAt != nil { break }
            if let exitedAt, monotonicNanos() - exitedAt > drainNanos { break }
            if exitedAt == nil, let deadline, monotonicNanos() > deadline, !result.timedOut {
                result.timedOut = true
                spec.onTimeout?()
                kill(pid, SIGKILL)
            }
            if open.isEmpty {
                usleep(1_000)
                continue
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            // Pipe EOF wakes us when the child exits; the timeout only bounds how late a child that
            // exited while a grandchild keeps its pipes open, or a deadline, is noticed.
            let n = poll(&fds, nfds_t(fds.count), 20)
            if n < 0 && errno != EINTR { break }
            for p in fds where p.revents != 0 {
                let r = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if r > 0 {
                    if p.fd == outPipe[0] {
                        append(&result.stdout, buffer[0..<r], limit: spec.outputLimit, truncated: &result.stdoutTruncated)
                    } else {
                        append(&result.stderr, buffer[0..<r], limit: spec.outputLimit, truncated: &result.stderrTruncated)
                    }
                } else if r == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(p.fd)
                    open.removeAll { $0 == p.fd }
                }
            }
        }
        for fd in open { close(fd) }
        if exitedAt == nil {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            result.status = decodeWaitStatus(status)
        }
        return .success(result)
    }

    static func append(_ target: inout [UInt8], _ bytes: ArraySlice<UInt8>, limit: Int, truncated: inout Bool) {
        let room = limit - target.count
        if room <= 0 { truncated = true; return }
        if bytes.count > room {
            target += bytes.prefix(room)
            truncated = true
        } else {
            target += bytes
        }
    }

    static func decodeWaitStatus(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal != 0 ? 128 + signal : (status >> 8) & 0xff
    }
}
