/// The one error type the runtime layers throw. Each case of `Code` maps to exactly one gRPC status code
/// (see SkiffServer/ErrorMapping.swift), so a handler never has to guess how a failure looks on the wire.
public struct SkiffError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable, Equatable {
        case invalidArgument, notFound, alreadyExists, failedPrecondition, deadlineExceeded
        case resourceExhausted, unimplemented, unavailable, permissionDenied, aborted, `internal`
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func invalidArgument(_ message: String) -> SkiffError { .init(.invalidArgument, message) }
    public static func notFound(_ message: String) -> SkiffError { .init(.notFound, message) }
    public static func alreadyExists(_ message: String) -> SkiffError { .init(.alreadyExists, message) }
    public static func failedPrecondition(_ message: String) -> SkiffError { .init(.failedPrecondition, message) }
    public static func `internal`(_ message: String) -> SkiffError { .init(.internal, message) }
    public static func unimplemented(_ message: String) -> SkiffError { .init(.unimplemented, message) }
}

/// An errno-carrying failure of a system call, named by step and path so that a person can act on it:
/// `write /run/skiff/x/state.json.tmp: No space left on device`.
public struct SystemError: Error, Sendable, CustomStringConvertible, Equatable {
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(_ operation: String, _ path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        return path.isEmpty ? "\(operation): \(reason)" : "\(operation) \(path): \(reason)"
    }
}

#if canImport(Glibc)
import Glibc
#endif
