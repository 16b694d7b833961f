import CRI
import Foundation
import GRPCCore
import SkiffClient
import SkiffStreaming
import Synchronization
import Testing

/// Exec and PortForward through skiffd's streaming server, with the SPDY client skiffctl uses.
@Suite("Streaming (exec, attach, port-forward)", .serialized, RegistryScope())
struct StreamingIntegrationTests {
    /// Collects what a remote command writes.
    final class Output: Sendable {
        let bytes = Mutex<[UInt8]>([])
        var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
        func append(_ chunk: [UInt8]) { bytes.withLock { $0 += chunk } }
    }

    static func execURL(_ c: CRIClient, _ id: String, _ cmd: [String], stdin: Bool = false, tty: Bool = false) async throws -> String {
        var request = ExecRequest()
        request.containerId = id
        request.cmd = cmd
        request.stdin = stdin
        request.stdout = true
        request.stderr = !tty
        request.tty = tty
        return try await c.call(CRIMethods.exec, request).url
    }

    /// A pod with one long-running busybox container.
    static func sleeper(_ h: RuntimeHarness, _ c: CRIClient, command: [String] = ["sleep", "600"]) async throws -> (pod: String, container: String) {
        try await c.pull(h.registry.image("latest"))
        let podConfig = h.podConfig()
        let pod = try await c.runPod(podConfig)
        let id = try await c.run(pod, Pods.container(name: "main", image: h.registry.image("latest"), command: command), podConfig)
        return (pod, id)
    }

    @Test func execCarriesStdioAndExitCodes() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (_, id) = try await Self.sleeper(h, c)
                let out = Output(), err = Output()
                let input = Mutex<[[UInt8]]>([Array("hello\n".utf8), Array("world\n".utf8)])
                let url = try await Self.execURL(c, id, ["sh", "-c", "cat; echo oops >&2; exit 7"], stdin: true)
                #expect(url.hasPrefix("http://127.0.0.1:") && url.contains("/exec/"))
                let io = RemoteCommandIO(
                    stdin: { input.withLock { $0.isEmpty ? nil : $0.removeFirst() } }, stdout: { out.append($0) }, stderr: { err.append($0) })
                let code = try await RemoteCommandClient.run(url: url, tty: false, io: io)
                #expect(code == 7 && out.text == "hello\nworld\n" && err.text == "oops\n", "\(code) \(out.text.debugDescription) \(err.text.debugDescription)")

                let quiet = Output()
                let ok = try await RemoteCommandClient.run(
                    url: try await Self.execURL(c, id, ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"]), tty: false,
                    io: RemoteCommandIO(stdout: { quiet.append($0) }, stderr: { _ in }))
                // Far beyond SPDY's default 64 KiB window.
                #expect(ok == 0 && quiet.text.count == 300_000 && quiet.text.allSatisfy { $0 == "x" })

                // A command that cannot start fails: an error status, or the runtime's non-zero code.
                let missing = try? await RemoteCommandClient.run(
                    url: try await Self.execURL(c, id, ["/no/such/binary"]), tty: false,
                    io: RemoteCommandIO(stdout: { _ in }, stderr: { _ in }))
                #expect(missing != 0)
            }
        }
    }

    @Test func execValidatesLikeContainerd() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (pod, id) = try await Self.sleeper(h, c)
                var request = ExecRequest()
                request.containerId = "f00dfeed"
                request.cmd = ["true"]
                request.stdout = true
                await #expect { _ = try await c.call(CRIMethods.exec, request) } throws: { ($0 as? RPCError)?.code == .notFound }
                request.containerId = id
                request.stdout = false
                await #expect { _ = try await c.call(CRIMethods.exec, request) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
                request.stdout = true
                request.tty = true
                request.stderr = true
                await #expect { _ = try await c.call(CRIMethods.exec, request) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
                let stopped = try await c.create(pod, Pods.container(name: "idle", image: h.registry.image("latest"), command: ["true"]), h.podConfig())
                request.containerId = stopped
                request.tty = false
                request.stderr = false
                await #expect { _ = try await c.call(CRIMethods.exec, request) } throws: { ($0 as? RPCError)?.code == .failedPrecondition }

                var forward = PortForwardRequest()
                forward.podSandboxId = "f00dfeed"
                await #expect { _ = try await c.call(CRIMethods.portForward, forward) } throws: { ($0 as? RPCError)?.code == .notFound }
            }
        }
    }

    @Test func execWithTerminalSeesSizeAndResize() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (_, id) = try await Self.sleeper(h, c)
                let out = Output()
                let (sizes, sizeInput) = AsyncStream.makeStream(of: TerminalSize.self)
                sizeInput.yield(TerminalSize(width: 123, height: 45))
                let lines = Mutex<[[UInt8]]>([])
                let url = try await Self.execURL(c, id, ["sh", "-c", "tty; stty size; while read x; do [ \"$x\" = q ] && exit 4; stty size; done"], stdin: true, tty: true)
                let io = RemoteCommandIO(
                    stdin: {
                        while !Task.isCancelled {
                            if let next = lines.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return next }
                            try? await Task.sleep(for: .milliseconds(20))
                        }
                        return nil
                    },
                    stdout: { out.append($0) }, resize: sizes)
                let session = Task { try await RemoteCommandClient.run(url: url, tty: true, io: io) }
                // The pty is created with the client's size: no 0 0 first.
                let clock = ContinuousClock()
                var deadline = clock.now.advanced(by: .seconds(30))
                while !out.text.contains("45 123"), clock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                #expect(out.text.contains("/dev/pts/") && out.text.contains("45 123\r\n"), "\(out.text.debugDescription)")
                // A resize reaches the terminal (asked again until seen: resize and stdin are separate streams).
                sizeInput.yield(TerminalSize(width: 100, height: 30))
                deadline = clock.now.advanced(by: .seconds(30))
                while !out.text.contains("30 100"), clock.now < deadline {
                    lines.withLock { $0.append(Array("\n".utf8)) }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(out.text.contains("30 100"), "\(out.text.debugDescription)")
                lines.withLock { $0.append(Array("q\n".utf8)) }
                #expect(try await session.value == 4)
                sizeInput.finish()
            }
        }
    }

    @Test func attachJoinsTheContainersStdio() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                try await c.pull(h.registry.image("latest"))
                let podConfig = h.podConfig()
                let pod = try await c.runPod(podConfig)
                var config = Pods.container(name: "cat", image: h.registry.image("latest"), command: ["sh", "-c", "cat; echo bye >&2; exit 5"])
                config.stdin = true
                config.stdinOnce = true
                let id = try await c.run(pod, config, podConfig)
                let plain = try await c.run(pod, Pods.container(name: "plain", image: h.registry.image("latest"), command: ["sleep", "600"]), podConfig)
                var request = AttachRequest()
                request.containerId = plain
                request.stdin = true
                request.stdout = true
                await #expect { _ = try await c.call(CRIMethods.attach, request) } throws: { ($0 as? RPCError)?.code == .failedPrecondition }

                request.containerId = id
                request.stderr = true
                let url = try await c.call(CRIMethods.attach, request).url
                #expect(url.contains("/attach/"))
                let out = Output(), err = Output()
                let input = Mutex<[[UInt8]]>([Array("hello\n".utf8)])
                // stdin_once: the end of this client's stdin ends the container's, so cat ends, and so does the attach.
                let code = try await RemoteCommandClient.run(
                    url: url, tty: false,
                    io: RemoteCommandIO(stdin: { input.withLock { $0.isEmpty ? nil : $0.removeFirst() } }, stdout: { out.append($0) }, stderr: { err.append($0) }))
                #expect(code == 0 && out.text == "hello\n" && err.text == "bye\n", "\(code) \(out.text.debugDescription) \(err.text.debugDescription)")
                let status = try await c.waitFor(id) { $0.state == .containerExited }
                #expect(status.exitCode == 5)
            }
        }
    }

    @Test func tokensAreSingleUse() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (_, id) = try await Self.sleeper(h, c)
                let url = try await Self.execURL(c, id, ["true"])
                #expect(try await RemoteCommandClient.run(url: url, tty: false, io: RemoteCommandIO(stdout: { _ in }, stderr: { _ in })) == 0)
                await #expect(throws: StreamingClientError.upgradeRefused(status: 404, message: "404 page not found")) {
                    _ = try await RemoteCommandClient.run(url: url, tty: false, io: RemoteCommandIO(stdout: { _ in }, stderr: { _ in }))
                }
                let unknown = String(url[..<url.lastIndex(of: "/")!]) + "/AAAAAAAAAAA"
                await #expect(throws: StreamingClientError.upgradeRefused(status: 404, message: "404 page not found")) {
                    _ = try await StreamingClient.connect(url: unknown, protocols: RemoteCommand.protocols)
                }
            }
        }
    }

    @Test func clientDisconnectKillsTheCommand() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (_, id) = try await Self.sleeper(h, c)
                let url = try await Self.execURL(c, id, ["sh", "-c", "echo started; exec sleep 777"])
                let (session, _) = try await StreamingClient.connect(url: url, protocols: RemoteCommand.protocols)
                _ = try await session.openStream(headers: ["streamtype": "error"])
                let stdout = try await session.openStream(headers: ["streamtype": "stdout"])
                _ = try await session.openStream(headers: ["streamtype": "stderr"])
                #expect(String(decoding: await stdout.read() ?? [], as: UTF8.self) == "started\n")
                #expect(try await c.exec(id, ["ps"]).out.contains("sleep 777"))
                session.close()
                let clock = ContinuousClock()
                let deadline = clock.now.advanced(by: .seconds(30))
                var listing = try await c.exec(id, ["ps"]).out
                while listing.contains("sleep 777"), clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                    listing = try await c.exec(id, ["ps"]).out
                }
                #expect(!listing.contains("sleep 777"), "\(listing)")
            }
        }
    }

    @Test func portForwardBothWaysAndConcurrently() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (pod, _) = try await Self.sleeper(h, c, command: ["nc", "-ll", "-p", "9000", "-e", "cat"])
                var request = PortForwardRequest()
                request.podSandboxId = pod
                request.port = [9000]
                // The listener starts with the container: retry the first connection a few times.
                var forwarder: PortForwardClient!
                forwarder = try await PortForwardClient.connect(url: try await c.call(CRIMethods.portForward, request).url)
                let (a, aErr) = try await Self.openEcho(forwarder)
                let (b, _) = try await forwarder.open(port: 9000)
                async let echoA: [UInt8] = Self.roundTrip(a, Array("from a\n".utf8) + [UInt8](repeating: 65, count: 200_000))
                async let echoB: [UInt8] = Self.roundTrip(b, Array("from b\n".utf8))
                let (ra, rb) = await (echoA, echoB)
                #expect(ra.count == 200_007 && ra.prefix(7) == Array("from a\n".utf8)[...])
                #expect(rb == Array("from b\n".utf8))
                #expect(await aErr.readAll().isEmpty)

                // Nothing listens on 9001: the error stream says so.
                let (d, e) = try await forwarder.open(port: 9001)
                let message = String(decoding: await e.readAll(), as: UTF8.self)
                #expect(message.contains("error forwarding port 9001 to pod \(pod)") && message.contains("refused"), "\(message)")
                #expect(await d.read() == nil)
                forwarder.close()
            }
        }
    }

    /// Opens a pair to the echo server, retrying while the server is still starting.
    static func openEcho(_ forwarder: PortForwardClient) async throws -> (SPDYStream, SPDYStream) {
        for _ in 0..<100 {
            let (data, error) = try await forwarder.open(port: 9000)
            try await data.write(Array("ping\n".utf8))
            if let back = await data.read(), back == Array("ping\n".utf8) { return (data, error) }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("the echo server in the pod never answered")
    }

    /// Writes `bytes`, half-closes, reads until the echo's end.
    static func roundTrip(_ stream: SPDYStream, _ bytes: [UInt8]) async -> [UInt8] {
        async let back = stream.readAll(limit: 1 << 22)
        try? await stream.write(bytes)
        await stream.closeWrite()
        return await back
    }

    @Test func skiffctlExecAndPortForward() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (pod, id) = try await Self.sleeper(h, c, command: ["nc", "-ll", "-p", "9000", "-e", "cat"])
                let exec = try await Ctl.run(h.daemon, ["exec", id, "sh", "-c", "echo out; echo err >&2; exit 3"])
                #expect(exec.status == 3 && exec.out == "out\n" && exec.err == "err\n", "\(exec)")
                let stdin = try await Ctl.run(h.daemon, ["exec", "-i", id, "sh", "-c", "cat; echo done"])
                #expect(stdin.status == 0 && stdin.out == "done\n", "\(stdin)")

                let forward = try Ctl.spawn(h.daemon, ["port-forward", pod, ":9000"])
                do {
                    try await Self.checkForward(forward)
                } catch {
                    kill(forward.pid, SIGKILL)
                    _ = try? await forward.wait(timeout: 30)
                    throw error
                }
                kill(forward.pid, SIGTERM)
                _ = try? await forward.wait(timeout: 30)
            }
        }
    }

    /// Reads the local port skiffctl port-forward announces and echoes through it.
    static func checkForward(_ forward: Ctl.Running) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(30))
        var port: UInt16?
        while port == nil, clock.now < deadline {
            let text = (try? String(contentsOfFile: forward.base + ".out", encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Forwarding from 127.0.0.1:") }) {
                port = UInt16(line.dropFirst("Forwarding from 127.0.0.1:".count).split(separator: " ")[0])
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let local = try #require(port)
        var answer = ""
        for _ in 0..<50 where answer != "skiff\n" {
            answer = (try? await LocalTCP.exchange(port: local, Array("skiff\n".utf8))) ?? ""
            if answer != "skiff\n" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(answer == "skiff\n")
    }
}

/// A blocking TCP exchange with 127.0.0.1 on its own thread: send, half-close, read to EOF.
enum LocalTCP {
    static func exchange(port: UInt16, _ bytes: [UInt8]) async throws -> String {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            Thread {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
                let rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard rc == 0 else {
                    close(fd)
                    continuation.resume(throwing: TestFailure("connect 127.0.0.1:\(port): errno \(errno)"))
                    return
                }
                var timeout = timeval(tv_sec: 10, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                shutdown(fd, Int32(SHUT_WR))
                var out: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    out += buffer[0..<n]
                }
                close(fd)
                continuation.resume(returning: String(decoding: out, as: UTF8.self))
            }.start()
        }
    }
}
