import Foundation
import SkiffImages
import Yams

/// skiffd's configuration. Every key is optional in the YAML file; a missing key keeps the embedded
/// default shown here, so skiffd runs with no file at all. `docs/configuration.md` lists every key.
public struct SkiffConfig: Codable, Sendable, Equatable {
    /// The CRI socket kubelet and crictl connect to (mode 0660, owner root).
    public var socket = "/run/skiff/skiff.sock"
    /// Persistent state: images, sandbox and container records.
    public var root = "/var/lib/skiff"
    /// Runtime state that does not survive a reboot: bundles, launcher state, monitor sockets.
    public var state = "/run/skiff"
    /// trace, debug, info, notice, warning, error, critical.
    public var logLevel = "info"
    /// Largest gRPC request accepted; larger ones get RESOURCE_EXHAUSTED.
    public var maxMessageBytes = 16 * 1024 * 1024
    /// The launcher used when a sandbox names no runtime handler.
    public var defaultRuntime = "skiff-runc"
    /// Runtime handlers by name (`RunPodSandboxRequest.runtime_handler`); each names an OCI runtime binary.
    /// `skiff-runc` is always present (the binary beside skiffd) unless overridden here.
    public var runtimes: [String: RuntimeHandler] = [:]
    /// cgroup parent used when a sandbox gives none (cgroupfs driver).
    public var cgroupParent = "/skiff"
    /// Where CNI plugins are looked for (the loopback plugin brings up `lo` in each pod; Debian's
    /// containernetworking-plugins live in /usr/lib/cni).
    public var cniPluginDirectories = ["/usr/lib/cni", "/opt/cni/bin"]
    /// The pod network: the first `.conf`, `.conflist` or `.json` file here in lexical order, as containerd
    /// loads it. With none, pods get only `lo` and Status reports NetworkReady=false.
    public var cniConfigDirectory = "/etc/cni/net.d"
    /// Where skiff-runc, skiff-monitor and skiff-pause are; default: the directory of skiffd itself.
    public var binDirectory: String?
    /// Registries: insecure (plain HTTP) hosts, mirrors and credentials per host (docs/images.md).
    public var registry = RegistryConfig()
    /// The streaming server (Exec/Attach/PortForward sessions, SPDY/3.1): address and TCP port it
    /// listens on. As containerd: loopback only by default, port 0 picks a free port at start.
    public var streamAddress = "127.0.0.1"
    public var streamPort = 0

    public struct RuntimeHandler: Codable, Sendable, Equatable {
        /// Path of the OCI runtime binary (runc-compatible command line).
        public var path: String
        /// Its state directory (`--root`); defaults to `<state>/runtimes/<name>`.
        public var root: String?

        public init(path: String, root: String? = nil) {
            self.path = path
            self.root = root
        }
    }

    enum CodingKeys: String, CodingKey {
        case socket, root, state
        case logLevel = "log_level"
        case maxMessageBytes = "max_message_bytes"
        case defaultRuntime = "default_runtime"
        case runtimes
        case cgroupParent = "cgroup_parent"
        case cniPluginDirectories = "cni_plugin_dirs"
        case cniConfigDirectory = "cni_conf_dir"
        case binDirectory = "bin_dir"
        case registry
        case streamAddress = "stream_address"
        case streamPort = "stream_port"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SkiffConfig()
        socket = try c.decodeIfPresent(String.self, forKey: .socket) ?? d.socket
        root = try c.decodeIfPresent(String.self, forKey: .root) ?? d.root
        state = try c.decodeIfPresent(String.self, forKey: .state) ?? d.state
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? d.logLevel
        maxMessageBytes = try c.decodeIfPresent(Int.self, forKey: .maxMessageBytes) ?? d.maxMessageBytes
        defaultRuntime = try c.decodeIfPresent(String.self, forKey: .defaultRuntime) ?? d.defaultRuntime
        runtimes = try c.decodeIfPresent([String: RuntimeHandler].self, forKey: .runtimes) ?? d.runtimes
        cgroupParent = try c.decodeIfPresent(String.self, forKey: .cgroupParent) ?? d.cgroupParent
        cniPluginDirectories = try c.decodeIfPresent([String].self, forKey: .cniPluginDirectories) ?? d.cniPluginDirectories
        cniConfigDirectory = try c.decodeIfPresent(String.self, forKey: .cniConfigDirectory) ?? d.cniConfigDirectory
        binDirectory = try c.decodeIfPresent(String.self, forKey: .binDirectory)
        registry = try c.decodeIfPresent(RegistryConfig.self, forKey: .registry) ?? d.registry
        streamAddress = try c.decodeIfPresent(String.self, forKey: .streamAddress) ?? d.streamAddress
        streamPort = try c.decodeIfPresent(Int.self, forKey: .streamPort) ?? d.streamPort
    }

    /// Default location of the optional config file.
    public static let defaultPath = "/etc/skiff/skiff.yaml"

    /// Reads a YAML config file. A file given explicitly must exist; the default one may be absent.
    public static func load(path: String?) throws -> SkiffConfig {
        let file = path ?? defaultPath
        guard FileManager.default.fileExists(atPath: file) else {
            if path != nil { throw ConfigError("config file \(file) does not exist") }
            return SkiffConfig()
        }
        let text = try String(contentsOfFile: file, encoding: .utf8)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return SkiffConfig() }
        do {
            return try YAMLDecoder().decode(SkiffConfig.self, from: text)
        } catch {
            throw ConfigError("config file \(file): \(error)")
        }
    }

    /// The config as JSON, for `Status(verbose)` and `skiffctl info`.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    /// Validates values that would otherwise fail later and far from their cause.
    public func validate() throws {
        for (name, path) in [("socket", socket), ("root", root), ("state", state), ("cni_conf_dir", cniConfigDirectory)] where !path.hasPrefix("/") {
            throw ConfigError("\(name) must be an absolute path, got \"\(path)\"")
        }
        guard maxMessageBytes >= 4096 else { throw ConfigError("max_message_bytes must be at least 4096") }
        guard (0...65535).contains(streamPort) else { throw ConfigError("stream_port must be 0 (any free port) to 65535, got \(streamPort)") }
        guard !streamAddress.isEmpty else { throw ConfigError("stream_address must not be empty") }
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw ConfigError("log_level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}
