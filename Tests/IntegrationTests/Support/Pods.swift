import CRI
import Foundation
import GRPCCore
import SkiffClient
// FileSystem.readString reads /proc files to EOF; Foundation stops after the first 4 KiB page of
// /proc/self/mountinfo, which hides every mount after it.
import SkiffSupport
import Testing

/// Builders and shortcuts for pod and container tests, all through the real gRPC client.
enum Pods {
    static func config(
        name: String = "pod-\(UUID().uuidString.prefix(6))", hostname: String = "", logDirectory: String,
        cgroupParent: String, network: NamespaceMode = .pod, pid: NamespaceMode = .container, labels: [String: String] = [:],
        dns: DNSConfig? = nil
    ) -> PodSandboxConfig {
        var metadata = PodSandboxMetadata()
        metadata.name = name
        metadata.namespace = "skiff-tests"
        metadata.uid = "uid-" + name
        var options = NamespaceOption()
        options.network = network
        options.pid = pid
        options.ipc = .pod
        var security = LinuxSandboxSecurityContext()
        security.namespaceOptions = options
        var linux = LinuxPodSandboxConfig()
        linux.cgroupParent = cgroupParent
        linux.securityContext = security
        var config = PodSandboxConfig()
        config.metadata = metadata
        config.hostname = hostname
        config.logDirectory = logDirectory
        config.linux = linux
        config.labels = labels
        config.dnsConfig = dns
        return config
    }

    static func container(
        name: String, image: String, command: [String] = [], args: [String] = [], pid: NamespaceMode = .container,
        envs: [String: String] = [:], logPath: String? = nil
    ) -> ContainerConfig {
        var metadata = ContainerMetadata()
        metadata.name = name
        var spec = ImageSpec()
        spec.image = image
        var options = NamespaceOption()
        options.pid = pid
        options.network = .pod
        options.ipc = .pod
        var security = LinuxContainerSecurityContext()
        security.namespaceOptions = options
        var linux = LinuxContainerConfig()
        linux.securityContext = security
        var config = ContainerConfig()
        config.metadata = metadata
        config.image = spec
        config.command = command
        config.args = args
        config.linux = linux
        config.logPath = logPath ?? "\(name).log"
        config.envs = envs.sorted { $0.key < $1.key }.map { kv in
            var entry = KeyValue()
            entry.key = kv.key
            entry.value = Array(kv.value.utf8)
            return entry
        }
        return config
    }
}

extension CRIClient {
    func pull(_ image: String) async throws {
        var request = PullImageRequest()
        var spec = ImageSpec()
        spec.image = image
        request.image = spec
        _ = try await call(CRIMethods.pullImage, request, timeout: .seconds(120))
    }

    func runPod(_ config: PodSandboxConfig) async throws -> String {
        var request = RunPodSandboxRequest()
        request.config = config
        return try await call(CRIMethods.runPodSandbox, request).podSandboxId
    }

    func podStatus(_ id: String, verbose: Bool = false) async throws -> PodSandboxStatusResponse {
        var request = PodSandboxStatusRequest()
        request.podSandboxId = id
        request.verbose = verbose
        return try await call(CRIMethods.podSandboxStatus, request)
    }

    func stopPod(_ id: String) async throws {
        var request = StopPodSandboxRequest()
        request.podSandboxId = id
        _ = try await call(CRIMethods.stopPodSandbox, request)
    }

    func removePod(_ id: String) async throws {
        var request = RemovePodSandboxRequest()
        request.podSandboxId = id
        _ = try await call(CRIMethods.removePodSandbox, request)
    }

    func listPods(_ filter: PodSandboxFilter? = nil) async throws -> [PodSandbox] {
        var request = ListPodSandboxRequest()
        request.filter = filter
        return try await call(CRIMethods.listPodSandbox, request).items
    }

    func create(_ pod: String, _ config: ContainerConfig, _ podConfig: PodSandboxConfig) async throws -> String {
        var request = CreateContainerRequest()
        request.podSandboxId = pod
        request.config = config
        request.sandboxConfig = podConfig
        return try await call(CRIMethods.createContainer, request).containerId
    }

    func start(_ id: String) async throws {
        var request = StartContainerRequest()
        request.containerId = id
        _ = try await call(CRIMethods.startContainer, request)
    }

    func run(_ pod: String, _ config: ContainerConfig, _ podConfig: PodSandboxConfig) async throws -> String {
        let id = try await create(pod, config, podConfig)
        try await start(id)
        return id
    }

    func stop(_ id: String, timeout: Int64) async throws {
        var request = StopContainerRequest()
        request.containerId = id
        request.timeout = timeout
        _ = try await call(CRIMethods.stopContainer, request, timeout: .seconds(timeout + 60))
    }

    func remove(_ id: String) async throws {
        var request = RemoveContainerRequest()
        request.containerId = id
        _ = try await call(CRIMethods.removeContainer, request)
    }

    func status(_ id: String) async throws -> CRI.ContainerStatus {
        var request = ContainerStatusRequest()
        request.containerId = id
        return try await call(CRIMethods.containerStatus, request).status ?? CRI.ContainerStatus()
    }

    func exec(_ id: String, _ cmd: [String], timeout: Int64 = 20) async throws -> (out: String, err: String, code: Int32) {
        var request = ExecSyncRequest()
        request.containerId = id
        request.cmd = cmd
        request.timeout = timeout
        let r = try await call(CRIMethods.execSync, request, timeout: .seconds(timeout + 30))
        return (String(decoding: r.stdout, as: UTF8.self), String(decoding: r.stderr, as: UTF8.self), r.exitCode)
    }

    func listContainers(_ filter: ContainerFilter? = nil) async throws -> [Container] {
        var request = ListContainersRequest()
        request.filter = filter
        return try await call(CRIMethods.listContainers, request).containers
    }

    /// Polls ContainerStatus until `predicate` holds (generous bound: the machine is shared and slow).
    func waitFor(_ id: String, timeout: Duration = .seconds(30), _ predicate: (CRI.ContainerStatus) -> Bool) async throws -> CRI.ContainerStatus {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let s = try await status(id)
            if predicate(s) { return s }
            if clock.now > deadline { throw TestFailure("container \(id) did not reach the expected state; last: \(s.state.name) exit \(s.exitCode)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// One skiffd plus a unique cgroup parent and log directory for a test; `finish()` checks that nothing
/// is left behind (cgroups, mounts, monitors) and removes the daemon's directories.
final class RuntimeHarness: @unchecked Sendable {
    let daemon: TestDaemon
    let cgroupParent: String
    let logDirectory: String
    let registry: TestRegistry

    private init(daemon: TestDaemon, registry: TestRegistry) {
        self.registry = registry
        self.daemon = daemon
        cgroupParent = "/skiff-it-\(UUID().uuidString.prefix(8).lowercased())"
        logDirectory = daemon.directory + "/logs"
    }

    func podConfig(
        name: String = "pod-\(UUID().uuidString.prefix(6).lowercased())", hostname: String = "", network: NamespaceMode = .pod,
        pid: NamespaceMode = .container, labels: [String: String] = [:], dns: DNSConfig? = nil
    ) -> PodSandboxConfig {
        Pods.config(name: name, hostname: hostname, logDirectory: logDirectory, cgroupParent: cgroupParent + "/" + name,
                    network: network, pid: pid, labels: labels, dns: dns)
    }

    func client<T: Sendable>(_ body: (CRIClient) async throws -> T) async throws -> T {
        try await daemon.client(body)
    }

    /// Runs a test body with a fresh harness; whatever happens in it, everything the test started is
    /// removed afterwards (through skiffd when it can, by force when it cannot) and leftovers fail the test.
    static func run(configYAML: String? = nil, _ body: (RuntimeHarness) async throws -> Void) async throws {
        let registry = try TestRegistry.get()
        let harness = RuntimeHarness(daemon: try await TestDaemon.start(configYAML: configYAML), registry: registry)
        do {
            try await body(harness)
        } catch {
            await harness.forceCleanup()
            throw error
        }
        try await harness.finish()
    }

    /// After a failed test: kill whatever runs in the test's cgroups and under its directory, unmount
    /// its mounts, remove its cgroups. Never reached when the test passes.
    func forceCleanup() async {
        if daemon.process.isRunning {
            _ = try? await client { c in
                for pod in try await c.listPods() { try? await c.removePod(pod.id) }
            }
        }
        await daemon.kill()
        let base = "/sys/fs/cgroup"
        let controllers = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        for controller in [""] + controllers.map({ "/" + $0 }) {
            let root = "\(base)\(controller)\(cgroupParent)"
            if let walker = FileManager.default.enumerator(atPath: root) {
                for case let entry as String in walker where entry.hasSuffix("cgroup.procs") {
                    let procs = (try? String(contentsOfFile: root + "/" + entry, encoding: .utf8)) ?? ""
                    for pid in procs.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
                }
            }
        }
        for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            if let n = Int32(pid), let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), cmd.contains(daemon.directory) {
                kill(n, SIGKILL)
            }
        }
        try? await Task.sleep(for: .milliseconds(300))
        let mounts = (try? FileSystem.readString("/proc/self/mountinfo")) ?? ""
        for line in mounts.split(separator: "\n").reversed() where line.contains(daemon.directory) {
            let fields = line.split(separator: " ")
            if fields.count > 4 { umount2(String(fields[4]), Int32(MNT_DETACH)) }
        }
        for controller in [""] + controllers.map({ "/" + $0 }) {
            let root = "\(base)\(controller)\(cgroupParent)"
            var dirs: [String] = []
            if let walker = FileManager.default.enumerator(atPath: root) {
                for case let entry as String in walker where (try? FileManager.default.attributesOfItem(atPath: root + "/" + entry)[.type] as? FileAttributeType) == .typeDirectory {
                    dirs.append(root + "/" + entry)
                }
            }
            for dir in dirs.sorted(by: { $0.count > $1.count }) { rmdir(dir) }
            rmdir(root)
        }
        await daemon.remove()
    }

    /// Removes every pod still present, stops skiffd, and checks for leftovers.
    func finish() async throws {
        if daemon.process.isRunning {
            try await client { c in
                for pod in try await c.listPods() { try await c.removePod(pod.id) }
            }
        }
        await daemon.terminate()
        let leftovers = Self.leftovers(cgroupParent: cgroupParent, directory: daemon.directory)
        await daemon.remove()
        // The test's own parent cgroup: per controller on v1, once on v2.
        _ = rmdir("/sys/fs/cgroup" + cgroupParent)
        for controller in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
            _ = rmdir("/sys/fs/cgroup/\(controller)\(cgroupParent)")
        }
        #expect(leftovers.isEmpty, "left behind: \(leftovers)")
    }

    static func leftovers(cgroupParent: String, directory: String) -> [String] {
        var found: [String] = []
        let mounts = (try? FileSystem.readString("/proc/self/mountinfo")) ?? ""
        found += mounts.split(separator: "\n").filter { $0.contains(directory) }.map { "mount: \($0)" }
        let base = "/sys/fs/cgroup"
        for controller in [""] + ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).map({ "/" + $0 }) {
            let dir = "\(base)\(controller)\(cgroupParent)"
            if let children = try? FileManager.default.contentsOfDirectory(atPath: dir) {
                // The parent itself is ours to remove; any child directory is a pod or container left behind.
                let subgroups = children.filter { (try? FileManager.default.attributesOfItem(atPath: dir + "/" + $0)[.type] as? FileAttributeType) == .typeDirectory }
                found += subgroups.map { "cgroup: \(dir)/\($0)" }
            }
        }
        for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(pid) != nil {
            if let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), cmd.contains(directory) {
                found.append("process \(pid): \(cmd.replacingOccurrences(of: "\0", with: " "))")
            }
        }
        return found
    }
}
