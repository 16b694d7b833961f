import CRI
import Foundation
import Glibc
import SkiffImages
import SkiffOCI
import SkiffSupport

/// Turns a CRI ContainerConfig, the image's config and the pod it joins into an OCI runtime spec, the
/// way containerd's CRI plugin does (its defaults: capabilities, masked and read-only paths, mounts).
public struct ContainerSpecBuilder {
    public var config: ContainerConfig
    public var image: ImageConfig
    public var sandbox: SandboxRecord
    public var sandboxFiles: String       // directory with the pod's hosts, resolv.conf, hostname
    public var rootfs: String
    public var cgroupsPath: String
    public var targetPid: Int32?          // for pid namespace TARGET: the target container's init pid

    public init(config: ContainerConfig, image: ImageConfig, sandbox: SandboxRecord, sandboxFiles: String, rootfs: String, cgroupsPath: String, targetPid: Int32? = nil) {
        self.config = config
        self.image = image
        self.sandbox = sandbox
        self.sandboxFiles = sandboxFiles
        self.rootfs = rootfs
        self.cgroupsPath = cgroupsPath
        self.targetPid = targetPid
    }

    /// containerd's default capability set for CRI containers.
    public static let defaultCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ]

    /// Every capability the kernel knows (through CAP_CHECKPOINT_RESTORE, Linux 5.9).
    public static let allCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    public static let defaultMaskedPaths = [
        "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
        "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ]

    public static let defaultReadonlyPaths = [
        "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]

    /// The process's argv, Kubernetes style: `command` replaces ENTRYPOINT (and drops CMD); `args` alone
    /// replace CMD.
    public static func arguments(command: [String], args: [String], image: ImageConfig) throws(SkiffError) -> [String] {
        let result: [String]
        if !command.isEmpty {
            result = command + args
        } else {
            result = (image.entrypoint ?? []) + (args.isEmpty ? (image.cmd ?? []) : args)
        }
        guard !result.isEmpty else { throw .invalidArgument("no command specified: the container config and the image give neither command nor entrypoint/cmd") }
        return result
    }

    /// Image env overridden by the config's envs, keeping the image's order for the keys it defines.
    public static func environment(image: [String], overrides: [KeyValue]) -> [String] {
        var order: [String] = []
        var values: [String: String] = [:]
        func set(_ key: String, _ value: String) {
            if values[key] == nil { order.append(key) }
            values[key] = value
        }
        for entry in image {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            set(String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
        for kv in overrides { set(kv.key, String(decoding: kv.value, as: UTF8.self)) }
        if values["PATH"] == nil { set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") }
        return order.map { "\($0)=\(values[$0]!)" }
    }

    /// "NET_ADMIN", "cap_net_admin" → "CAP_NET_ADMIN".
    static func capabilityName(_ name: String) -> String {
        let upper = name.uppercased()
        return upper.hasPrefix("CAP_") ? upper : "CAP_" + upper
    }

    /// The capabilities skiffd holds (CapEff ∩ CapBnd of /proc/self/status, read once). The launcher it
    /// starts can grant a container no others, so "all" (privileged, add ALL) means these, as containerd's
    /// WithAllCurrentCapabilities. Falls back to the full list if the file cannot be read.
    public static let skiffdCapabilities: [String] = {
        guard let status = try? FileSystem.readString("/proc/self/status"), let held = heldCapabilities(status: status) else {
            return allCapabilities
        }
        return held
    }()

    /// Names (in `allCapabilities` order) of the capabilities in both CapEff and CapBnd of a
    /// /proc/<pid>/status text; nil when either line is missing or malformed.
    public static func heldCapabilities(status: String) -> [String]? {
        func mask(_ key: String) -> UInt64? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return UInt64(line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces), radix: 16)
        }
        guard let eff = mask("CapEff"), let bnd = mask("CapBnd") else { return nil }
        let held = eff & bnd
        return allCapabilities.enumerated().filter { held & (1 << UInt64($0.offset)) != 0 }.map(\.element)
    }

    /// The container's capability set. `held` is what skiffd may grant (`skiffdCapabilities`): privileged
    /// and ALL mean exactly that, and naming a capability outside it is INVALID_ARGUMENT, because the
    /// launcher's capset would fail on it anyway.
    public static func capabilities(privileged: Bool, add: [String], drop: [String], held: [String] = skiffdCapabilities) throws(SkiffError) -> [String] {
        if privileged { return held }
        var caps = defaultCapabilities.filter { held.contains($0) }
        let dropAll = drop.contains { $0.uppercased() == "ALL" }
        if dropAll { caps = [] }
        if add.contains(where: { $0.uppercased() == "ALL" }) { caps = held }
        for name in add where name.uppercased() != "ALL" {
            let cap = capabilityName(name)
            guard allCapabilities.contains(cap) else { throw .invalidArgument("unknown capability \"\(name)\" in capabilities.add_capabilities") }
            guard held.contains(cap) else {
                throw .invalidArgument("capability \(cap) in capabilities.add_capabilities cannot be granted: skiffd itself does not hold it (see CapEff/CapBnd in its /proc/<pid>/status)")
            }
            if !caps.contains(cap) { caps.append(cap) }
        }
        for name in drop where name.uppercased() != "ALL" {
            let cap = capabilityName(name)
            guard allCapabilities.contains(cap) else { throw .invalidArgument("unknown capability \"\(name)\" in capabilities.drop_capabilities") }
            caps.removeAll { $0 == cap }
        }
        return caps
    }

    public func build(user: ResolvedUser, oomScoreAdjFloor: Int) throws(SkiffError) -> Spec {
        let security = config.linux?.securityContext
        let privileged = security?.privileged ?? false
        var spec = Spec.defaultLinux(
            args: try Self.arguments(command: config.command, args: config.args, image: image), rootfs: rootfs)
        spec.hostname = nil  // the UTS namespace is the pod's; its hostname is set there
        spec.root?.readonly = security?.readonlyRootfs ?? false

        // Process.
        var process = spec.process!
        process.env = Self.environment(image: image.env, overrides: config.envs)
        process.cwd = !config.workingDir.isEmpty ? config.workingDir : (image.workingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/")
        process.user = User(uid: user.uid, gid: user.gid, additionalGids: user.additionalGids)
        let caps = try Self.capabilities(
            privileged: privileged, add: security?.capabilities?.addCapabilities ?? [],
            drop: security?.capabilities?.dropCapabilities ?? [])
        let ambient = (security?.capabilities?.addAmbientCapabilities ?? []).map(Self.capabilityName).filter { caps.contains($0) }
        process.capabilities = Capabilities(bounding: caps, effective: caps, inheritable: ambient, permitted: caps, ambient: ambient)
        process.noNewPrivileges = security?.noNewPrivs ?? false
        process.rlimits = []
        // tty: the runtime makes a pty and hands its master to the monitor (--console-socket). TERM as
        // containerd's WithTTY sets it, unless the image or config chose one.
        process.terminal = config.tty
        if config.tty && !process.env.contains(where: { $0.hasPrefix("TERM=") }) { process.env.append("TERM=xterm") }
        if let resources = config.linux?.resources, resources.oomScoreAdj != 0 || oomScoreAdjFloor > 0 {
            // Without CAP_SYS_RESOURCE the score cannot go below skiffd's own: never ask for that.
            process.oomScoreAdj = max(Int(resources.oomScoreAdj), oomScoreAdjFloor)
        }
        spec.process = process

        // Namespaces: join the pod's, own mount namespace.
        var namespaces = [Namespace(.mount)]
        let infra = sandbox.infraPid
        if !sandbox.hostNetwork {
            namespaces.append(Namespace(.network, path: "/proc/\(infra)/ns/net"))
            namespaces.append(Namespace(.uts, path: "/proc/\(infra)/ns/uts"))
        }
        if sandbox.ipcMode != NamespaceMode.node.rawValue {
            namespaces.append(Namespace(.ipc, path: "/proc/\(infra)/ns/ipc"))
        }
        let pidMode = security?.namespaceOptions?.pid ?? .container
        switch pidMode {
        case .pod: namespaces.append(Namespace(.pid, path: "/proc/\(infra)/ns/pid"))
        case .node: break
        case .target:
            guard let targetPid else { throw .invalidArgument("pid namespace TARGET needs a running target container") }
            namespaces.append(Namespace(.pid, path: "/proc/\(targetPid)/ns/pid"))
        default: namespaces.append(Namespace(.pid))
        }
        spec.linux?.namespaces = namespaces

        // Mounts: defaults, the pod's files, then the config's mounts in order.
        var mounts = Spec.defaultMounts
        if privileged {
            mounts = mounts.map { m in
                var m = m
                if m.destination == "/sys" || m.destination == "/sys/fs/cgroup" { m.options.removeAll { $0 == "ro" }; m.options.append("rw") }
                return m
            }
        }
        let podFileMode = (security?.readonlyRootfs ?? false) ? "ro" : "rw"
        for (file, target) in [("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf"), ("hostname", "/etc/hostname")]
        where !config.mounts.contains(where: { $0.containerPath == target }) {
            mounts.append(Mount(destination: target, type: "bind", source: sandboxFiles + "/" + file, options: ["rbind", "rprivate", podFileMode]))
        }
        for m in config.mounts {
            guard m.containerPath.hasPrefix("/") else { throw .invalidArgument("mount container_path \"\(m.containerPath)\" must be absolute") }
            guard FileSystem.exists(m.hostPath) else {
                throw .invalidArgument("mount host_path \"\(m.hostPath)\" does not exist (for \(m.containerPath))")
            }
            var options = ["rbind"]
            switch m.propagation {
            case .propagationHostToContainer: options.append("rslave")
            case .propagationBidirectional: options.append("rshared")
            default: options.append("rprivate")
            }
            options.append(m.readonly ? "ro" : "rw")
            mounts.removeAll { $0.destination == m.containerPath }
            mounts.append(Mount(destination: m.containerPath, type: "bind", source: m.hostPath, options: options))
        }
        spec.mounts = mounts
        if config.mounts.contains(where: { $0.propagation == .propagationBidirectional || $0.propagation == .propagationHostToContainer }) {
            spec.linux?.rootfsPropagation = config.mounts.contains { $0.propagation == .propagationBidirectional } ? "rshared" : "rslave"
        }

        // Devices.
        var deviceRules = [DeviceRule(allow: false, access: "rwm")]
        if privileged { deviceRules = [DeviceRule(allow: true, access: "rwm")] }
        for device in config.devices {
            var st = stat()
            guard stat(device.hostPath, &st) == 0 else { throw .invalidArgument("device \(device.hostPath): \(String(cString: strerror(errno)))") }
            let kind = st.st_mode & S_IFMT
            guard kind == S_IFCHR || kind == S_IFBLK else { throw .invalidArgument("device \(device.hostPath) is not a character or block device") }
            let type = kind == S_IFCHR ? "c" : "b"
            let major = Int64((st.st_rdev >> 8) & 0xfff) | Int64((st.st_rdev >> 32) & ~0xfff)
            let minor = Int64(st.st_rdev & 0xff) | Int64((st.st_rdev >> 12) & ~0xff)
            let permissions = device.permissions.isEmpty ? "rwm" : device.permissions
            spec.linux?.devices.append(Device(path: device.containerPath, type: type, major: major, minor: minor, fileMode: UInt32(st.st_mode & 0o777), uid: 0, gid: 0))
            deviceRules.append(DeviceRule(allow: true, type: type, major: major, minor: minor, access: permissions))
        }

        // Security.
        if privileged {
            spec.linux?.maskedPaths = []
            spec.linux?.readonlyPaths = []
        } else {
            let masked = security?.maskedPaths ?? []
            let readonly = security?.readonlyPaths ?? []
            spec.linux?.maskedPaths = masked.isEmpty ? Self.defaultMaskedPaths : masked
            spec.linux?.readonlyPaths = readonly.isEmpty ? Self.defaultReadonlyPaths : readonly
        }

        spec.linux?.seccomp = try SeccompProfiles.seccomp(
            for: security, privileged: privileged, capabilities: spec.process?.capabilities?.bounding ?? [])

        // Resources → the container's cgroup under the pod's.
        spec.linux?.cgroupsPath = cgroupsPath
        spec.linux?.resources = Self.resources(config.linux?.resources, devices: deviceRules)

        spec.annotations = config.annotations.merging([
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": sandbox.id,
            "io.kubernetes.cri.container-name": config.metadata?.name ?? "",
        ]) { $1 }
        return spec
    }

    public static func resources(_ r: LinuxContainerResources?, devices: [DeviceRule]) -> Resources {
        var resources = Resources(devices: devices)
        guard let r else { return resources }
        if r.memoryLimitInBytes > 0 || r.memorySwapLimitInBytes > 0 {
            resources.memory = MemoryResources(
                limit: r.memoryLimitInBytes > 0 ? r.memoryLimitInBytes : nil,
                swap: r.memorySwapLimitInBytes > 0 ? r.memorySwapLimitInBytes : nil)
        }
        if r.cpuShares > 0 || r.cpuQuota != 0 || r.cpuPeriod > 0 || !r.cpusetCpus.isEmpty || !r.cpusetMems.isEmpty {
            resources.cpu = CPUResources(
                shares: r.cpuShares > 0 ? UInt64(r.cpuShares) : nil,
                quota: r.cpuQuota != 0 ? r.cpuQuota : nil,
                period: r.cpuPeriod > 0 ? UInt64(r.cpuPeriod) : nil,
                cpus: r.cpusetCpus.isEmpty ? nil : r.cpusetCpus,
                mems: r.cpusetMems.isEmpty ? nil : r.cpusetMems)
        }
        if let pids = r.unified["pids.max"], let limit = Int64(pids) {
            resources.pids = PidsResources(limit: limit)
        }
        resources.unified = r.unified.filter { $0.key != "pids.max" }
        return resources
    }
}
