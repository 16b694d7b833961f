// Checks a spec against what skiff-runc can apply, before anything is created, and derives the
// pieces the launch needs. Anything not applied is refused by name (the spec says a runtime that
// cannot apply a property must fail create).

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

struct ValidatedSpec {
    enum PidMode { case new, join(String), host }

    var spec: Spec
    var process: Process
    var rootfs: String
    var mounts: [PlannedMount]
    var joins: [(kind: NamespaceKind, path: String)]
    var unshareFlags: Int32
    var pidMode: PidMode
    var newCgroupNamespace: Bool
    var newNetworkNamespace: Bool
    var caps: Caps.Sets
    var rlimits: [(Int32, UInt64, UInt64)]
    var seccomp: SeccompProgram?
    var cgroupPath: String
    var hasCgroupMount: Bool

    init(_ spec: Spec, bundle: String, id: String) throws(LauncherError) {
        self.spec = spec
        guard spec.ociVersion.hasPrefix("1.") else {
            throw .config("ociVersion \"\(spec.ociVersion)\" is not a 1.x runtime-spec version")
        }
        guard let process = spec.process else { throw .config("process is missing") }
        self.process = process
        try ValidatedSpec.check(process: process)

        guard let root = spec.root, !root.path.isEmpty else { throw .config("root.path is missing") }
        rootfs = root.path.hasPrefix("/") ? Sys.cleanPath(root.path) : Sys.cleanPath(bundle + "/" + root.path)
        guard Sys.isDirectory(rootfs) else {
            throw LauncherError(.invalidConfig, step: "rootfs", syscall: "stat", path: rootfs, errno: Sys.exists(rootfs) ? ENOTDIR : ENOENT)
        }

        let linux = spec.linux ?? Linux()
        if let v = spec.hooks {
            for h in v.prestart + v.createRuntime + v.createContainer + v.startContainer + v.poststart + v.poststop
            where !h.path.hasPrefix("/") {
                throw .config("hook path \"\(h.path)\" must be absolute")
            }
        }

        // Namespaces.
        var seen = Set<NamespaceKind>()
        var joins: [(NamespaceKind, String)] = []
        var flags: Int32 = 0
        var pidMode = PidMode.host
        for ns in linux.namespaces {
            guard seen.insert(ns.type).inserted else { throw .config("namespace \(ns.type.rawValue) is listed twice") }
            switch ns.type {
            case .user: throw .unsupported("user namespaces are not supported by skiff-runc")
            case .time: throw .unsupported("time namespaces are not supported by skiff-runc")
            case .mount:
                if ns.path != nil { throw .unsupported("joining a mount namespace is not supported; the container needs its own") }
                flags |= ContainerInit.nsFlag(.mount)
            case .pid:
                pidMode = ns.path.map { .join($0) } ?? .new
            default:
                if let p = ns.path { joins.append((ns.type, p)) } else { flags |= ContainerInit.nsFlag(ns.type) }
            }
        }
        guard seen.contains(.mount) else { throw .config("a mount namespace is required (linux.namespaces has no \"mount\")") }
        self.joins = joins
        unshareFlags = flags
        self.pidMode = pidMode
        newCgroupNamespace = flags & ContainerInit.nsFlag(.cgroup) != 0
        newNetworkNamespace = flags & ContainerInit.nsFlag(.network) != 0
        let utsNew = flags & ContainerInit.nsFlag(.uts) != 0
        if (spec.hostname ?? "") != "" && !utsNew { throw .config("hostname needs a new uts namespace") }
        if (spec.domainname ?? "") != "" && !utsNew { throw .config("domainname needs a new uts namespace") }

        if !linux.uidMappings.isEmpty || !linux.gidMappings.isEmpty {
            throw .unsupported("uid/gid mappings need user namespaces, which skiff-runc does not support")
        }
        if (linux.mountLabel ?? "") != "" { throw .unsupported("linux.mountLabel (SELinux) is not supported") }
        if linux.intelRdt != nil { throw .unsupported("linux.intelRdt is not supported") }
        if linux.timeOffsets != nil { throw .unsupported("linux.timeOffsets is not supported") }
        if linux.netDevices != nil { throw .unsupported("linux.netDevices is not supported") }
        if linux.memoryPolicy != nil { throw .unsupported("linux.memoryPolicy is not supported") }
        if let per = linux.personality {
            guard per.domain == "LINUX" || per.domain == "LINUX32" else { throw .config("unknown personality domain \"\(per.domain)\"") }
            guard per.flags.isEmpty else { throw .unsupported("personality flags are not supported") }
        }
        try ValidatedSpec.check(sysctl: linux.sysctl, flags: flags, joins: joins)

        mounts = try Rootfs.plan(spec.mounts, bundle: bundle)
        hasCgroupMount = mounts.contains { $0.kind == .cgroupV1 || $0.kind == .cgroupV2 }
        caps = try Caps.Sets(process.capabilities)
        rlimits = try Rlimits.resolve(process.rlimits)
        seccomp = try linux.seccomp.map { (s) throws(LauncherError) in try SeccompProgram(s) }
        if let r = linux.resources { try CgroupDialect.validate(r) }
        cgroupPath = try Cgroup.normalize(linux.cgroupsPath.flatMap { $0.isEmpty ? nil : $0 } ?? "/skiff/\(id)")
    }

    static func check(process: Process) throws(LauncherError) {
        guard !process.args.isEmpty else { throw .config("process.args must not be empty") }
        guard process.cwd.hasPrefix("/") else { throw .config("process.cwd \"\(process.cwd)\" must be absolute") }
        if (process.apparmorProfile ?? "") != "" { throw .unsupported("process.apparmorProfile (AppArmor) is not supported") }
        if (process.selinuxLabel ?? "") != "" { throw .unsupported("process.selinuxLabel (SELinux) is not supported") }
        if process.scheduler != nil { throw .unsupported("process.scheduler is not supported") }
        if process.execCPUAffinity != nil { throw .unsupported("process.execCPUAffinity is not supported") }
        if let adj = process.oomScoreAdj, adj < -1000 || adj > 1000 {
            throw .config("process.oomScoreAdj \(adj) is outside -1000...1000")
        }
        for e in process.env where !e.contains("=") { throw .config("process.env entry \"\(e)\" has no '='") }
    }

    /// Only sysctls that live in a namespace the container owns (runc's rules).
    static func check(sysctl: [String: String], flags: Int32, joins: [(NamespaceKind, String)]) throws(LauncherError) {
        let ipc = flags & ContainerInit.nsFlag(.ipc) != 0 || joins.contains { $0.0 == .ipc }
        let net = flags & ContainerInit.nsFlag(.network) != 0 || joins.contains { $0.0 == .network }
        let uts = flags & ContainerInit.nsFlag(.uts) != 0
        let ipcKeys: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                                    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]
        for key in sysctl.keys.sorted() {
            let k = key.replacingOccurrences("/", ".")
            if ipcKeys.contains(k) || k.hasPrefix("fs.mqueue.") {
                if !ipc { throw .config("sysctl \(key) needs an ipc namespace") }
            } else if k.hasPrefix("net.") {
                if !net { throw .config("sysctl \(key) needs a network namespace") }
            } else if k == "kernel.hostname" || k == "kernel.domainname" {
                if !uts { throw .config("sysctl \(key) needs a uts namespace") }
            } else {
                throw .config("sysctl \(key) is not in a namespace the container owns")
            }
            if k.contains("..") { throw .config("invalid sysctl key \(key)") }
        }
    }
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: Character) -> String { String(map { $0 == a ? b : $0 }) }
}
