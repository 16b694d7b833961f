import GRPCCore
import SkiffSupport

/// The one place where failures become gRPC statuses. Handlers throw `SkiffError` (or a library error
/// that converts to one); anything else is a bug and is reported as INTERNAL with its description.
extension SkiffError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        switch code {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .deadlineExceeded: .deadlineExceeded
        case .resourceExhausted: .resourceExhausted
        case .unimplemented: .unimplemented
        case .unavailable: .unavailable
        case .permissionDenied: .permissionDenied
        case .aborted: .aborted
        case .internal: .internalError
        }
    }

    public var rpcErrorMessage: String { message }
}

func rpcError(from error: any Error) -> RPCError {
    switch error {
    case let error as RPCError: error
    case let error as any RPCErrorConvertible: RPCError(error)
    case let error as SystemError: RPCError(code: .internalError, message: error.description)
    case is CancellationError: RPCError(code: .cancelled, message: "request cancelled")
    default: RPCError(code: .internalError, message: String(describing: error))
    }
}
