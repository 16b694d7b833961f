import Foundation
import NIOCore
import Synchronization
import Testing
@testable import SkiffStreaming

/// Both ends of real WebSocket connections over loopback: messages, control frames, the closing
/// handshake, violations, Kubernetes channels and SPDY tunneled over WebSocket.
@Suite("WebSocket sessions")
struct WebSocketSessionTests {
    /// A listener whose connections echo every message (`/echo`), or run `channels` for a channel protocol.
    static func listener(
        channels: (@Sendable (WebSocketChannelSession) async -> Void)? = nil
    ) async throws -> StreamingListener {
        try await StreamingListener.start(host: "127.0.0.1", port: 0) { head in
            if head.path == "/echo" {
                return .webSocket(protocols: ["echo.skiff"], acceptsNone: true) { connection in
                    while let message = await connection.next() { try? await connection.send(message) }
                }
            }
            if head.path == "/channels", let channels {
                return .webSocket(protocols: WebSocketChannelProtocol.remoteCommand.map(\.name), acceptsNone: true) { connection in
                    let proto = WebSocketChannelProtocol.named(connection.subprotocol, among: WebSocketChannelProtocol.remoteCommand)!
                    await channels(WebSocketChannelSession(connection: connection, protocol: proto, readable: [0, 4]))
                }
            }
            if head.path == "/tunnel" {
                return .webSocket(protocols: ["SPDY/3.1+echo.skiff"], acceptsNone: false) { connection in
                    guard let session = try? SPDYSession.tunneled(over: connection, role: .server) else { return }
                    await withTaskGroup(of: Void.self) { group in
                        for await stream in session.incomingStreams {
                            stream.accept()
                            group.addTask {
                                while let chunk = await stream.read() { try? await stream.write(chunk) }
                                await stream.closeWrite()
                            }
                        }
                    }
                }
            }
            return .reject(.notFound)
        }
    }

    @Test func echoesMessagesLargerThanTheReadLimit() async throws {
        let listener = try await Self.listener()
        defer { Task { await listener.close() } }
        let connection = try await StreamingClient.connectWebSocket(url: "http://127.0.0.1:\(listener.port)/echo", protocols: ["x", "echo.skiff"])
        #expect(connection.subprotocol == "echo.skiff")
        try await connection.send(.text("héllo"))
        #expect(await connection.next() == .text("héllo"))
        // Eight 1 MiB messages unread: the queue passes its 4 MiB pause mark, then drains.
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for _ in 0..<8 { try await connection.send(.binary(payload)) }
        try await Task.sleep(for: .milliseconds(200))
        for _ in 0..<8 { #expect(await connection.next() == .binary(payload)) }
        await connection.close()
        #expect(connection.peerClose?.code == .normal && connection.isClosed)
        await #expect(throws: WebSocketError.connectionClosed) { try await connection.send(.text("late")) }
    }

    @Test func rawPeerSeesPongsCloseEchoAndViolations() async throws {
        let listener = try await Self.listener()
        defer { Task { await listener.close() } }
        // A masked ping between two fragments: answered at once, the message still arrives whole.
        var peer = try await RawWebSocketPeer.connect(port: listener.port, path: "/echo")
        try await peer.send(WebSocketFrame(fin: false, opcode: .binary, payload: [1, 2]))
        try await peer.send(WebSocketFrame(opcode: .ping, payload: Array("are you there".utf8)))
        try await peer.send(WebSocketFrame(opcode: .continuation, payload: [3]))
        #expect(try await peer.next() == WebSocketFrame(opcode: .pong, payload: Array("are you there".utf8)))
        #expect(try await peer.next() == WebSocketFrame(opcode: .binary, payload: [1, 2, 3]))
        // The client starts closing: the server echoes the code and ends the TCP connection.
        try await peer.send(.close(.goingAway, reason: "bye"))
        #expect(try await peer.next() == .close(.goingAway))
        #expect(try await peer.closedWithin(.seconds(30)))

        // An unmasked client frame is a protocol error.
        peer = try await RawWebSocketPeer.connect(port: listener.port, path: "/echo")
        try await peer.sendRaw(WebSocketFrame(opcode: .binary, payload: [1]).encoded())
        #expect(try await peer.next().map(Self.closeCode) == .protocolError)
        #expect(try await peer.closedWithin(.seconds(30)))

        // A frame over 32 MiB is refused from its header.
        peer = try await RawWebSocketPeer.connect(port: listener.port, path: "/echo")
        try await peer.sendRaw([0x82, 0xFF, 0, 0, 0, 0, 0x02, 0, 0, 1, 1, 2, 3, 4])
        #expect(try await peer.next().map(Self.closeCode) == .messageTooBig)

        // Invalid UTF-8 in a text message.
        peer = try await RawWebSocketPeer.connect(port: listener.port, path: "/echo")
        try await peer.send(WebSocketFrame(opcode: .text, payload: [0xFF, 0xFE]))
        #expect(try await peer.next().map(Self.closeCode) == .invalidPayload)
    }

    static func closeCode(_ frame: WebSocketFrame) -> WebSocketCloseCode? {
        guard frame.opcode == .close, frame.payload.count >= 2 else { return nil }
        return WebSocketCloseCode(UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]))
    }

    @Test func base64ChannelsOnTheWire() async throws {
        // The server announces itself on channel 1, echoes channel 0 to channel 1 and ends with the connection.
        let listener = try await Self.listener { session in
            try? await session.channel(1).announce()
            while let chunk = await session.channel(0).read() { try? await session.channel(1).write(chunk) }
        }
        defer { Task { await listener.close() } }
        var peer = try await RawWebSocketPeer.connect(port: listener.port, path: "/channels", protocols: ["base64.channel.k8s.io"])
        #expect(peer.subprotocol == "base64.channel.k8s.io")
        #expect(try await peer.next() == WebSocketFrame(opcode: .text, payload: Array("1".utf8)))
        try await peer.send(WebSocketFrame(opcode: .text, payload: Array("0aGVsbG8=".utf8)))
        #expect(try await peer.next() == WebSocketFrame(opcode: .text, payload: Array("1aGVsbG8=".utf8)))
        // Data for a channel the server does not read is dropped; invalid base64 ends the connection.
        try await peer.send(WebSocketFrame(opcode: .text, payload: Array("2aGVsbG8=".utf8)))
        try await peer.send(WebSocketFrame(opcode: .text, payload: Array("0!!".utf8)))
        #expect(try await peer.next().map(Self.closeCode) == .invalidPayload)
    }

    @Test func v5CloseSignalEndsOneChannel() async throws {
        let ended = Mutex<[UInt8]?>(nil)
        let listener = try await Self.listener { session in
            let stdin = await session.channel(0).readAll()
            ended.withLock { $0 = stdin }
            // Still usable after stdin ended: the answer goes out on channel 1, then the session closes.
            try? await session.channel(1).write(Array("got \(stdin.count)".utf8))
            await session.closeGracefully(timeout: .seconds(5))
        }
        defer { Task { await listener.close() } }
        let connection = try await StreamingClient.connectWebSocket(url: "http://127.0.0.1:\(listener.port)/channels", protocols: ["v5.channel.k8s.io"])
        let session = WebSocketChannelSession(connection: connection, protocol: .v5, readable: [1])
        try await session.channel(0).write(Array("abc".utf8))
        try await session.channel(0).write([UInt8](repeating: 7, count: 100_000))
        await session.channel(0).closeWrite()
        #expect(String(decoding: await session.channel(1).readAll(), as: UTF8.self) == "got 100003")
        #expect(ended.withLock { $0?.count } == 100_003)
        await session.waitClosed()
        #expect(connection.peerClose?.code == .normal)
    }

    /// A channel nobody reads holds up the others once it has 1 MiB queued (the bound on memory), until
    /// it is read or its reader stops reading.
    @Test func unreadChannelHoldsUpTheOthersUntilDrainedOrStopped() async throws {
        let listener = try await Self.listener { session in
            // 3 MiB on stdout, then a word on stderr; twice (the client stops reading stdout the second time).
            for _ in 0..<2 {
                try? await session.channel(1).write([UInt8](repeating: 1, count: 3 << 20))
                try? await session.channel(2).write(Array("after".utf8))
            }
            await session.closeGracefully(timeout: .seconds(5))
        }
        defer { Task { await listener.close() } }
        let connection = try await StreamingClient.connectWebSocket(url: "http://127.0.0.1:\(listener.port)/channels", protocols: ["v4.channel.k8s.io"])
        let session = WebSocketChannelSession(connection: connection, protocol: .v4, readable: [1, 2])
        let stderr = Task { await session.channel(2).read() }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(30))
        while session.queuedBytes(1) <= WebSocketChannelSession.channelBufferLimit, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        // stdout's queue is over its limit, so the reader task waits: stderr's message stays undelivered.
        try await Task.sleep(for: .milliseconds(200))
        #expect(session.queuedBytes(1) > WebSocketChannelSession.channelBufferLimit && session.queuedBytes(1) < 2 << 20)
        #expect(session.queuedBytes(2) == 0)
        var stdout = 0
        while stdout < 3 << 20, let chunk = await session.channel(1).read() { stdout += chunk.count }
        #expect(stdout == 3 << 20)
        #expect(await stderr.value == Array("after".utf8))
        // Second round: stop reading stdout instead; its queue is dropped and stderr flows again.
        while session.queuedBytes(1) <= WebSocketChannelSession.channelBufferLimit { try await Task.sleep(for: .milliseconds(20)) }
        session.channel(1).stopReading()
        #expect(await session.channel(2).read() == Array("after".utf8))
        #expect(await session.channel(1).read() == nil)
        await session.waitClosed()
    }

    @Test func spdyTunneledOverWebSocket() async throws {
        let listener = try await Self.listener()
        defer { Task { await listener.close() } }
        let (session, proto) = try await StreamingClient.connectTunneled(url: "http://127.0.0.1:\(listener.port)/tunnel", protocols: ["echo.skiff"])
        #expect(proto == "echo.skiff")
        // Two streams of 3 MiB each: more than the WebSocket read limit and the SPDY windows.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<2 {
                group.addTask {
                    let stream = try await session.openStream(headers: ["n": "\(n)"])
                    let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
                    async let echoed = stream.readAll(limit: 8 << 20)
                    try await stream.write(payload)
                    await stream.closeWrite()
                    #expect(await echoed == payload)
                }
            }
            try await group.waitForAll()
        }
        session.close()
        await session.waitClosed()
        #expect(session.isClosed)
    }

    @Test func refusedUpgradesAreHTTPErrors() async throws {
        let listener = try await Self.listener()
        defer { Task { await listener.close() } }
        await #expect(throws: StreamingClientError.upgradeRefused(status: 404, message: "404 page not found")) {
            _ = try await StreamingClient.connectWebSocket(url: "http://127.0.0.1:\(listener.port)/nope", protocols: ["echo.skiff"])
        }
        do {
            _ = try await StreamingClient.connectWebSocket(url: "http://127.0.0.1:\(listener.port)/echo", protocols: ["other"])
            Issue.record("an unknown subprotocol was accepted")
        } catch StreamingClientError.upgradeRefused(let status, _) {
            #expect(status == 403)
        }
    }
}

/// A hand-driven WebSocket client: the handshake by hand, masked frames out, server frames in.
struct RawWebSocketPeer {
    let raw: RawPeer
    let subprotocol: String
    var decoder = WebSocketFrameDecoder(expectMasked: false, maxFramePayload: 1 << 20)

    static func connect(port: Int, path: String, protocols: [String] = []) async throws -> RawWebSocketPeer {
        let raw = try await RawPeer.connect(port: port)
        let key = WebSocketHandshake.newKey()
        try await raw.send(HTTPUpgrade.serializeRequest(WebSocketHandshake.request(target: path, host: "x", key: key, protocols: protocols)))
        var pending: [UInt8] = []
        while true {
            pending += try await raw.receive()
            guard let (head, used) = try HTTPUpgrade.parseHead(pending, isRequest: false) else { continue }
            let chosen = try WebSocketHandshake.check(response: head, body: [], key: key, offered: protocols).get()
            var peer = RawWebSocketPeer(raw: raw, subprotocol: chosen)
            peer.decoder.append(pending[used...])
            return peer
        }
    }

    func send(_ frame: WebSocketFrame) async throws {
        try await sendRaw(frame.encoded(mask: [0x5A, 0xA5, 0x0F, 0xF0]))
    }

    func sendRaw(_ bytes: [UInt8]) async throws { try await raw.send(bytes) }

    /// The next frame from the server.
    mutating func next() async throws -> WebSocketFrame? {
        while true {
            if let frame = try decoder.next() { return frame }
            decoder.append(try await raw.receive())
        }
    }

    /// Whether the server ended the TCP connection within `limit`.
    func closedWithin(_ limit: Duration) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        while clock.now < deadline {
            if raw.inbox.state.withLock({ $0.closed }) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Look once more: on a loaded machine the last sleep can end well past the deadline (seen in CI,
        // with synchronous tests holding the cooperative pool), and the close may have come meanwhile.
        return raw.inbox.state.withLock { $0.closed }
    }
}
