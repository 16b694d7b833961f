#if canImport(Glibc)
import Glibc
#endif

/// Every failure in the launcher: which step failed, which syscall, on which path, and errno.
/// Rendered as one line, e.g. `rootfs: pivot_root /run/b/rootfs: Invalid argument`.
public struct LauncherError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A syscall failed; `errno` says why.
        case system
        /// config.json or a command line argument is invalid.
        case invalidConfig
        /// The config asks for something skiff-runc does not implement.
        case unsupported
        /// The container does not exist.
        case notFound
        /// The container id is taken.
        case exists
        /// The operation does not fit the container's current status.
        case invalidState
        /// A cgroup still holds processes.
        case busy
        /// The container init reported a failure or died during setup.
        case initFailed
        /// A hook failed or timed out.
        case hook
        /// Waiting for something took longer than its bound.
        case timeout
    }

    public var kind: Kind
    /// What the launcher was doing ("create cgroup", "mount /proc", "start").
    public var step: String
    public var syscall: String?
    public var path: String?
    public var errno: Int32?
    /// Extra words when there is no errno, or to explain it.
    public var detail: String?

    public init(_ kind: Kind, step: String, syscall: String? = nil, path: String? = nil, errno: Int32? = nil,
                detail: String? = nil) {
        self.kind = kind
        self.step = step
        self.syscall = syscall
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    /// A failed syscall; takes errno from the thread unless given.
    public static func sys(_ step: String, _ syscall: String, _ path: String? = nil, errno e: Int32? = nil) -> LauncherError {
        LauncherError(.system, step: step, syscall: syscall, path: path, errno: e ?? Glibc.errno)
    }

    public static func config(_ detail: String) -> LauncherError {
        LauncherError(.invalidConfig, step: "config", detail: detail)
    }

    public static func unsupported(_ detail: String) -> LauncherError {
        LauncherError(.unsupported, step: "config", detail: detail)
    }

    public var description: String {
        var s = step
        var head = ""
        if let syscall, syscall != step { head = syscall }
        if let path { head = head.isEmpty ? path : "\(head) \(path)" }
        if !head.isEmpty { s += ": " + head }
        if let errno { s += ": " + errnoString(errno) }
        if let detail { s += (errno == nil && head.isEmpty) ? ": \(detail)" : " (\(detail))" }
        return s
    }
}

/// `strerror` text for an errno value.
public func errnoString(_ e: Int32) -> String {
    guard let p = strerror(e) else { return "errno \(e)" }
    return String(cString: p)
}
