import CRI
import GRPCCore
import Logging
import SkiffSupport

/// The server-streaming counterpart of `unary` (UnaryRoute.swift): decode the one request (malformed bytes
/// are INVALID_ARGUMENT), run the handler with a writer for the responses, map its error to a gRPC status,
/// and log method, outcome and duration when the stream ends.
extension RPCRouter {
    mutating func serverStreaming<Request, Response>(
        _ method: CRIMethod<Request, Response>,
        logger: Logger,
        limit: Int,
        _ handler: @escaping @Sendable (Request, ServerContext, RPCWriter<Response>) async throws -> Void
    ) {
        let name = method.descriptor.method
        registerHandler(
            forMethod: method.descriptor,
            deserializer: SizeLimitedDeserializer<Request>(limit: limit),
            serializer: CRISerializer<Response>()
        ) { streamRequest, context in
            let start = monotonicNanos()
            let request: Request
            do {
                request = try await ServerRequest(stream: streamRequest).message
            } catch {
                throw Self.failed(error, name: name, logger: logger, start: start)
            }
            logger.debug("rpc stream opened", metadata: ["method": "\(name)"])
            return StreamingServerResponse { writer in
                do {
                    try await handler(request, context, writer)
                } catch {
                    throw Self.failed(error, name: name, logger: logger, start: start)
                }
                logger.debug("rpc stream ended", metadata: ["method": "\(name)", "ms": "\(Self.streamMillis(since: start))"])
                return [:]
            }
        }
    }

    private static func failed(_ error: any Error, name: String, logger: Logger, start: UInt64) -> RPCError {
        let status = rpcError(from: error)
        let level: Logger.Level = status.code == .internalError || status.code == .unknown ? .error : .info
        logger.log(
            level: level, "rpc failed",
            metadata: ["method": "\(name)", "code": "\(status.code)", "error": "\(status.message)", "ms": "\(streamMillis(since: start))"])
        return status
    }

    private static func streamMillis(since start: UInt64) -> String {
        let micros = (monotonicNanos() - start) / 1000
        return "\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"
    }
}
