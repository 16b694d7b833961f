import CRI
import Foundation
import Logging
import SkiffOCI
import SkiffSupport
import Synchronization

// Pod networking through CNI plugins (containernetworking/cni SPEC.md), the way containerd's CRI plugin
// uses go-cni/libcni:
// - the network is the first `.conf`, `.conflist` or `.json` file of the conf dir in lexical order;
// - ADD runs the list's plugins in order, each getting the previous one's result as `prevResult`;
// - DEL runs them in reverse with the same config, args and capability args as the ADD, and (CNI ≥ 0.4.0)
//   the ADD's final result as `prevResult`. skiffd keeps that cache in the sandbox record, not in
//   /var/lib/cni, so a record and its network state cannot drift apart.

/// One CNI network: plugin configs run in order on ADD and in reverse on DEL. A `.conf`/`.json` file
/// holding a single plugin config is a list of one, as libcni treats it.
public struct CNINetworkList: Sendable, Equatable {
    /// The file it was loaded from ("" when rebuilt from a sandbox record).
    public let file: String
    public let name: String
    public let cniVersion: String
    public let plugins: [JSONObject]

    /// Parses a conf file; `.conflist` files are lists, anything else a single plugin config.
    public init(parsing bytes: [UInt8], file: String) throws(SkiffError) {
        let root: JSONObject
        do {
            guard let object = try JSON(parsing: bytes).objectValue else { throw JSONError(path: "", message: "not a JSON object") }
            root = object
        } catch {
            throw .failedPrecondition("CNI config \(file): invalid JSON: \(error)")
        }
        if file.hasSuffix(".conflist") {
            try self.init(list: root, file: file)
        } else {
            guard let name = root["name"]?.stringValue, !name.isEmpty else {
                throw .failedPrecondition("CNI config \(file): \"name\" is missing")
            }
            guard root["type"]?.stringValue?.isEmpty == false else {
                throw .failedPrecondition("CNI config \(file): \"type\" is missing")
            }
            var list = JSONObject()
            list["cniVersion"] = root["cniVersion"] ?? .string("")
            list["name"] = .string(name)
            list["plugins"] = .array([.object(root)])
            try self.init(list: list, file: file)
        }
    }

    /// A `{"cniVersion", "name", "plugins": [...]}` list.
    public init(list root: JSONObject, file: String) throws(SkiffError) {
        guard let name = root["name"]?.stringValue, !name.isEmpty else {
            throw .failedPrecondition("CNI config list \(file): \"name\" is missing")
        }
        guard let plugins = root["plugins"]?.arrayValue, !plugins.isEmpty else {
            throw .failedPrecondition("CNI config list \(file): \"plugins\" is missing or empty")
        }
        var objects: [JSONObject] = []
        for (index, plugin) in plugins.enumerated() {
            guard let object = plugin.objectValue, object["type"]?.stringValue?.isEmpty == false else {
                throw .failedPrecondition("CNI config list \(file): plugins[\(index)] has no \"type\"")
            }
            objects.append(object)
        }
        self.file = file
        self.name = name
        self.cniVersion = root["cniVersion"]?.stringValue ?? ""
        self.plugins = objects
    }

    /// The list as conflist JSON, persisted with a sandbox so that its DEL uses what its ADD used.
    public var listJSON: String {
        var root = JSONObject()
        root["cniVersion"] = .string(cniVersion)
        root["name"] = .string(name)
        root["plugins"] = .array(plugins.map { .object($0) })
        return JSON.object(root).compactText
    }

    /// Loads the first config file of `directory` in lexical order; nil if there is none.
    public static func loadFirst(in directory: String) throws(SkiffError) -> CNINetworkList? {
        let files = FileSystem.listDirectory(directory)
            .filter { $0.hasSuffix(".conf") || $0.hasSuffix(".conflist") || $0.hasSuffix(".json") }
            .sorted()
        guard let first = files.first else { return nil }
        let path = directory + "/" + first
        let bytes: [UInt8]
        do { bytes = try FileSystem.readBytes(path) } catch { throw .failedPrecondition("read CNI config \(path): \(error)") }
        return try CNINetworkList(parsing: bytes, file: path)
    }
}

/// What a pod's network ADD left behind, persisted in its sandbox record: enough to run the matching
/// DEL after a skiffd restart or a config change, and the pod's IPs.
public struct CNIAttachment: Codable, Sendable, Equatable {
    public var networkName: String
    public var ifName: String
    /// The network list used (conflist JSON).
    public var network: String
    /// CNI_ARGS pairs and capability args (`runtimeConfig`, JSON object) given to ADD.
    public var args: [String]
    public var capabilityArgs: String
    /// The final ADD result (JSON), "" if ADD did not finish.
    public var result: String
    /// Pod IPs from the result, primary (IPv4 first, as containerd prefers) first.
    public var ips: [String]

    public init(networkName: String, ifName: String, network: String, args: [String], capabilityArgs: String, result: String, ips: [String]) {
        self.networkName = networkName; self.ifName = ifName; self.network = network; self.args = args
        self.capabilityArgs = capabilityArgs; self.result = result; self.ips = ips
    }
}

/// The pod-specific inputs of one network ADD.
public struct CNIPodArgs: Sendable {
    public var containerId: String
    public var netns: String
    public var ifName = "eth0"
    /// `K8S_POD_NAMESPACE=...` etc.; `IgnoreUnknown=1` is prepended so plugins that do not know them accept them.
    public var args: [String]
    /// Capability args by name (e.g. `portMappings`); each is given only to plugins declaring it.
    public var capabilityArgs: JSONObject

    public init(containerId: String, netns: String, args: [String], capabilityArgs: JSONObject) {
        self.containerId = containerId; self.netns = netns; self.args = args; self.capabilityArgs = capabilityArgs
    }

    /// The args kubelet's pods get from containerd: pod identity in CNI_ARGS, port mappings as a capability.
    public static func kubernetes(sandboxId: String, netns: String, name: String, namespace: String, uid: String, portMappings: [PortMapping]) -> CNIPodArgs {
        // containerd skips mappings without a host port: there is nothing to publish.
        let mappings: [JSON] = portMappings.filter { $0.hostPort > 0 }.map { m in
            var o = JSONObject()
            o["hostPort"] = JSON(Int(m.hostPort))
            o["containerPort"] = JSON(Int(m.containerPort))
            o["protocol"] = .string(m.protocol.name.lowercased())
            o["hostIP"] = .string(m.hostIp)
            return .object(o)
        }
        return CNIPodArgs(
            containerId: sandboxId, netns: netns,
            args: ["K8S_POD_NAMESPACE=\(namespace)", "K8S_POD_NAME=\(name)", "K8S_POD_INFRA_CONTAINER_ID=\(sandboxId)", "K8S_POD_UID=\(uid)"],
            capabilityArgs: ["portMappings": .array(mappings)])
    }
}

/// Runs CNI plugin binaries: finds them in the plugin directories, passes the CNI environment and
/// stdin config, bounds them with a timeout and turns their error results into actionable messages.
public struct CNIPluginRunner: Sendable {
    public let pluginDirectories: [String]
    public let timeout: Duration

    public init(pluginDirectories: [String], timeout: Duration = .seconds(60)) {
        self.pluginDirectories = pluginDirectories
        self.timeout = timeout
    }

    public func find(_ type: String) -> String? {
        // A type is a file name, never a path: `../x` must not escape the plugin directories.
        guard !type.isEmpty, !type.contains("/") else { return nil }
        return pluginDirectories.map { $0 + "/" + type }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs one plugin; returns its parsed stdout (nil when empty, as DEL may answer).
    public func run(
        command: String, config: JSONObject, network: String, containerId: String, netns: String, ifName: String, args: [String]
    ) async throws(SkiffError) -> JSON? {
        let type = config["type"]?.stringValue ?? ""
        guard let plugin = find(type) else {
            throw .failedPrecondition("CNI plugin \"\(type)\" of network \"\(network)\" not found in \(pluginDirectories.joined(separator: ", ")) (set cni_plugin_dirs or install it)")
        }
        var spec = ProcessSpec([plugin])
        spec.environment = [
            "CNI_COMMAND=\(command)", "CNI_CONTAINERID=\(containerId)", "CNI_NETNS=\(netns)", "CNI_IFNAME=\(ifName)",
            "CNI_ARGS=\((["IgnoreUnknown=1"] + args).joined(separator: ";"))",
            "CNI_PATH=\(pluginDirectories.joined(separator: ":"))",
            // Plugins run helpers (portmap runs iptables) found through PATH.
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ]
        spec.stdin = Array(JSON.object(config).compactText.utf8)
        spec.timeout = timeout
        spec.outputLimit = 1024 * 1024
        let what = "CNI plugin \(type) \(command) (network \"\(network)\", container \(containerId))"
        let result: ProcessResult
        do {
            result = try await ProcessRunner.run(spec)
        } catch {
            throw .internal("\(what): \(error)")
        }
        if result.timedOut {
            throw .internal("\(what) did not finish within \(timeout) and was killed")
        }
        let output = try? JSON(parsing: result.stdout)
        guard result.status == 0 else {
            // A failing plugin prints {"code", "msg", "details"} on stdout.
            var message = "\(what) failed with status \(result.status)"
            if let error = output?.objectValue {
                if let code = error["code"]?.int64Value { message += ", CNI error \(code)" }
                if let msg = error["msg"]?.stringValue { message += ": \(msg)" }
                if let details = error["details"]?.stringValue, !details.isEmpty { message += " (\(details))" }
            } else if !result.stdout.isEmpty {
                message += ": \(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))"
            }
            let stderr = result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
            if !stderr.isEmpty { message += "; stderr: \(stderr)" }
            throw .internal(message)
        }
        if result.stdout.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) { return nil }
        guard let output else {
            throw .internal("\(what) printed a result that is not JSON: \(result.stdoutText.prefix(200))")
        }
        return output
    }
}

/// The pod network: the CNI config loaded from the conf dir, and ADD/DEL of pods on it.
public final class CNIManager: Sendable {
    public let confDirectory: String
    public let runner: CNIPluginRunner
    private let logger: Logger
    /// The loaded network, or why there is none.
    private let loaded = Mutex<Result<CNINetworkList, SkiffError>>(.failure(.failedPrecondition("not loaded")))

    public init(confDirectory: String, pluginDirectories: [String], timeout: Duration = .seconds(60), logger: Logger) {
        self.confDirectory = confDirectory
        self.runner = CNIPluginRunner(pluginDirectories: pluginDirectories, timeout: timeout)
        self.logger = logger
        _ = reload()
    }

    /// Loads the config if none is loaded yet (a CNI daemonset may write it after skiffd started);
    /// a loaded network stays until restart, as pods attached to it must be detached from the same one.
    public func network() -> CNINetworkList? {
        if case .success(let network) = loaded.withLock({ $0 }) { return network }
        return try? reload().get()
    }

    /// NetworkReady for Status: true with a network loaded, else the reason.
    public func readiness() -> (ready: Bool, message: String) {
        if network() != nil { return (true, "") }
        if case .failure(let error) = loaded.withLock({ $0 }) { return (false, error.message) }
        return (false, "no CNI network config")
    }

    private func reload() -> Result<CNINetworkList, SkiffError> {
        let result: Result<CNINetworkList, SkiffError>
        do {
            if let network = try CNINetworkList.loadFirst(in: confDirectory) {
                result = .success(network)
                logger.info("loaded CNI network", metadata: ["network": "\(network.name)", "file": "\(network.file)", "plugins": "\(network.plugins.compactMap { $0["type"]?.stringValue })"])
            } else {
                result = .failure(.failedPrecondition("no CNI network config (.conf, .conflist or .json) in \(confDirectory): pods get only lo"))
            }
        } catch {
            logger.warning("cannot load CNI network config", metadata: ["dir": "\(confDirectory)", "error": "\(error)"])
            result = .failure(error)
        }
        loaded.withLock { $0 = result }
        return result
    }

    /// Runs the network's ADD chain for a pod. On failure the chain's DEL runs (its errors are logged)
    /// and the ADD error is thrown, naming the plugin.
    public func attach(_ network: CNINetworkList, pod: CNIPodArgs) async throws(SkiffError) -> CNIAttachment {
        var attachment = CNIAttachment(
            networkName: network.name, ifName: pod.ifName, network: network.listJSON, args: pod.args,
            capabilityArgs: JSON.object(pod.capabilityArgs).compactText, result: "", ips: [])
        var previous: JSON? = nil
        do throws(SkiffError) {
            for plugin in network.plugins {
                let config = Self.pluginConfig(plugin, network: network, prevResult: previous, capabilityArgs: pod.capabilityArgs)
                guard let result = try await runner.run(
                    command: "ADD", config: config, network: network.name, containerId: pod.containerId, netns: pod.netns,
                    ifName: pod.ifName, args: pod.args)
                else {
                    throw SkiffError.internal("CNI plugin \(plugin["type"]?.stringValue ?? "") ADD (network \"\(network.name)\") printed no result")
                }
                previous = result
            }
        } catch {
            do throws(SkiffError) {
                try await detach(attachment, containerId: pod.containerId, netns: pod.netns)
            } catch let cleanup {
                logger.warning("CNI DEL after a failed ADD failed", metadata: ["container": "\(pod.containerId)", "error": "\(cleanup)"])
            }
            throw error
        }
        if let previous {
            attachment.result = previous.compactText
            attachment.ips = Self.podIPs(from: previous)
        }
        return attachment
    }

    /// Runs the DEL chain (reverse order) of an attachment. Every plugin runs even if one fails, so that
    /// as much as possible is released (IPs, iptables rules); the first error is thrown.
    public func detach(_ attachment: CNIAttachment, containerId: String, netns: String) async throws(SkiffError) {
        let network: CNINetworkList
        let capabilityArgs: JSONObject
        do {
            guard let list = try JSON(parsing: attachment.network).objectValue else { throw JSONError(path: "", message: "not an object") }
            network = try CNINetworkList(list: list, file: "")
            capabilityArgs = try JSON(parsing: attachment.capabilityArgs.isEmpty ? "{}" : attachment.capabilityArgs).objectValue ?? [:]
        } catch {
            throw .internal("CNI DEL for container \(containerId): the recorded network config is unreadable: \(error)")
        }
        // prevResult on DEL exists from CNI 0.4.0 on.
        var prevResult: JSON? = nil
        if Self.versionAtLeast(network.cniVersion, 0, 4), !attachment.result.isEmpty {
            prevResult = try? JSON(parsing: attachment.result)
        }
        var firstError: SkiffError?
        for plugin in network.plugins.reversed() {
            let config = Self.pluginConfig(plugin, network: network, prevResult: prevResult, capabilityArgs: capabilityArgs)
            do throws(SkiffError) {
                _ = try await runner.run(
                    command: "DEL", config: config, network: network.name, containerId: containerId, netns: netns,
                    ifName: attachment.ifName, args: attachment.args)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }

    /// A plugin's stdin: its config plus the list's name and version, the previous result and the
    /// capability args it declares (libcni's injection rules).
    static func pluginConfig(_ plugin: JSONObject, network: CNINetworkList, prevResult: JSON?, capabilityArgs: JSONObject) -> JSONObject {
        var config = plugin
        config["name"] = .string(network.name)
        config["cniVersion"] = .string(network.cniVersion)
        if let prevResult { config["prevResult"] = prevResult }
        var runtimeConfig = JSONObject()
        if let capabilities = plugin["capabilities"]?.objectValue {
            for (name, enabled) in capabilities.pairs where enabled.boolValue == true {
                if let value = capabilityArgs[name] { runtimeConfig[name] = value }
            }
        }
        if !runtimeConfig.isEmpty { config["runtimeConfig"] = .object(runtimeConfig) }
        return config
    }

    /// The pod's IPs from a result: addresses on interfaces inside the pod (or not tied to an
    /// interface), without prefix length; IPv4 first. Handles the 0.1/0.2 `ip4`/`ip6` form too.
    public static func podIPs(from result: JSON) -> [String] {
        var ips: [String] = []
        if let entries = result["ips"]?.arrayValue {
            let interfaces = result["interfaces"]?.arrayValue ?? []
            for entry in entries {
                guard let address = entry["address"]?.stringValue else { continue }
                if let index = entry["interface"]?.int64Value, index >= 0, Int(index) < interfaces.count,
                   (interfaces[Int(index)]["sandbox"]?.stringValue ?? "").isEmpty {
                    continue  // a host-side interface (the bridge), not the pod's
                }
                ips.append(String(address.split(separator: "/").first ?? ""))
            }
        } else {
            for key in ["ip4", "ip6"] {
                if let address = result[key]?["ip"]?.stringValue { ips.append(String(address.split(separator: "/").first ?? "")) }
            }
        }
        let v4 = ips.filter { !$0.contains(":") && !$0.isEmpty }
        let v6 = ips.filter { $0.contains(":") }
        return v4 + v6
    }

    static func versionAtLeast(_ version: String, _ major: Int, _ minor: Int) -> Bool {
        let parts = version.split(separator: ".").map { Int($0) ?? 0 }
        let (a, b) = (parts.first ?? 0, parts.count > 1 ? parts[1] : 0)
        return a > major || (a == major && b >= minor)
    }
}

extension RuntimeContext {
    /// The pod network namespace path while the infra lives, else "" (a DEL then releases what it can
    /// outside the namespace; the namespace and its veth end died with the infra). Checking the start
    /// time keeps a reused pid from pointing a DEL at someone else's namespace.
    public func podNetnsPath(_ record: SandboxRecord) -> String {
        isInfraAlive(record) ? "/proc/\(record.infraPid)/ns/net" : ""
    }

    /// Runs the CNI DEL of a sandbox's attachment, if it has one. Returns the record without it on
    /// success; on failure logs and keeps it, so a later Stop or Remove tries again.
    public func detachNetwork(_ record: SandboxRecord) async -> SandboxRecord {
        guard let attachment = record.network else { return record }
        var record = record
        do {
            try await network.detach(attachment, containerId: record.id, netns: podNetnsPath(record))
            record.network = nil
            logger.info("pod network detached", metadata: ["sandbox": "\(record.id)", "network": "\(attachment.networkName)"])
        } catch {
            logger.warning("pod network DEL failed; the sandbox still stops", metadata: ["sandbox": "\(record.id)", "error": "\(error)"])
        }
        return record
    }
}
