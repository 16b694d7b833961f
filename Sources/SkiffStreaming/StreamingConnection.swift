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
    /// Upgrade to WebSocket with one of `protocols` (Sec-WebSocket-Protocol; the first of `protocols`
    /// the client offered; a client offering none is accepted with "" if `acceptsNone`), then run
    /// `handler` with the connection (its `subprotocol` is the negotiated one). The handler owns it.
    case webSocket(protocols: [String], acceptsNone: Bool, handler: @Sendable (WebSocketConnection) async -> Void)
}

/// The byte-level life of a streaming connection on either end: the HTTP/1.1 head, then SPDY frames
/// or WebSocket frames.
final class StreamingConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Mode: Sendable {
        case server(route: @Sendable (HTTPHead) -> StreamingRoute, registry: SessionRegistry)
        case client(offered: [String], promise: EventLoopPromise<(SPDYSession, String)>)
        case webSocketClient(key: String, offered: [String], promise: EventLoopPromise<WebSocketConnection>)
    }

    enum Phase {
        case head([UInt8])
        /// Client: an error answer whose body is still arriving.
        case errorBody(HTTPHead, needed: Int, [UInt8])
        /// Server: the request's own body (Content-Length) to skip before frames start.
        case spdy(SPDYFrameDecoder, SPDYSession, skip: Int)
        case webSocket(WebSocketConnection)
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
            case .server(let route, let registry):
                serve(context: context, head: head, rest: rest, route: route, registry: registry)
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
                    readErrorBody(context: context, head: head, rest: rest)
                }
            case .webSocketClient(let key, let offered, let promise):
                if head.statusCode == 101 {
                    switch WebSocketHandshake.check(response: head, body: [], key: key, offered: offered) {
                    case .success(let chosen):
                        let connection = startWebSocket(context: context, role: .client, subprotocol: chosen, rest: rest)
                        promise.succeed(connection)
                    case .failure(let error):
                        phase = .done
                        promise.fail(error)
                        context.close(promise: nil)
                    }
                } else {
                    readErrorBody(context: context, head: head, rest: rest)
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
        case .webSocket(let connection):
            connection.receive(bytes)
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
        route: @Sendable (HTTPHead) -> StreamingRoute, registry: SessionRegistry
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
                registry.track(session, close: { session.close() }, waitClosed: { await session.waitClosed() })
                Task { await handler(session, chosen) }
            }
        case .webSocket(let protocols, let acceptsNone, let handler):
            switch WebSocketHandshake.negotiate(head, supported: protocols, acceptsNone: acceptsNone) {
            case .failure(let answer):
                fail(context: context, answer: answer, clientError: nil)
            case .success(let (chosen, response)):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: response)), promise: nil)
                let connection = startWebSocket(context: context, role: .server, subprotocol: chosen, rest: rest)
                registry.track(connection, close: { Task { await connection.close(.goingAway) } }, waitClosed: { await connection.waitClosed() })
                Task { await handler(connection) }
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

    private func startWebSocket(context: ChannelHandlerContext, role: WebSocketConnection.Role, subprotocol: String, rest: [UInt8]) -> WebSocketConnection {
        let connection = WebSocketConnection(channel: context.channel, role: role, subprotocol: subprotocol)
        phase = .webSocket(connection)
        if !rest.isEmpty { connection.receive(rest) }
        return connection
    }

    private func readErrorBody(context: ChannelHandlerContext, head: HTTPHead, rest: [UInt8]) {
        let needed = min(Int(head.value("Content-Length") ?? "") ?? 64 * 1024, 64 * 1024)
        phase = .errorBody(head, needed: needed, [])
        consume(context: context, rest)
    }

    private func finishErrorBody(context: ChannelHandlerContext, head: HTTPHead, body: [UInt8]) {
        phase = .done
        switch mode {
        case .server:
            break
        case .client(let offered, let promise):
            if case .failure(let error) = HTTPUpgrade.check(response: head, body: body, offered: offered) {
                promise.fail(error)
            } else {
                promise.fail(StreamingClientError.protocolError("unexpected answer \(head.statusCode)"))
            }
        case .webSocketClient(let key, let offered, let promise):
            if case .failure(let error) = WebSocketHandshake.check(response: head, body: body, key: key, offered: offered) {
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
        case .webSocketClient(_, _, let promise):
            promise.fail(clientError ?? .protocolError(answer.message))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch phase {
        case .spdy(_, let session, _):
            session.connectionClosed()
        case .webSocket(let connection):
            connection.connectionClosed()
        case .errorBody(let head, _, let body):
            finishErrorBody(context: context, head: head, body: body)
        case .head:
            let error = StreamingClientError.protocolError("the server closed the connection before answering")
            switch mode {
            case .server: break
            case .client(_, let promise): promise.fail(error)
            case .webSocketClient(_, _, let promise): promise.fail(error)
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
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        StreamingConnectionHandler(mode: .server(route: route, registry: registry)))
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
        registry.closeAll()
    }
}

/// The upgraded connections a listener still has open, to close them when it stops.
final class SessionRegistry: Sendable {
    private let sessions = Mutex<[ObjectIdentifier: @Sendable () -> Void]>([:])

    func track(_ object: AnyObject, close: @escaping @Sendable () -> Void, waitClosed: @escaping @Sendable () async -> Void) {
        let id = ObjectIdentifier(object)
        sessions.withLock { $0[id] = close }
        Task {
            await waitClosed()
            _ = self.sessions.withLock { $0.removeValue(forKey: id) }
        }
    }

    func closeAll() {
        for close in sessions.withLock({ Array($0.values) }) { close() }
    }
}

/// The client end: connect to a streaming URL, upgrade, and get the session.
public enum StreamingClient {
    public static func connect(url: String, protocols: [String], method: String = "POST") async throws -> (session: SPDYSession, protocol: String) {
        guard let target = StreamingURL(url) else { throw StreamingClientError.badURL(url) }
        let request = HTTPUpgrade.request(method: method, target: target.path, host: target.authority, protocols: protocols)
        let (session, chosen): (SPDYSession, String) = try await open(target, request: request) { loop in
            let promise = loop.makePromise(of: (SPDYSession, String).self)
            return (StreamingConnectionHandler.Mode.client(offered: protocols, promise: promise), promise)
        }
        return (session, chosen)
    }

    /// Connects with a WebSocket handshake offering `protocols` (newest first, as client-go).
    public static func connectWebSocket(url: String, protocols: [String]) async throws -> WebSocketConnection {
        guard let target = StreamingURL(url) else { throw StreamingClientError.badURL(url) }
        let key = WebSocketHandshake.newKey()
        let request = WebSocketHandshake.request(target: target.path, host: target.authority, key: key, protocols: protocols)
        let connection: WebSocketConnection = try await open(target, request: request) { loop in
            let promise = loop.makePromise(of: WebSocketConnection.self)
            return (StreamingConnectionHandler.Mode.webSocketClient(key: key, offered: protocols, promise: promise), promise)
        }
        return connection
    }

    /// SPDY tunneled over WebSocket, as client-go's tunneling dialer (crictl `--transport websocket`
    /// for port-forward): offers `SPDY/3.1+<protocol>` for each of `protocols`.
    public static func connectTunneled(url: String, protocols: [String]) async throws -> (session: SPDYSession, protocol: String) {
        let connection = try await connectWebSocket(url: url, protocols: protocols.map { WebSocketTunnel.prefix + $0 })
        let session = try SPDYSession.tunneled(over: connection, role: .client)
        return (session, String(connection.subprotocol.dropFirst(WebSocketTunnel.prefix.count)))
    }

    private static func open<Value: Sendable>(
        _ target: StreamingURL, request: HTTPHead,
        mode: (any EventLoop) -> (StreamingConnectionHandler.Mode, EventLoopPromise<Value>)
    ) async throws -> Value {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let (handlerMode, promise) = mode(loop)
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(StreamingConnectionHandler(mode: handlerMode))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            promise.fail(error)
            throw StreamingClientError.connect("\(target.host):\(target.port): \(error)")
        }
        try await channel.writeAndFlush(ByteBuffer(bytes: HTTPUpgrade.serializeRequest(request))).get()
        return try await promise.futureResult.get()
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
