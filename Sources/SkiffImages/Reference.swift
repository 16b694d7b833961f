/// An image reference normalised the Docker way (distribution/reference's ParseNormalizedNamed):
///
///     busybox                      → docker.io/library/busybox:latest
///     user/app:1.0                 → docker.io/user/app:1.0
///     localhost:5000/app           → localhost:5000/app:latest
///     127.0.0.1:5000/a/b@sha256:…  → 127.0.0.1:5000/a/b@sha256:… (no tag)
///     index.docker.io/busybox      → docker.io/library/busybox:latest
///
/// The first path component is a registry host when it contains "." or ":", is "localhost", or has
/// uppercase letters; otherwise the host is docker.io. A reference with only a digest has no tag;
/// one with neither gets "latest".
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// Registry host as written in references, with port if any ("docker.io", "127.0.0.1:5000").
    public let domain: String
    /// Repository path on that registry ("library/busybox").
    public let path: String
    public let tag: String?
    public let digest: Digest?

    /// "docker.io/library/busybox"
    public var name: String { "\(domain)/\(path)" }
    /// "docker.io/library/busybox:latest", or nil for a digest-only reference.
    public var tagged: String? { tag.map { "\(name):\($0)" } }
    /// "docker.io/library/busybox@sha256:…", or nil without a digest.
    public var digested: String? { digest.map { "\(name)@\($0)" } }
    /// What to ask the registry's manifest endpoint for: the digest wins over the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    public var description: String {
        var s = name
        if let tag { s += ":\(tag)" }
        if let digest { s += "@\(digest)" }
        return s
    }

    static let defaultDomain = "docker.io"
    static let maxNameLength = 255

    public init(parsing input: String) throws(ImageError) {
        func bad(_ why: String) -> ImageError {
            ImageError(.invalidReference, "invalid image reference \"\(input)\": \(why)")
        }
        guard !input.isEmpty else { throw bad("empty") }
        guard input.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw bad("contains whitespace, control or non-ASCII characters")
        }

        // Digest: everything after the first "@" (names and tags cannot contain "@").
        var rest = Substring(input)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            do { digest = try Digest(parsing: String(rest[rest.index(after: at)...])) } catch {
                throw bad(error.message)
            }
            rest = rest[..<at]
        }

        // Tag: after the last ":" that follows the last "/" (a ":" before it is a port).
        var tag: String?
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let t = String(rest[rest.index(after: colon)...])
            guard Self.isValidTag(t) else {
                throw bad("tag \"\(t)\" must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
            }
            tag = t
            rest = rest[..<colon]
        }
        guard !rest.isEmpty else { throw bad("empty repository name") }

        // Domain: the first component if it looks like a host.
        var domain = Self.defaultDomain
        var path = String(rest)
        if let slash = rest.firstIndex(of: "/") {
            let first = String(rest[..<slash])
            if first.contains(".") || first.contains(":") || first == "localhost" || first.lowercased() != first {
                domain = first
                path = String(rest[rest.index(after: slash)...])
            }
        }
        guard Self.isValidDomain(domain) else { throw bad("registry host \"\(domain)\" is not a valid host[:port]") }
        if domain == "index.docker.io" { domain = Self.defaultDomain }
        if domain == Self.defaultDomain && !path.contains("/") { path = "library/" + path }

        if path.lowercased() != path { throw bad("repository name must be lowercase") }
        guard Self.isValidPath(path) else {
            throw bad("repository \"\(path)\" must be lowercase components [a-z0-9]+ joined by ., _, __ or -, separated by /")
        }
        guard domain.utf8.count + 1 + path.utf8.count <= Self.maxNameLength else {
            throw bad("repository name longer than \(Self.maxNameLength) characters")
        }
        // A bare 64-hex string is an image id, never a repository (Docker refuses it the same way).
        if tag == nil && digest == nil && input.utf8.count == 64 && input.utf8.allSatisfy(Digest.isLowerHex) {
            throw bad("a 64-character hexadecimal string is an image id, not a repository name")
        }
        if tag == nil && digest == nil { tag = "latest" }
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest
    }

    static func isWordChar(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f
    }

    static func isValidTag(_ t: String) -> Bool {
        let u = Array(t.utf8)
        guard let first = u.first, u.count <= 128, isWordChar(first) else { return false }
        return u.dropFirst().allSatisfy { isWordChar($0) || $0 == 0x2e || $0 == 0x2d }
    }

    /// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [._] | __ | [-]+
    static func isValidPath(_ p: String) -> Bool {
        for component in p.split(separator: "/", omittingEmptySubsequences: false) {
            let u = Array(component.utf8)
            func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) }
            guard let first = u.first, let last = u.last, alnum(first), alnum(last) else { return false }
            var i = 0
            while i < u.count {
                if alnum(u[i]) { i += 1; continue }
                // A separator run: ".", "_", "__" or one or more "-".
                if u[i] == 0x2e {
                    i += 1
                } else if u[i] == 0x5f {
                    i += (i + 1 < u.count && u[i + 1] == 0x5f) ? 2 : 1
                } else if u[i] == 0x2d {
                    while i < u.count && u[i] == 0x2d { i += 1 }
                } else {
                    return false
                }
                guard i < u.count, alnum(u[i]) else { return false }
            }
        }
        return true
    }

    /// host[:port], host = DNS labels or "[IPv6]".
    static func isValidDomain(_ d: String) -> Bool {
        var host = Substring(d)
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let inner = host[host.index(after: host.startIndex)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return false }
                port = after.dropFirst()
            }
            host = ""
        } else if let colon = host.firstIndex(of: ":") {
            port = host[host.index(after: colon)...]
            host = host[..<colon]
            guard !host.isEmpty else { return false }
        }
        if let port {
            guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber) else { return false }
        }
        for label in host.split(separator: ".", omittingEmptySubsequences: false) where !host.isEmpty {
            let u = Array(label.utf8)
            func alnum(_ c: UInt8) -> Bool {
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
            }
            guard let f = u.first, let l = u.last, alnum(f), alnum(l), u.allSatisfy({ alnum($0) || $0 == 0x2d }) else {
                return false
            }
        }
        return true
    }
}
