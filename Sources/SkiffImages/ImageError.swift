/// The one error type of SkiffImages. `kind` is for callers that map errors (CRI status codes, exit codes);
/// `message` names the step, the reference or digest and the path or host involved.
public struct ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// The image, tag, manifest, blob or container rootfs does not exist (locally or in the registry).
        case notFound
        /// The reference, digest or container id is malformed.
        case invalidReference
        /// The registry refused the request (401/403) with the credentials we had, or we had none.
        case unauthorized
        /// The registry answered with an unexpected status or a body we cannot use.
        case registry
        /// Connecting to or talking to the registry failed (refused, reset, TLS, DNS).
        case network
        /// A download made no progress for longer than the configured stall timeout.
        case stalled
        /// Content did not match its digest or size (blob, manifest, or a layer's diff id).
        case digestMismatch
        /// A media type, digest algorithm or platform we do not handle.
        case unsupported
        /// A layer's content is unsafe or malformed (path escape, bad tar).
        case invalidContent
        /// A local filesystem or mount operation failed.
        case io
        /// The operation conflicts with current state (e.g. the rootfs id is in use elsewhere).
        case conflict
        /// The task was cancelled.
        case cancelled
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

extension ImageError {
    /// An `io` error naming the failing call and path, with errno's text.
    static func posix(_ call: String, _ path: String, errno code: Int32 = errno) -> ImageError {
        ImageError(.io, "\(call)(\(path)): \(String(cString: strerror(code))) (errno \(code))")
    }

    /// Wraps any error thrown by a dependency (HTTP client, Foundation) as an ImageError for `step`.
    static func wrap(_ error: any Error, _ step: String) -> ImageError {
        if let e = error as? ImageError { return e }
        if error is CancellationError { return ImageError(.cancelled, "\(step): cancelled") }
        return ImageError(.io, "\(step): \(error)")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
