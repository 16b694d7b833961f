import Foundation
import Glibc
import Testing

@testable import SkiffRuntime

/// ProcessWatch: exits learnt from pidfds, never from a later process that reuses a pid.
@Suite struct ProcessWatchTests {
    /// Starts `sleep 60` as a child; the caller kills and reaps it.
    static func spawnSleeper() throws -> pid_t {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("60"), nil]
        defer { for a in argv { free(a) } }
        let rc = posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ)
        try #require(rc == 0, "posix_spawn: \(rc)")
        return pid
    }

    static func waitUntil(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func reportsTheExitOfAWatchedProcess() async throws {
        let watch = ProcessWatch()
        let pid = try Self.spawnSleeper()
        let start = try #require(ProcFS.startTime(of: pid))
        #expect(watch.exited("skiff-a") == nil)
        watch.watch("skiff-a", pid: pid, startTime: start)
        #expect(watch.exited("skiff-a") == false)
        kill(pid, SIGKILL)
        // A zombie child has exited too: the pidfd turns readable before the parent reaps it.
        #expect(try await Self.waitUntil { watch.exited("skiff-a") == true })
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        watch.forget("skiff-a")
        #expect(watch.exited("skiff-a") == nil)
    }

    @Test func aPidWithAnotherStartTimeIsAnExitedProcess() throws {
        let watch = ProcessWatch()
        let pid = try Self.spawnSleeper()
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        let start = try #require(ProcFS.startTime(of: pid))
        // The record's process started at another time: this pid now belongs to someone else.
        watch.watch("skiff-b", pid: pid, startTime: start + 1)
        #expect(watch.exited("skiff-b") == true)
        // Watching the right process under the same id replaces the stale answer.
        watch.forget("skiff-b")
        watch.watch("skiff-b", pid: pid, startTime: start)
        #expect(watch.exited("skiff-b") == false)
    }

    @Test func aGonePidIsAnExitedProcess() throws {
        let watch = ProcessWatch()
        let pid = try Self.spawnSleeper()
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        watch.watch("skiff-c", pid: pid, startTime: 0)
        #expect(watch.exited("skiff-c") == true)
    }

    @Test func theIndexTracksLiveProcessesOfItsRecords() async throws {
        let watch = ProcessWatch()
        let index = ContainerStore(watch: watch)
        let pid = try Self.spawnSleeper()
        var record = ContainerRecord(
            id: "skiff-d", sandboxId: "s", name: "n", attempt: 0, labels: [:], annotations: [:], image: "",
            imageRef: "", imageId: "", logPath: "", cgroup: "", stopSignal: SIGTERM, config: Data())
        index.put(record)
        #expect(index.processExited("skiff-d") == nil)  // created record without a process yet
        record.initPid = pid
        record.initStartTime = try #require(ProcFS.startTime(of: pid))
        index.put(record)
        #expect(index.processExited("skiff-d") == false)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(try await Self.waitUntil { index.processExited("skiff-d") == true })
        _ = index.update("skiff-d") { $0.state = .exited }
        #expect(index.processExited("skiff-d") == nil)
        index.remove("skiff-d")
        #expect(watch.exited("skiff-d") == nil)
    }
}
