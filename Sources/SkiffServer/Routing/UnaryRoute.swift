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
        let name = method.descriptor.method
        registerHandler(
            forMethod: method.descriptor,
            deserializer: SizeLimitedDeserializer<Request>(limit: limit),
            serializer: CRISerializer<Response>()
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
