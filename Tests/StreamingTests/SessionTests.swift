import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import SkiffStreaming

/// Both ends of real sessions over loopback TCP.
@Suite("SPDY sessions")
struct SessionTests {
    /// A listener whose sessions echo every stream back and close it after the peer's FIN.
    static func echoListener() async throws -> StreamingListener {
        try await StreamingListener.start(host: "127.0.0.1", port: 0) { head in
            guard head.path.hasPrefix("/echo/") else { return .reject(.notFound) }
            return .upgrade(protocols: ["echo.skiff"]) { session, _ in
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
    }

    @Test func echoesConcurrentStreamsBeyondTheWindow() async throws {
        let listener = try await Self.echoListener()
        defer { Task { await listener.close() } }
        let (session, proto) = try await StreamingClient.connect(url: "http://127.0.0.1:\(listener.port)/echo/1", protocols: ["x", "echo.skiff"])
        #expect(proto == "echo.skiff")
        // 3 MiB each on two streams: three times the receive window, so window updates must flow.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<2 {
                group.addTask {
                    let stream = try await session.openStream(headers: ["n": "\(n)"])
                    let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
                    async let echoed = stream.readAll(limit: 8 << 20)
                    try await stream.write(payload)
                    await stream.closeWrite()
                    let back = await echoed
                    #expect(back.count == payload.count && back == payload)
                }
            }
            try await group.waitForAll()
        }
        session.close()
        await session.waitClosed()
    }

    @Test func writerWaitsForTheReadersWindow() async throws {
        let reader = Mutex<SPDYStream?>(nil)
        let listener = try await StreamingListener.start(host: "127.0.0.1", port: 0) { _ in
            .upgrade(protocols: ["p"]) { session, _ in
                for await stream in session.incomingStreams {
                    stream.accept()
                    reader.withLock { $0 = stream }
                }
            }
        }
        defer { Task { await listener.close() } }
        let (session, _) = try await StreamingClient.connect(url: "http://127.0.0.1:\(listener.port)/x", protocols: ["p"])
        let stream = try await session.openStream(headers: ["a": "b"])
        let total = 3 << 20
        let written = Mutex(false)
        let writer = Task {
            try await stream.write([UInt8](repeating: 1, count: total))
            written.withLock { $0 = true }
        }
        // Nobody reads on the server: exactly one window's worth arrives, and the writer waits.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(30))
        var serverSession: SPDYSession?
        while serverSession == nil {
            if let s = reader.withLock({ $0 })?.session, s.bufferedBytes == Int(SPDYSession.receiveWindow) {
                serverSession = s
            } else if clock.now >= deadline {
                break  // checked once more after the last sleep, however late it ended
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(serverSession != nil, "the server never held exactly one window of unread data")
        #expect(written.withLock { $0 } == false)
        let serverStream = try #require(reader.withLock { $0 })
        var received = 0
        while received < total, let chunk = await serverStream.read() { received += chunk.count }
        try await writer.value
        #expect(received == total && written.withLock { $0 })
        session.close()
    }

    @Test func peerWithoutFlowControlIsNotThrottled() async throws {
        // spdystream (client-go, kubelet) sends neither SETTINGS nor WINDOW_UPDATE: a raw client that
        // behaves the same must still receive far more than the default 64 KiB window.
        let listener = try await StreamingListener.start(host: "127.0.0.1", port: 0) { _ in
            .upgrade(protocols: ["p"]) { session, _ in
                for await stream in session.incomingStreams {
                    stream.accept()
                    try? await stream.write([UInt8](repeating: 9, count: 500_000))
                    await stream.closeWrite()
                }
            }
        }
        defer { Task { await listener.close() } }
        let raw = try await RawPeer.connect(port: listener.port)
        try await raw.send(HTTPUpgrade.serializeRequest(HTTPUpgrade.request(target: "/x", host: "h", protocols: ["p"])))
        let encoder = try SPDYFrameEncoder()
        let decoder = try SPDYFrameDecoder()
        // Skip the 101 head.
        var pending: [UInt8] = []
        while true {
            pending += try await raw.receive()
            if let (head, used) = try HTTPUpgrade.parseHead(pending, isRequest: false) {
                #expect(head.statusCode == 101)
                decoder.append(pending[used...])
                break
            }
        }
        try await raw.send(encoder.encode(.synStream(streamID: 1, associatedTo: 0, priority: 0, fin: true, unidirectional: false, headers: ["k": "v"])))
        var data = 0
        var fin = false
        var sawReply = false
        while !fin {
            while let frame = try decoder.next() {
                switch frame {
                case .synReply(let id, _, _): sawReply = id == 1
                case .data(1, let f, let payload):
                    data += payload.count
                    fin = f
                default: break
                }
            }
            if !fin { decoder.append(try await raw.receive()) }
        }
        #expect(sawReply && data == 500_000)
        try await raw.close()
    }

    @Test func answersPingsAndRefusesBadStreamIDs() async throws {
        let listener = try await StreamingListener.start(host: "127.0.0.1", port: 0) { _ in
            .upgrade(protocols: ["p"]) { session, _ in
                for await stream in session.incomingStreams { stream.accept() }
            }
        }
        defer { Task { await listener.close() } }
        let raw = try await RawPeer.connect(port: listener.port)
        try await raw.send(HTTPUpgrade.serializeRequest(HTTPUpgrade.request(target: "/x", host: "h", protocols: ["p"])))
        let encoder = try SPDYFrameEncoder()
        let decoder = try SPDYFrameDecoder()
        // An even (server-side) stream id from a client is a protocol error; odd pings are answered.
        try await raw.send(encoder.encode(.synStream(streamID: 2, associatedTo: 0, priority: 0, fin: false, unidirectional: false, headers: [:]))
            + encoder.encode(.ping(id: 5)))
        var pending: [UInt8] = []
        var frames: [SPDYFrame] = []
        var headDone = false
        while frames.filter({ if case .settings = $0 { return false }; if case .windowUpdate = $0 { return false }; return true }).count < 2 {
            let bytes = try await raw.receive()
            if !headDone {
                pending += bytes
                guard let (_, used) = try HTTPUpgrade.parseHead(pending, isRequest: false) else { continue }
                headDone = true
                decoder.append(pending[used...])
            } else {
                decoder.append(bytes)
            }
            while let frame = try decoder.next() { frames.append(frame) }
        }
        #expect(frames.contains(.rstStream(streamID: 2, status: .protocolError)))
        #expect(frames.contains(.ping(id: 5)))
        #expect(frames.first == .settings(clearPrevious: false, [SPDYSetting(id: 7, value: UInt32(SPDYSession.receiveWindow))]))
        try await raw.close()
    }

    @Test func rejectedRequestsGetHTTPErrors() async throws {
        let listener = try await Self.echoListener()
        defer { Task { await listener.close() } }
        await #expect(throws: StreamingClientError.upgradeRefused(status: 404, message: "404 page not found")) {
            _ = try await StreamingClient.connect(url: "http://127.0.0.1:\(listener.port)/nope", protocols: ["echo.skiff"])
        }
        await #expect(throws: StreamingClientError.self) {
            _ = try await StreamingClient.connect(url: "http://127.0.0.1:\(listener.port)/echo/1", protocols: ["other"])
        }
    }

    @Test func resetReachesTheOtherEnd() async throws {
        let seen = Mutex<SPDYResetStatus?>(nil)
        let done = AsyncStream<Void>.makeStream()
        let listener = try await StreamingListener.start(host: "127.0.0.1", port: 0) { _ in
            .upgrade(protocols: ["p"]) { session, _ in
                for await stream in session.incomingStreams {
                    stream.accept()
                    while await stream.read() != nil {}
                    seen.withLock { $0 = stream.resetStatus }
                    done.continuation.finish()
                }
            }
        }
        defer { Task { await listener.close() } }
        let (session, _) = try await StreamingClient.connect(url: "http://127.0.0.1:\(listener.port)/x", protocols: ["p"])
        let stream = try await session.openStream(headers: ["a": "b"])
        try await stream.write([1, 2, 3])
        stream.reset(.cancel)
        for await _ in done.stream {}
        #expect(seen.withLock { $0 } == .cancel)
        await #expect(throws: SPDYError.self) { try await stream.write([4]) }
        session.close()
    }
}

/// A bare TCP peer for speaking frames by hand.
final class RawPeer: Sendable {
    let channel: any Channel
    let inbox: Inbox

    final class Inbox: Sendable {
        let state = Mutex<(bytes: [UInt8], closed: Bool)>(([], false))
    }

    init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let inbox: Inbox
        init(_ inbox: Inbox) { self.inbox = inbox }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            inbox.state.withLock { $0.bytes += bytes }
        }
        func channelInactive(context: ChannelHandlerContext) { inbox.state.withLock { $0.closed = true } }
    }

    static func connect(port: Int) async throws -> RawPeer {
        let inbox = Inbox()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collector(inbox)) } }
            .connect(host: "127.0.0.1", port: port).get()
        return RawPeer(channel: channel, inbox: inbox)
    }

    func send(_ bytes: [UInt8]) async throws { try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get() }

    /// Whatever arrived since the last call (waits for something; polling keeps this helper simple).
    func receive() async throws -> [UInt8] {
        for _ in 0..<6000 {
            let (bytes, closed) = inbox.state.withLock { s in
                defer { s.bytes = [] }
                return (s.bytes, s.closed)
            }
            if !bytes.isEmpty { return bytes }
            if closed { throw SPDYError.connectionClosed }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw SPDYError.timedOut("waiting for bytes")
    }

    func close() async throws { try await channel.close() }
}
