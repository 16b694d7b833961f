import CRI
import Logging
import SkiffRuntime
import SkiffStreaming
import SkiffSupport
import Synchronization

/// skiffd's streaming server, after kubelet's `cri/streaming` as containerd embeds it: Exec, Attach and
/// PortForward validate their request, park it here under a random single-use token that expires
/// after a minute, and answer `http://<stream_address>:<port>/{exec,attach,portforward}/<token>`. The
/// client then upgrades that URL to SPDY/3.1 or to WebSocket (by its `Upgrade` header) and the session
/// runs (docs/streaming.md).
final class StreamingService: Sendable {
    let listener: StreamingListener
    let cache: StreamingRequestCache
    let logger: Logger

    private init(listener: StreamingListener, cache: StreamingRequestCache, logger: Logger) {
        self.listener = listener
        self.cache = cache
        self.logger = logger
    }

    /// Binds `address:port` (port 0: any free port) and serves sessions through `context`.
    static func start(address: String, port: Int, context: RuntimeContext, logger: Logger) async throws -> StreamingService {
        let cache = StreamingRequestCache()
        let sessions = StreamingSessions(context: context, logger: logger)
        let listener = try await StreamingListener.start(host: address, port: port) { head in
            guard head.method == "GET" || head.method == "POST" else {
                return .reject(HTTPErrorAnswer(405, "405 method not allowed"))
            }
            let parts = head.path.split(separator: "/", omittingEmptySubsequences: true)
            guard parts.count == 2, let pending = cache.consume(String(parts[1])) else { return .reject(.notFound) }
            // kubelet's choice: a WebSocket upgrade (`Upgrade: websocket`) or SPDY, same URL and token.
            let webSocket = WebSocketHandshake.isUpgradeRequest(head)
            switch (parts[0], pending) {
            case ("exec", .exec(let request)):
                if webSocket {
                    return .webSocket(protocols: WebSocketChannelProtocol.remoteCommand.map(\.name), acceptsNone: true) { connection in
                        await sessions.exec(request, webSocket: connection)
                    }
                }
                return .upgrade(protocols: RemoteCommand.protocols) { session, proto in
                    await sessions.exec(request, session: session, protocol: proto)
                }
            case ("attach", .attach(let request)):
                if webSocket {
                    return .webSocket(protocols: WebSocketChannelProtocol.remoteCommand.map(\.name), acceptsNone: true) { connection in
                        await sessions.attach(request, webSocket: connection)
                    }
                }
                return .upgrade(protocols: RemoteCommand.protocols) { session, proto in
                    await sessions.attach(request, session: session, protocol: proto)
                }
            case ("portforward", .portForward(let request)):
                if webSocket {
                    let protocols = [PortForwardSession.tunnelProtocol] + WebSocketChannelProtocol.portForward.map(\.name)
                    return .webSocket(protocols: protocols, acceptsNone: true) { connection in
                        await sessions.portForward(request, webSocket: connection)
                    }
                }
                return .upgrade(protocols: [RemoteCommand.portForwardProtocol]) { session, _ in
                    await sessions.portForward(request, session: session)
                }
            default:
                return .reject(.notFound)
            }
        }
        logger.info("streaming server listening", metadata: ["address": "\(listener.authority)"])
        return StreamingService(listener: listener, cache: cache, logger: logger)
    }

    /// Parks `request` and returns its URL.
    func url(for request: PendingStreamRequest) throws(SkiffError) -> String {
        guard let token = cache.insert(request) else {
            throw SkiffError(.resourceExhausted, "too many cached streaming requests (\(StreamingRequestCache.maxInFlight) waiting for their client)")
        }
        return "http://\(listener.authority)/\(request.path)/\(token)"
    }

    func stop() async {
        await listener.close()
    }
}

/// A validated request waiting for its client to connect.
enum PendingStreamRequest: Sendable {
    case exec(ExecRequest)
    case attach(AttachRequest)
    case portForward(PortForwardRequest)

    var path: String {
        switch self {
        case .exec: "exec"
        case .attach: "attach"
        case .portForward: "portforward"
        }
    }
}

/// The requests parked for their clients.
typealias StreamingRequestCache = TokenCache<PendingStreamRequest>
