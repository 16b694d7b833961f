import CRI
import Foundation
import GRPCCore
import SkiffClient
import SkiffStreaming
import Synchronization
import Testing

/// Exec, attach and port-forward through skiffd's streaming server over WebSocket: the same URLs and
/// tokens as SPDY, the client choosing by its `Upgrade` header. Helpers and the busybox pod come from
/// `StreamingIntegrationTests`.
@Suite("Streaming over WebSocket (exec, attach, port-forward)", .serialized, RegistryScope())
struct WebSocketStreamingTests {
    typealias Output = StreamingIntegrationTests.Output

    static func run(_ url: String, protocols: [String] = RemoteCommandClient.webSocketProtocols, tty: Bool = false, io: RemoteCommandIO) async throws -> Int32 {
        try await RemoteCommandClient.run(url: url, tty: tty, io: io, transport: .websocket, webSocketProtocols: protocols)
    }

    @Test func execOverV5AndV4() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (_, id) = try await StreamingIntegrationTests.sleeper(h, c)
                // v5 (what the client prefers): stdin's end reaches the command through the CLOSE signal.
                let out = Output(), err = Output()
                let input = Mutex<[[UInt8]]>([Array("hello\n".utf8), Array("world\n".utf8)])
                let url = try await StreamingIntegrationTests.execURL(c, id, ["sh", "-c", "cat; echo oops >&2; exit 7"], stdin: true)
                let code = try await Self.run(url, io: RemoteCommandIO(
                    stdin: { input.withLock { $0.isEmpty ? nil : $0.removeFirst() } }, stdout: { out.append($0) }, stderr: { err.append($0) }))
                #expect(code == 7 && out.text == "hello\nworld\n" && err.text == "oops\n", "\(code) \(out.text.debugDescription) \(err.text.debugDescription)")

                let big = Output()
                let ok = try await Self.run(
                    try await StreamingIntegrationTests.execURL(c, id, ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"]),
                    io: RemoteCommandIO(stdout: { big.append($0) }, stderr: { _ in }))
                #expect(ok == 0 && big.text.count == 300_000 && big.text.allSatisfy { $0 == "x" })

                // v4 and its base64 variant: the exit code from the JSON status.
                for proto in ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"] {
                    let o = Output(), e = Output()
                    let status = try await Self.run(
                        try await StreamingIntegrationTests.execURL(c, id, ["sh", "-c", "echo out; echo err >&2; exit 3"]), protocols: [proto],
                        io: RemoteCommandIO(stdout: { o.append($0) }, stderr: { e.append($0) }))
                    #expect(status == 3 && o.text == "out\n" && e.text == "err\n", "\(proto): \(status) \(o.text.debugDescription) \(e.text.debugDescription)")
                }
                // The unversioned protocol reports failures as text only.
                await #expect {
                    _ = try await Self.run(
                        try await StreamingIntegrationTests.execURL(c, id, ["sh", "-c", "exit 3"]), protocols: ["channel.k8s.io"],
                        io: RemoteCommandIO(stdout: { _ in }, stderr: { _ in }))
                } throws: { ($0 as? RemoteCommandError)?.description.contains("exit code 3") == true }
                #expect(try await Self.run(
                    try await StreamingIntegrationTests.execURL(c, id, ["true"]), protocols: ["channel.k8s.io"],
                    io: RemoteCommandIO(stdout: { _ in }, stderr: { _ in })) == 0)
            }
        }
    }

    @Test func execWithTerminalSeesSizeAndResize() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (_, id) = try await StreamingIntegrationTests.sleeper(h, c)
                let out = Output()
                let (sizes, sizeInput) = AsyncStream.makeStream(of: TerminalSize.self)
                sizeInput.yield(TerminalSize(width: 123, height: 45))
                let lines = Mutex<[[UInt8]]>([])
                let url = try await StreamingIntegrationTests.execURL(
                    c, id, ["sh", "-c", "tty; stty size; while read x; do [ \"$x\" = q ] && exit 4; stty size; done"], stdin: true, tty: true)
                let io = RemoteCommandIO(
                    stdin: {
                        while !Task.isCancelled {
                            if let next = lines.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return next }
                            try? await Task.sleep(for: .milliseconds(20))
                        }
                        return nil
                    },
                    stdout: { out.append($0) }, resize: sizes)
                let session = Task { try await Self.run(url, tty: true, io: io) }
                let clock = ContinuousClock()
                var deadline = clock.now.advanced(by: .seconds(30))
                while !out.text.contains("45 123"), clock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                // The pty is created with the first size sent on channel 4.
                #expect(out.text.contains("/dev/pts/") && out.text.contains("45 123\r\n"), "\(out.text.debugDescription)")
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

    @Test func attachEndsStdinWithTheCloseSignal() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                try await c.pull(h.registry.image("latest"))
                let podConfig = h.podConfig()
                let pod = try await c.runPod(podConfig)
                var config = Pods.container(name: "cat", image: h.registry.image("latest"), command: ["sh", "-c", "cat; echo bye >&2; exit 5"])
                config.stdin = true
                config.stdinOnce = true
                let id = try await c.run(pod, config, podConfig)
                var request = AttachRequest()
                request.containerId = id
                request.stdin = true
                request.stdout = true
                request.stderr = true
                let url = try await c.call(CRIMethods.attach, request).url
                let out = Output(), err = Output()
                let input = Mutex<[[UInt8]]>([Array("hello\n".utf8)])
                // stdin_once: v5's CLOSE for channel 0 ends the container's stdin, so cat ends, and the attach.
                let code = try await Self.run(url, io: RemoteCommandIO(
                    stdin: { input.withLock { $0.isEmpty ? nil : $0.removeFirst() } }, stdout: { out.append($0) }, stderr: { err.append($0) }))
                #expect(code == 0 && out.text == "hello\n" && err.text == "bye\n", "\(code) \(out.text.debugDescription) \(err.text.debugDescription)")
                #expect(try await c.waitFor(id) { $0.state == .containerExited }.exitCode == 5)
            }
        }
    }

    @Test func badTokensAndClientDisconnect() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (_, id) = try await StreamingIntegrationTests.sleeper(h, c)
                let url = try await StreamingIntegrationTests.execURL(c, id, ["true"])
                #expect(try await Self.run(url, io: RemoteCommandIO(stdout: { _ in }, stderr: { _ in })) == 0)
                // A token is single use whatever the transport, and an unknown one is 404 as well.
                await #expect(throws: StreamingClientError.upgradeRefused(status: 404, message: "404 page not found")) {
                    _ = try await StreamingClient.connectWebSocket(url: url, protocols: ["v5.channel.k8s.io"])
                }
                let unknown = String(url[..<url.lastIndex(of: "/")!]) + "/AAAAAAAAAAA"
                await #expect(throws: StreamingClientError.upgradeRefused(status: 404, message: "404 page not found")) {
                    _ = try await StreamingClient.connectWebSocket(url: unknown, protocols: ["v5.channel.k8s.io"])
                }
                // A protocol the server does not speak is refused with 403.
                do {
                    _ = try await StreamingClient.connectWebSocket(
                        url: try await StreamingIntegrationTests.execURL(c, id, ["true"]), protocols: ["v9.channel.k8s.io"])
                    Issue.record("an unknown subprotocol was accepted")
                } catch StreamingClientError.upgradeRefused(let status, _) {
                    #expect(status == 403)
                }

                // The client going away kills the command.
                let running = try await StreamingIntegrationTests.execURL(c, id, ["sh", "-c", "echo started; exec sleep 778"])
                let connection = try await StreamingClient.connectWebSocket(url: running, protocols: ["v5.channel.k8s.io"])
                let session = WebSocketChannelSession(connection: connection, protocol: .v5, readable: [1, 2, 3])
                // (kubelet's empty "streams ready" message on stdout carries no data: reads skip it.)
                #expect(String(decoding: await session.channel(1).read() ?? [], as: UTF8.self) == "started\n")
                #expect(try await c.exec(id, ["ps"]).out.contains("sleep 778"))
                await connection.close(.goingAway)
                let clock = ContinuousClock()
                let deadline = clock.now.advanced(by: .seconds(30))
                var listing = try await c.exec(id, ["ps"]).out
                while listing.contains("sleep 778"), clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                    listing = try await c.exec(id, ["ps"]).out
                }
                #expect(!listing.contains("sleep 778"), "\(listing)")
            }
        }
    }

    @Test func portForwardTunneledAndOverChannels() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (pod, _) = try await StreamingIntegrationTests.sleeper(h, c, command: ["nc", "-ll", "-p", "9000", "-e", "cat"])
                var request = PortForwardRequest()
                request.podSandboxId = pod
                request.port = [9000]
                // SPDY tunneled over WebSocket (crictl's --transport websocket): any number of connections.
                let forwarder = try await PortForwardClient.connect(url: try await c.call(CRIMethods.portForward, request).url, transport: .websocket)
                let (a, aErr) = try await StreamingIntegrationTests.openEcho(forwarder)
                let (b, _) = try await forwarder.open(port: 9000)
                async let echoA: [UInt8] = StreamingIntegrationTests.roundTrip(a, Array("from a\n".utf8) + [UInt8](repeating: 65, count: 200_000))
                async let echoB: [UInt8] = StreamingIntegrationTests.roundTrip(b, Array("from b\n".utf8))
                let (ra, rb) = await (echoA, echoB)
                #expect(ra.count == 200_007 && ra.prefix(7) == Array("from a\n".utf8)[...])
                #expect(rb == Array("from b\n".utf8))
                #expect(await aErr.readAll().isEmpty)
                let (d, e) = try await forwarder.open(port: 9001)
                let message = String(decoding: await e.readAll(), as: UTF8.self)
                #expect(message.contains("error forwarding port 9001 to pod \(pod)") && message.contains("refused"), "\(message)")
                #expect(await d.read() == nil)
                forwarder.close()

                // kubelet's channel protocol: channels 0/1 for 9000, 2/3 for 9001, each opening with its port.
                request.port = [9000, 9001]
                let connection = try await StreamingClient.connectWebSocket(
                    url: try await c.call(CRIMethods.portForward, request).url, protocols: ["v4.channel.k8s.io"])
                let session = WebSocketChannelSession(connection: connection, protocol: .v4, readable: [0, 1, 2, 3])
                for (n, port) in [(0, 9000), (1, 9000), (2, 9001), (3, 9001)] {
                    #expect(await session.channel(UInt8(n)).read() == [UInt8(port & 0xFF), UInt8(port >> 8)], "channel \(n)")
                }
                let refused = String(decoding: await session.channel(3).read() ?? [], as: UTF8.self)
                #expect(refused.contains("error forwarding port 9001 to pod \(pod)") && refused.contains("refused"), "\(refused)")
                let payload = Array("over channels\n".utf8) + [UInt8](repeating: 66, count: 100_000)
                try await session.channel(0).write(payload)
                var echoed: [UInt8] = []
                while echoed.count < payload.count, let chunk = await session.channel(0).read() { echoed += chunk }
                #expect(echoed == payload)
                session.close()
                await session.waitClosed()
            }
        }
    }

    @Test func skiffctlWithWebSocketTransport() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                let (pod, id) = try await StreamingIntegrationTests.sleeper(h, c, command: ["nc", "-ll", "-p", "9000", "-e", "cat"])
                let exec = try await Ctl.run(h.daemon, ["exec", "--transport", "websocket", id, "sh", "-c", "echo out; echo err >&2; exit 3"])
                #expect(exec.status == 3 && exec.out == "out\n" && exec.err == "err\n", "\(exec)")
                // skiffctl's stdin is /dev/null here: its end must reach cat (v5 CLOSE) for the command to finish.
                let stdin = try await Ctl.run(h.daemon, ["exec", "-i", "--transport", "websocket", id, "sh", "-c", "cat; echo done"])
                #expect(stdin.status == 0 && stdin.out == "done\n", "\(stdin)")
                let bad = try await Ctl.run(h.daemon, ["exec", "--transport", "carrier-pigeon", id, "true"])
                #expect(bad.status != 0 && bad.err.contains("transport"), "\(bad)")

                let forward = try Ctl.spawn(h.daemon, ["port-forward", "--transport", "websocket", pod, ":9000"])
                do {
                    try await StreamingIntegrationTests.checkForward(forward)
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
}
