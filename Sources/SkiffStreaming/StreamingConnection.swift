import NIOCore
import NIOPosix
import Synchronization

/// What a streaming server does with one HTTP request.
public enum StreamingRoute: Sendable {
    /// Answer with an HTTP error and close.
    case reject(HTTPErrorAnswer)
    /// Upgrade to SPDY/3.1 with one of `protocols` (X-Stream-Protocol-Version), then run `handler`
    /// with the session and the negotiated protocol. The handler owns the session and closes it.
    case upgrade(protocols: [String], handler: @Sendable (SPDYSession, String) async -> Void)
}

/// The byte-level life of a streaming connection on either end: the HTTP/1.1 head, then SPDY frames.
final class StreamingConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Mode {
        case server(route: @Sendable (HTTPHead) -> StreamingRoute, opened: @Sendable (SPDYSession) -> Void)
        case client(offered: [String], promise: EventLoopPromise<(SPDYSession, String)>)
    }

    enum Phase {
        case head([UInt8])
        /// Client: an error answer whose body is still arriving.
        case errorBody(HTTPHead, needed: Int, [UInt8])
        /// Server: the request's own body (Content-Length) to skip before frames start.
        case spdy(SPDYFrameDecoder, SPDYSession, skip: Int)
        case done
    }

    private let mode: Mode
    private var phase: Phase = .head([])

    init(mode: Mode) {
        self.mode = mode
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        consume(context: context, bytes)
    }

    private func consume(context: ChannelHandlerContext, _ bytes: [UInt8]) {
        switch phase {
        case .head(let collected):
            let all = collected + bytes
            let parsed: (HTTPHead, Int)?
            do {
                parsed = try HTTPUpgrade.parseHead(all, isRequest: isServer)
            } catch {
                fail(context: context, answer: HTTPErrorAnswer(400, "\(error)"), clientError: .protocolError("\(error)"))
                return
            }
            guard let (head, used) = parsed else {
                phase = .head(all)
                return
            }
            let rest = Array(all[used...])
            switch mode {
            case .server(let route, let opened):
                serve(context: context, head: head, rest: rest, route: route, opened: opened)
            case .client(let offered, let promise):
                if head.statusCode == 101 {
                    switch HTTPUpgrade.check(response: head, body: [], offered: offered) {
                    case .success(let chosen):
                        guard let session = startSession(context: context, role: .client, rest: rest, skip: 0) else { return }
                        promise.succeed((session, chosen))
                    case .failure(let error):
                        phase = .done
                        promise.fail(error)
                        context.close(promise: nil)
                    }
                } else {
                    let needed = min(Int(head.value("Content-Length") ?? "") ?? 64 * 1024, 64 * 1024)
                    phase = .errorBody(head, needed: needed, [])
                    consume(context: context, rest)
                }
            }
        case .errorBody(let head, let needed, let collected):
            let all = collected + bytes
            if all.count >= needed {
                finishErrorBody(context: context, head: head, body: Array(all.prefix(needed)))
            } else {
                phase = .errorBody(head, needed: needed, all)
            }
        case .spdy(let decoder, let session, let skip):
            var input = bytes[...]
            if skip > 0 {
                let n = min(skip, input.count)
                input = input.dropFirst(n)
                phase = .spdy(decoder, session, skip: skip - n)
            }
            decoder.append(input)
            do {
                while let frame = try decoder.next() { session.receive(frame) }
            } catch {
                // A broken frame stream cannot be resynchronised: end the connection.
                phase = .done
                session.close()
                context.close(promise: nil)
            }
        case .done:
            break
        }
    }

    private var isServer: Bool {
        if case .server = mode { return true }
        return false
    }

    private func serve(
        context: ChannelHandlerContext, head: HTTPHead, rest: [UInt8],
        route: @Sendable (HTTPHead) -> StreamingRoute, opened: @Sendable (SPDYSession) -> Void
    ) {
        switch route(head) {
        case .reject(let answer):
            fail(context: context, answer: answer, clientError: nil)
        case .upgrade(let protocols, let handler):
            switch HTTPUpgrade.negotiate(head, supported: protocols) {
            case .failure(let answer):
                fail(context: context, answer: answer, clientError: nil)
            case .success(let (chosen, response)):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: response)), promise: nil)
                let skip = Int(head.value("Content-Length") ?? "") ?? 0
                guard let session = startSession(context: context, role: .server, rest: rest, skip: max(0, skip)) else { return }
                opened(session)
                Task { await handler(session, chosen) }
            }
        }
    }

    private func startSession(context: ChannelHandlerContext, role: SPDYSession.Role, rest: [UInt8], skip: Int) -> SPDYSession? {
        do {
            let session = try SPDYSession(channel: context.channel, role: role)
            let decoder = try SPDYFrameDecoder()
            phase = .spdy(decoder, session, skip: skip)
            session.start()
            if !rest.isEmpty { consume(context: context, rest) }
            return session
        } catch {
            fail(context: context, answer: HTTPErrorAnswer(500, "\(error)"), clientError: .protocolError("\(error)"))
            return nil
        }
    }

    private func finishErrorBody(context: ChannelHandlerContext, head: HTTPHead, body: [UInt8]) {
        phase = .done
        if case .client(let offered, let promise) = mode {
            if case .failure(let error) = HTTPUpgrade.check(response: head, body: body, offered: offered) {
                promise.fail(error)
            } else {
                promise.fail(StreamingClientError.protocolError("unexpected answer \(head.statusCode)"))
            }
        }
        context.close(promise: nil)
    }

    private func fail(context: ChannelHandlerContext, answer: HTTPErrorAnswer, clientError: StreamingClientError?) {
        phase = .done
        switch mode {
        case .server:
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: answer.bytes))).whenComplete { _ in channel.close(promise: nil) }
        case .client(_, let promise):
            promise.fail(clientError ?? .protocolError(answer.message))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch phase {
        case .spdy(_, let session, _):
            session.connectionClosed()
        case .errorBody(let head, _, let body):
            finishErrorBody(context: context, head: head, body: body)
        case .head:
            if case .client(_, let promise) = mode {
                promise.fail(StreamingClientError.protocolError("the server closed the connection before answering"))
            }
        case .done:
            break
        }
        phase = .done
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A TCP listener for streaming connections (kubelet's streaming server, in NIO).
public final class StreamingListener: Sendable {
    let channel: any Channel
    /// The address actually bound (port 0 picks a free port).
    public let host: String
    public let port: Int
    private let registry: SessionRegistry

    private init(channel: any Channel, host: String, port: Int, registry: SessionRegistry) {
        self.channel = channel
        self.host = host
        self.port = port
        self.registry = registry
    }

    public static func start(host: String, port: Int, route: @escaping @Sendable (HTTPHead) -> StreamingRoute) async throws -> StreamingListener {
        let registry = SessionRegistry()
        let opened: @Sendable (SPDYSession) -> Void = { session in
            registry.add(session)
            Task {
                await session.waitClosed()
                registry.remove(session)
            }
        }
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        StreamingConnectionHandler(mode: .server(route: route, opened: opened)))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        return StreamingListener(channel: channel, host: host, port: bound, registry: registry)
    }

    /// `host:port` for URLs (IPv6 in brackets).
    public var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Stops listening and closes every session still open.
    public func close() async {
        try? await channel.close()
        for session in registry.all() { session.close() }
    }
}

final class SessionRegistry: Sendable {
    private let sessions = Mutex<[ObjectIdentifier: SPDYSession]>([:])
    func add(_ s: SPDYSession) { sessions.withLock { $0[ObjectIdentifier(s)] = s } }
    func remove(_ s: SPDYSession) { _ = sessions.withLock { $0.removeValue(forKey: ObjectIdentifier(s)) } }
    func all() -> [SPDYSession] { sessions.withLock { Array($0.values) } }
}

/// The client end: connect to a streaming URL, upgrade, and get the session.
public enum StreamingClient {
    public static func connect(url: String, protocols: [String], method: String = "POST") async throws -> (session: SPDYSession, protocol: String) {
        guard let target = StreamingURL(url) else { throw StreamingClientError.badURL(url) }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: (SPDYSession, String).self)
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        StreamingConnectionHandler(mode: .client(offered: protocols, promise: promise)))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            promise.fail(error)
            throw StreamingClientError.connect("\(target.host):\(target.port): \(error)")
        }
        let request = HTTPUpgrade.request(method: method, target: target.path, host: target.authority, protocols: protocols)
        try await channel.writeAndFlush(ByteBuffer(bytes: HTTPUpgrade.serializeRequest(request))).get()
        let (session, chosen) = try await promise.futureResult.get()
        return (session, chosen)
    }
}

/// `http://host:port/path` as the runtimes hand them out.
public struct StreamingURL: Equatable, Sendable {
    public var host: String
    public var port: Int
    public var path: String

    public var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = rest[..<slash]
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { return nil }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? -1 : 80
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = Int(hostPort[hostPort.index(after: colon)...]) ?? -1
        } else {
            host = String(hostPort)
            port = 80
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }
}
