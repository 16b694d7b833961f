import GRPCCore
import SkiffImages

/// How image store failures look on the wire.
extension ImageError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        switch kind {
        case .notFound: .notFound
        case .invalidReference: .invalidArgument
        case .unauthorized: .permissionDenied
        case .registry, .network: .unavailable
        case .stalled: .deadlineExceeded
        case .digestMismatch, .invalidContent: .dataLoss
        case .unsupported: .unimplemented
        case .io: .internalError
        case .conflict: .failedPrecondition
        case .cancelled: .cancelled
        }
    }

    public var rpcErrorMessage: String { message }
}
