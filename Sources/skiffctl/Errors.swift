import ArgumentParser
import CRI
import GRPCCore

/// A failure skiffctl reports as one line: `skiffctl: <message>`.
struct CtlError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A failure with what skiffctl was doing when it happened, as crictl words it
/// ("run pod sandbox: ...", "stopping the pod sandbox \"x\": ...").
struct ContextError: Error, CustomStringConvertible {
    let context: String
    let underlying: any Error
    var description: String { "\(context): \(describe(underlying))" }
}

/// Runs `body`, prefixing any failure with `context`.
func step<T>(_ context: @autoclosure () -> String, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw ContextError(context: context(), underlying: error)
    }
}

/// gRPC status codes by Go's names, which crictl users know from `rpc error: code = NotFound`.
func codeName(_ code: RPCError.Code) -> String {
    let names = [
        0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound",
        6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition", 10: "Aborted",
        11: "OutOfRange", 12: "Unimplemented", 13: "Internal", 14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated",
    ]
    return names[code.rawValue] ?? "Code(\(code.rawValue))"
}

/// The innermost RPC error of a chain of context errors, if any.
func rpcError(in error: any Error) -> RPCError? {
    if let rpc = error as? RPCError { return rpc }
    if let wrapped = error as? ContextError { return rpcError(in: wrapped.underlying) }
    return nil
}

/// One line for any failure: for an RPC error, the status code comes first, then what skiffctl was doing,
/// then the runtime's message: `NotFound: get pod sandbox status "x": pod sandbox "x" not found`.
func errorLine(_ error: any Error) -> String {
    if let rpc = rpcError(in: error) {
        return "\(codeName(rpc.code)): \(contextPrefix(error))\(rpc.message)"
    }
    return describe(error)
}

private func contextPrefix(_ error: any Error) -> String {
    guard let wrapped = error as? ContextError else { return "" }
    return wrapped.context + ": " + contextPrefix(wrapped.underlying)
}

private func describe(_ error: any Error) -> String {
    switch error {
    case let rpc as RPCError: "\(codeName(rpc.code)): \(rpc.message)"
    case let codec as CRICodecError: codec.message
    case let ctl as CtlError: ctl.message
    case let context as ContextError: context.description
    default: String(describing: error)
    }
}
