import CProcessSupport
import Foundation
import Glibc

/// A child process started with posix_spawn and reaped with waitpid. The tests avoid Foundation's Process:
/// its exit monitoring has been seen to miss a child's exit under load, hanging a test forever.
final class Spawned: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    /// Starts `arguments` (looked up in PATH) with stdin from /dev/null and stdout+stderr appended to `output`.
    init(_ arguments: [String], output: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = withCleanSignals { posix_spawnp(&child, arguments[0], &actions, $0, argv, environ) }
        guard rc == 0 else { throw TestFailure("spawn \(arguments[0]): \(String(cString: strerror(rc)))") }
        pid = child
    }

    var isRunning: Bool {
        if status != nil { return false }
        var st: Int32 = 0
        if waitpid(pid, &st, WNOHANG) == pid {
            status = st
            return false
        }
        return true
    }

    /// Waits for the exit; returns the exit code (128+signal when killed). Blocks the calling thread: from a
    /// test, use `exit(upTo:)` unless the process is known to have exited.
    @discardableResult
    func wait() -> Int32 {
        if status == nil {
            var st: Int32 = 0
            while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
            status = st
        }
        let st = status!
        return (st & 0x7f) != 0 ? 128 + (st & 0x7f) : (st >> 8) & 0xff
    }

    /// Waits for the exit without blocking a thread of the cooperative pool (Swift Testing runs suites in
    /// parallel on it, one thread per core: a test parked in waitpid stalls every other test's awaits).
    /// Gives up (nil) after `limit`.
    func exit(upTo limit: Duration = .seconds(3600)) async -> Int32? {
        let deadline = ContinuousClock.now.advanced(by: limit)
        while isRunning {
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return wait()
    }

    func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }
}

/// Runs blocking work (a helper command, a synchronous wait) on a thread of its own, so that the
/// cooperative pool (one thread per core, shared by all tests running in parallel) keeps serving the
/// other tests' awaits. A test that blocked it for seconds was seen to stretch another test's 2 s Stop to 10 s.
///
/// The body runs as part of the calling task (on a task executor with its own threads), not on a bare
/// Thread: task-locals come along, so an `#expect` in it is charged to its test. On a bare Thread Swift
/// Testing could not tell whose it was, reported it as «unknown» and let the test itself pass.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withTaskExecutorPreference(ThreadPerJobExecutor.shared) { try body() }
}

/// A task executor that runs every job on a new thread, so a job may block for as long as it likes.
/// Meant for tests only: a thread per job is cheap next to the helper processes they wait for.
final class ThreadPerJobExecutor: TaskExecutor {
    static let shared = ThreadPerJobExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        Thread { job.runSynchronously(on: executor) }.start()
    }
}

/// Gives a spawned child default signal dispositions and an empty signal mask, as a service manager
/// starts a daemon. swift-nio ignores SIGPIPE in this test process when it opens its first socket, and an
/// ignored signal survives exec: without this, what a child inherits would depend on test order.
func withCleanSignals<R>(_ body: (UnsafePointer<posix_spawnattr_t>) throws -> R) rethrows -> R {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    skiff_spawnattr_clean_signals(&attributes)
    return try body(&attributes)
}
