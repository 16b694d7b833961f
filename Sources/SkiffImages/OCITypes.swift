import Foundation

/// Media types Skiff understands (OCI image spec and Docker's schema 2).
enum MediaType {
    static let ociIndex = "application/vnd.oci.image.index.v1+json"
    static let dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    static let dockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    static let dockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    static let ociConfig = "application/vnd.oci.image.config.v1+json"
    static let dockerConfig = "application/vnd.docker.container.image.v1+json"

    /// Sent as Accept on manifest requests, most preferred first.
    static let acceptManifests = [ociIndex, dockerList, ociManifest, dockerManifest]

    static func isIndex(_ t: String) -> Bool { t == ociIndex || t == dockerList }
    static func isManifest(_ t: String) -> Bool { t == ociManifest || t == dockerManifest }
    static func isConfig(_ t: String) -> Bool { t == ociConfig || t == dockerConfig }

    /// Layer types are tar streams, plain or compressed (libarchive detects gzip/zstd from the bytes).
    static func isLayer(_ t: String) -> Bool {
        t.hasPrefix("application/vnd.oci.image.layer.") || t.hasPrefix("application/vnd.docker.image.rootfs.")
    }
}

struct Platform: Codable, Sendable, Hashable {
    var architecture: String
    var os: String
    var variant: String?

    /// The platform images are pulled for: this machine's.
    static var current: Platform {
        #if arch(x86_64)
        Platform(architecture: "amd64", os: "linux")
        #elseif arch(arm64)
        Platform(architecture: "arm64", os: "linux")
        #else
        Platform(architecture: "unknown", os: "linux")
        #endif
    }
}

struct Descriptor: Codable, Sendable, Hashable {
    var mediaType: String?
    var digest: Digest
    var size: Int64
    var platform: Platform?
    var urls: [String]?
    var annotations: [String: String]?
}

/// An OCI image manifest or Docker schema 2 manifest (same shape).
struct Manifest: Codable, Sendable {
    var schemaVersion: Int
    var mediaType: String?
    var config: Descriptor
    var layers: [Descriptor]
}

/// An OCI image index or Docker manifest list (same shape).
struct ManifestIndex: Codable, Sendable {
    var schemaVersion: Int
    var mediaType: String?
    var manifests: [Descriptor]
}

/// The image config blob (only what Skiff uses; the raw bytes are kept for verbose status).
struct ImageConfigFile: Codable, Sendable {
    struct RootFS: Codable, Sendable {
        var type: String
        var diff_ids: [Digest]
    }

    var architecture: String?
    var os: String?
    var created: String?
    var config: ImageConfig?
    var rootfs: RootFS
}

/// The runtime part of an image config (`config` in the OCI image config).
public struct ImageConfig: Codable, Sendable, Hashable {
    public var user: String?
    public var env: [String]
    public var entrypoint: [String]?
    public var cmd: [String]?
    public var workingDir: String?
    public var stopSignal: String?
    public var labels: [String: String]
    /// "8080/tcp", sorted.
    public var exposedPorts: [String]
    /// Paths, sorted.
    public var volumes: [String]

    public init(
        user: String? = nil, env: [String] = [], entrypoint: [String]? = nil, cmd: [String]? = nil,
        workingDir: String? = nil, stopSignal: String? = nil, labels: [String: String] = [:],
        exposedPorts: [String] = [], volumes: [String] = []
    ) {
        self.user = user
        self.env = env
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.workingDir = workingDir
        self.stopSignal = stopSignal
        self.labels = labels
        self.exposedPorts = exposedPorts
        self.volumes = volumes
    }

    enum CodingKeys: String, CodingKey {
        case user = "User", env = "Env", entrypoint = "Entrypoint", cmd = "Cmd", workingDir = "WorkingDir"
        case stopSignal = "StopSignal", labels = "Labels", exposedPorts = "ExposedPorts", volumes = "Volumes"
    }

    /// Accepts the image-spec shape, where ExposedPorts and Volumes are objects whose keys matter.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        user = try c.decodeIfPresent(String.self, forKey: .user).flatMap { $0.isEmpty ? nil : $0 }
        env = try c.decodeIfPresent([String].self, forKey: .env) ?? []
        entrypoint = try c.decodeIfPresent([String].self, forKey: .entrypoint)
        cmd = try c.decodeIfPresent([String].self, forKey: .cmd)
        workingDir = try c.decodeIfPresent(String.self, forKey: .workingDir).flatMap { $0.isEmpty ? nil : $0 }
        stopSignal = try c.decodeIfPresent(String.self, forKey: .stopSignal).flatMap { $0.isEmpty ? nil : $0 }
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        exposedPorts = try Self.keys(c, .exposedPorts)
        volumes = try Self.keys(c, .volumes)
    }

    private static func keys(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> [String] {
        if let list = try? c.decodeIfPresent([String].self, forKey: key) { return list.sorted() }
        guard let object = try c.decodeIfPresent([String: IgnoredValue].self, forKey: key) else { return [] }
        return object.keys.sorted()
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(user, forKey: .user)
        try c.encode(env, forKey: .env)
        try c.encodeIfPresent(entrypoint, forKey: .entrypoint)
        try c.encodeIfPresent(cmd, forKey: .cmd)
        try c.encodeIfPresent(workingDir, forKey: .workingDir)
        try c.encodeIfPresent(stopSignal, forKey: .stopSignal)
        try c.encode(labels, forKey: .labels)
        try c.encode(Dictionary(uniqueKeysWithValues: exposedPorts.map { ($0, EmptyObject()) }), forKey: .exposedPorts)
        try c.encode(Dictionary(uniqueKeysWithValues: volumes.map { ($0, EmptyObject()) }), forKey: .volumes)
    }
}

/// Decodes any JSON value and keeps nothing.
struct IgnoredValue: Decodable {
    init(from decoder: any Decoder) throws {}
}

struct EmptyObject: Codable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws { _ = encoder.container(keyedBy: CodingKeys.self) }
    enum CodingKeys: CodingKey {}
}
