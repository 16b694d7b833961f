// A default Linux spec, equivalent to what `runc spec` writes (without a terminal), so code that
// builds specs starts from the same baseline as the reference runtime.

extension Spec {
    /// Capabilities a default container keeps (runc's default set).
    public static let defaultCapabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

    public static let defaultMaskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
    ]

    public static let defaultReadonlyPaths = [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]

    /// The standard mounts: /proc, /dev (tmpfs) with /dev/pts, /dev/shm and /dev/mqueue, /sys (ro),
    /// /sys/fs/cgroup (ro).
    public static let defaultMounts: [Mount] = [
        Mount(destination: "/proc", type: "proc", source: "proc"),
        Mount(destination: "/dev", type: "tmpfs", source: "tmpfs",
              options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
              options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        Mount(destination: "/dev/shm", type: "tmpfs", source: "shm",
              options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
        Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
        Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
              options: ["nosuid", "noexec", "nodev", "relatime", "ro"]),
    ]

    /// A spec like `runc spec`: new pid, network, ipc, uts and mount namespaces, the default mounts,
    /// masked and read-only paths, runc's default capabilities, RLIMIT_NOFILE 1024, no new privileges,
    /// and a read-only root. Differences from runc: no terminal, and `args` and `rootfs` are yours.
    /// `cgroupNamespace` adds a cgroup namespace, which `runc spec` does on cgroup v2 hosts.
    public static func defaultLinux(args: [String], rootfs: String = "rootfs", hostname: String? = nil,
                                    cgroupNamespace: Bool = false) -> Spec {
        let process = Process(
            terminal: false,
            user: User(uid: 0, gid: 0),
            args: args,
            env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            cwd: "/",
            capabilities: Capabilities(
                bounding: defaultCapabilities, effective: defaultCapabilities,
                permitted: defaultCapabilities, ambient: defaultCapabilities),
            rlimits: [Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)],
            noNewPrivileges: true)
        let linux = Linux(
            namespaces: [Namespace(.pid), Namespace(.network), Namespace(.ipc), Namespace(.uts), Namespace(.mount)]
                + (cgroupNamespace ? [Namespace(.cgroup)] : []),
            resources: Resources(devices: [DeviceRule(allow: false, access: "rwm")]),
            maskedPaths: defaultMaskedPaths,
            readonlyPaths: defaultReadonlyPaths)
        return Spec(process: process, root: Root(path: rootfs, readonly: true), hostname: hostname ?? "runc",
                    mounts: defaultMounts, linux: linux)
    }
}
