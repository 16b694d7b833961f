import CRI
import GRPCCore
import Logging
import SkiffSupport

/// Every unary CRI method goes through this wrapper: decode (malformed bytes are INVALID_ARGUMENT, raised
/// by the deserializer), call the handler, map its error to a gRPC status, and log method, outcome and
/// duration. It is skiffd's single interceptor.
extension RPCRouter {
    mutating func unary<Request, Response>(
        _ method: CRIMethod<Request, Response>,
        logger: Logger,
        limit: Int,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        register(method, logger: logger, limit: limit, serializer: CRISerializer<Response>(), handler)
    }

    /// A method whose handler answers with bytes it encoded itself (a List built from cached items).
    mutating func unary<Request, Response>(
        _ method: CRIMethod<Request, Response>,
        logger: Logger,
        limit: Int,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> EncodedMessage<Response>
    ) {
        register(method, logger: logger, limit: limit, serializer: EncodedMessageSerializer<Response>(), handler)
    }

    private mutating func register<Request, Response, Output: Sendable, Serializer: MessageSerializer<Output>>(
        _ method: CRIMethod<Request, Response>,
        logger: Logger,
        limit: Int,
        serializer: Serializer,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Output
    ) {
        let name = method.descriptor.method
        registerHandler(
            forMethod: method.descriptor,
            deserializer: SizeLimitedDeserializer<Request>(limit: limit),
            serializer: serializer
        ) { streamRequest, context in
            let start = monotonicNanos()
            do {
                let request = try await ServerRequest(stream: streamRequest)
                let response = try await handler(request.message, context)
                logger.debug("rpc", metadata: ["method": "\(name)", "ms": "\(Self.millis(since: start))"])
                return StreamingServerResponse(single: ServerResponse(message: response))
            } catch {
                let status = rpcError(from: error)
                let level: Logger.Level = status.code == .internalError || status.code == .unknown ? .error : .info
                logger.log(
                    level: level, "rpc failed",
                    metadata: [
                        "method": "\(name)", "code": "\(status.code)", "error": "\(status.message)",
                        "ms": "\(Self.millis(since: start))",
                    ])
                throw status
            }
        }
    }

    private static func millis(since start: UInt64) -> String {
        let micros = (monotonicNanos() - start) / 1000
        return "\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"
    }
}
