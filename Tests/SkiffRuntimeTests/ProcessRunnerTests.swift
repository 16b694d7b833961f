import Foundation
import Glibc
import Testing

@testable import SkiffRuntime

/// ProcessRunner starts the OCI runtime and CNI plugins from skiffd, a process that ignores SIGPIPE
/// (swift-nio does) and whose C library reserves signals 32 and 33. Neither may reach the child.
@Suite struct ProcessRunnerTests {
    @Test func childrenStartWithDefaultDispositionsAndNothingBlocked() async throws {
        // swift-nio in this test process ignores SIGPIPE once a socket opens; make it so regardless of
        // test order (and never undo it: an NIO socket elsewhere relies on it).
        signal(SIGPIPE, SIG_IGN)
        let result = try await ProcessRunner.run(ProcessSpec(["/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]))
        #expect(result.status == 0)
        #expect(result.stdoutText == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n")
    }

    @Test func stdinOutputExitCodeAndTimeout() async throws {
        var spec = ProcessSpec(["/bin/sh", "-c", "cat; echo oops >&2; exit 3"])
        spec.stdin = Array("fed\n".utf8)
        let result = try await ProcessRunner.run(spec)
        #expect(result.status == 3 && result.stdoutText == "fed\n" && result.stderrText == "oops\n" && !result.timedOut)
        var slow = ProcessSpec(["/bin/sleep", "30"])
        slow.timeout = .milliseconds(200)
        let killed = try await ProcessRunner.run(slow)
        #expect(killed.timedOut && killed.status == 128 + SIGKILL)
    }
}
