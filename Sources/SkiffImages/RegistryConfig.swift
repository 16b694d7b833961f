import Foundation

/// Registry settings skiffd loads from its YAML config file (any Codable decoder works):
///
/// ```yaml
/// registries:
///   docker.io:
///     mirrors: ["127.0.0.1:5000", "https://mirror.example.com"]
///   127.0.0.1:5000:
///     insecure: true            # plain HTTP (loopback hosts use plain HTTP anyway)
///   registry.example.com:
///     auth: {username: me, password: secret}
/// stallTimeoutSeconds: 60
/// ```
///
/// Mirrors of a host are tried in order, then the host itself; each fallback is logged. A mirror's own
/// scheme and credentials come from its own entry under `registries` (keyed by its host[:port]).
public struct RegistryConfig: Codable, Sendable, Equatable {
    /// Per registry host, keyed as the host appears in references ("docker.io", "127.0.0.1:5000").
    public var registries: [String: RegistryHostConfig]
    /// A download (or any registry request) that receives no bytes for this long fails. Default 60.
    public var stallTimeoutSeconds: Double?
    /// TCP/TLS connect timeout per attempt. Default 15.
    public var connectTimeoutSeconds: Double?
    /// Layers downloaded at once per pull. Default 3.
    public var maxConcurrentDownloads: Int?

    public init(
        registries: [String: RegistryHostConfig] = [:],
        stallTimeoutSeconds: Double? = nil,
        connectTimeoutSeconds: Double? = nil,
        maxConcurrentDownloads: Int? = nil
    ) {
        self.registries = registries
        self.stallTimeoutSeconds = stallTimeoutSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.maxConcurrentDownloads = maxConcurrentDownloads
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        registries = try c.decodeIfPresent([String: RegistryHostConfig].self, forKey: .registries) ?? [:]
        stallTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .stallTimeoutSeconds)
        connectTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .connectTimeoutSeconds)
        maxConcurrentDownloads = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentDownloads)
    }

    var stallTimeout: Duration { .milliseconds(Int64(max(0.1, stallTimeoutSeconds ?? 60) * 1000)) }
    var connectTimeout: Duration { .milliseconds(Int64(max(0.1, connectTimeoutSeconds ?? 15) * 1000)) }
    var downloadConcurrency: Int { max(1, maxConcurrentDownloads ?? 3) }

    func host(_ h: String) -> RegistryHostConfig? {
        registries[h] ?? (h == "index.docker.io" ? registries["docker.io"] : nil)
    }

    /// The endpoints to try for `domain`, in order: its mirrors, then itself.
    func endpoints(for domain: String) throws(ImageError) -> [RegistryEndpoint] {
        var result: [RegistryEndpoint] = []
        for mirror in host(domain)?.mirrors ?? [] {
            result.append(try endpoint(mirror, isMirror: true))
        }
        result.append(try endpoint(domain, isMirror: false))
        return result
    }

    func endpoint(_ spec: String, isMirror: Bool) throws(ImageError) -> RegistryEndpoint {
        var scheme: String?
        var hostPort = spec
        for s in ["http", "https"] where spec.hasPrefix("\(s)://") {
            scheme = s
            hostPort = String(spec.dropFirst(s.count + 3))
        }
        while hostPort.hasSuffix("/") { hostPort.removeLast() }
        guard ImageReference.isValidDomain(hostPort) else {
            throw ImageError(.invalidReference, "registry \(isMirror ? "mirror" : "host") \"\(spec)\" is not [http(s)://]host[:port]")
        }
        let configKey = hostPort
        // Docker Hub's registry API lives on registry-1.docker.io.
        let connectHost = (hostPort == "docker.io" || hostPort == "index.docker.io") ? "registry-1.docker.io" : hostPort
        let plainHTTP: Bool
        if let scheme {
            plainHTTP = scheme == "http"
        } else {
            plainHTTP = host(configKey)?.insecure == true || RegistryEndpoint.isLoopback(connectHost)
        }
        return RegistryEndpoint(
            configKey: configKey, host: connectHost, plainHTTP: plainHTTP, isMirror: isMirror,
            configAuth: host(configKey)?.auth)
    }
}

public struct RegistryHostConfig: Codable, Sendable, Equatable {
    /// Talk plain HTTP to this host (for loopback hosts this is automatic).
    public var insecure: Bool?
    /// Mirrors tried before this host, in order: "host[:port]" or "http(s)://host[:port]".
    public var mirrors: [String]?
    /// Credentials used when a pull request brings none (and always for mirrors).
    public var auth: RegistryAuth?

    public init(insecure: Bool? = nil, mirrors: [String]? = nil, auth: RegistryAuth? = nil) {
        self.insecure = insecure
        self.mirrors = mirrors
        self.auth = auth
    }
}

/// Credentials, shaped like CRI's AuthConfig: username+password, or `auth` (base64 "user:pass"),
/// or an identity token (OAuth2 refresh token), or a registry token sent as-is as Bearer.
public struct RegistryAuth: Codable, Sendable, Equatable {
    public var username: String?
    public var password: String?
    public var auth: String?
    public var identityToken: String?
    public var registryToken: String?

    public init(
        username: String? = nil, password: String? = nil, auth: String? = nil,
        identityToken: String? = nil, registryToken: String? = nil
    ) {
        self.username = username
        self.password = password
        self.auth = auth
        self.identityToken = identityToken
        self.registryToken = registryToken
    }

    /// username:password from the explicit fields or the base64 `auth` field.
    var basic: (user: String, password: String)? {
        if let username, !username.isEmpty { return (username, password ?? "") }
        if let auth, let data = Data(base64Encoded: auth), let s = String(data: data, encoding: .utf8),
            let colon = s.firstIndex(of: ":")
        {
            return (String(s[..<colon]), String(s[s.index(after: colon)...]))
        }
        return nil
    }

    var isEmpty: Bool {
        basic == nil && (identityToken ?? "").isEmpty && (registryToken ?? "").isEmpty
    }
}

/// One place to fetch from: a registry or one of its mirrors.
struct RegistryEndpoint: Sendable, CustomStringConvertible {
    /// host[:port] as configured (the key into RegistryConfig.registries).
    var configKey: String
    /// host[:port] connected to.
    var host: String
    var plainHTTP: Bool
    var isMirror: Bool
    var configAuth: RegistryAuth?

    var baseURL: String { "\(plainHTTP ? "http" : "https")://\(host)" }
    var description: String { isMirror ? "mirror \(baseURL)" : baseURL }

    static func isLoopback(_ hostPort: String) -> Bool {
        var h = Substring(hostPort)
        if h.hasPrefix("[") {
            return h.hasPrefix("[::1]")
        }
        if let colon = h.firstIndex(of: ":") { h = h[..<colon] }
        return h == "localhost" || h.hasPrefix("127.")
    }
}
