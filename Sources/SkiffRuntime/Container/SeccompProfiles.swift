import CRI
import Glibc
import SkiffOCI
import SkiffSupport

/// CRI seccomp settings → `linux.seccomp`, as containerd's CRI plugin maps them: privileged containers get
/// no filter; the `seccomp` SecurityProfile wins over the deprecated `seccomp_profile_path`; "unconfined"
/// or nothing means no filter; RuntimeDefault ("runtime/default", "docker/default") is Skiff's own default
/// profile; Localhost ("localhost/<absolute path>") is a Docker/OCI-format JSON profile read from the node.
public enum SeccompProfiles {
    /// What the CRI settings ask for, before capabilities and files come in.
    public enum Choice: Equatable, Sendable {
        case unconfined
        case runtimeDefault
        case localhost(String)  // absolute path of the profile file
    }

    static let localhostPrefix = "localhost/"

    /// The OCI filter for a container, or nil for none. `capabilities` is the container's bounding set
    /// ("CAP_SYS_ADMIN", ...): capability-gated rules of the default profile and of Docker-format
    /// `includes`/`excludes` are decided by it.
    public static func seccomp(for security: LinuxContainerSecurityContext?, privileged: Bool, capabilities: [String]) throws(SkiffError) -> Seccomp? {
        let choice = try choice(profile: security?.seccomp, deprecatedPath: security?.seccompProfilePath ?? "")
        // Like containerd: a privileged container runs without a filter, whatever was asked.
        if privileged { return nil }
        switch choice {
        case .unconfined: return nil
        case .runtimeDefault: return defaultProfile(capabilities: capabilities)
        case .localhost(let path): return try localhostProfile(path: path, capabilities: capabilities)
        }
    }

    /// Which profile the CRI fields select; throws INVALID_ARGUMENT for values containerd rejects.
    public static func choice(profile: SecurityProfile?, deprecatedPath: String) throws(SkiffError) -> Choice {
        if let profile {
            if profile.profileType != .localhost && !profile.localhostRef.isEmpty {
                throw .invalidArgument("seccomp: localhost_ref \"\(profile.localhostRef)\" is only allowed with profile_type Localhost (got \(profile.profileType.name))")
            }
            switch profile.profileType {
            case .unconfined: return .unconfined
            case .runtimeDefault: return .runtimeDefault
            case .localhost:
                // The prefix is not expected here, but containerd tolerates it.
                var path = profile.localhostRef
                if path.hasPrefix(localhostPrefix) { path.removeFirst(localhostPrefix.count) }
                return try localhost(path, field: "seccomp.localhost_ref")
            default:
                throw .invalidArgument("seccomp: unknown profile_type \(profile.profileType.name): use RuntimeDefault, Unconfined or Localhost")
            }
        }
        switch deprecatedPath {
        case "", "unconfined": return .unconfined
        case "runtime/default", "docker/default": return .runtimeDefault
        default:
            guard deprecatedPath.hasPrefix(localhostPrefix) else {
                throw .invalidArgument("seccomp_profile_path \"\(deprecatedPath)\" is not a known profile: use unconfined, runtime/default, docker/default or localhost/<absolute path to a JSON profile>")
            }
            return try localhost(String(deprecatedPath.dropFirst(localhostPrefix.count)), field: "seccomp_profile_path")
        }
    }

    private static func localhost(_ path: String, field: String) throws(SkiffError) -> Choice {
        guard path.hasPrefix("/") else {
            throw .invalidArgument("\(field): localhost seccomp profile \"\(path)\" must be an absolute path on the node")
        }
        return .localhost(path)
    }

    // MARK: - Localhost profiles

    /// Reads a profile file: the OCI `linux.seccomp` form or Docker's (`name`, `includes`/`excludes`,
    /// `archMap`), evaluated for this machine and the container's capabilities.
    public static func localhostProfile(path: String, capabilities: [String]) throws(SkiffError) -> Seccomp {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readBytes(path) } catch {
            throw .invalidArgument("seccomp profile \(path) cannot be read: \(error)")
        }
        let json: JSON
        do { json = try JSON(parsing: bytes) } catch {
            throw .invalidArgument("seccomp profile \(path) is not valid JSON: \(error)")
        }
        do {
            return try convert(json, capabilities: capabilities)
        } catch let e as SkiffError {
            throw .invalidArgument("seccomp profile \(path): \(e.message)")
        } catch {
            throw .invalidArgument("seccomp profile \(path): \(error)")
        }
    }

    /// Docker/OCI profile JSON → the OCI form the launcher loads. Everything the launcher would refuse is
    /// refused here, so a bad file fails CreateContainer with INVALID_ARGUMENT rather than at start.
    public static func convert(_ json: JSON, capabilities: [String], arch: Architecture = .native, kernel: (Int, Int) = kernelVersion()) throws -> Seccomp {
        let r = try JSONReader(json, path: "")
        let defaultAction = try r.string("defaultAction")
        try checkAction(defaultAction, field: "defaultAction")
        var architectures = try r.strings("architectures")
        let archMap = object(json, "archMap")?.arrayValue ?? []
        if !archMap.isEmpty {
            guard architectures.isEmpty else { throw SkiffError.invalidArgument("use either architectures or archMap, not both") }
            for (i, entry) in archMap.enumerated() {
                let e = try JSONReader(entry, path: "archMap[\(i)]")
                let main = try e.string("architecture")
                if main == arch.scmp { architectures = [main] + (try e.strings("subArchitectures")) }
            }
        }
        for a in architectures where !knownArchitectures.contains(a) {
            throw SkiffError.invalidArgument("unknown architecture \"\(a)\" (expected names like SCMP_ARCH_X86_64)")
        }
        let flags = try r.strings("flags")
        for f in flags where !["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"].contains(f) {
            throw SkiffError.invalidArgument("seccomp flag \(f) is not supported")
        }
        if r.has("listenerPath") { throw SkiffError.invalidArgument("listenerPath (seccomp user notification) is not supported") }

        var syscalls: [Seccomp.Syscall] = []
        for (i, entry) in (object(json, "syscalls")?.arrayValue ?? []).enumerated() {
            let at = "syscalls[\(i)]"
            let s = try JSONReader(entry, path: at)
            var names = try s.strings("names")
            if let single = try s.optionalString("name") {
                guard names.isEmpty else { throw SkiffError.invalidArgument("\(at): use either name or names, not both") }
                names = [single]
            }
            guard !names.isEmpty else { throw SkiffError.invalidArgument("\(at): no syscall name (names or name)") }
            if let inc = object(entry, "includes"), !(try applies(inc, at: at + ".includes", capabilities: capabilities, arch: arch, kernel: kernel, all: true)) { continue }
            if let exc = object(entry, "excludes"), try applies(exc, at: at + ".excludes", capabilities: capabilities, arch: arch, kernel: kernel, all: false) { continue }
            let action = try s.string("action")
            try checkAction(action, field: at + ".action")
            let args: [Seccomp.Arg] = try s.decodeArray("args")
            for (j, a) in args.enumerated() {
                guard a.index <= 5 else { throw SkiffError.invalidArgument("\(at).args[\(j)]: argument index \(a.index) is above 5") }
                guard operators.contains(a.op) else {
                    throw SkiffError.invalidArgument("\(at).args[\(j)]: unknown operator \"\(a.op)\" (expected one of \(operators.joined(separator: ", ")))")
                }
            }
            syscalls.append(Seccomp.Syscall(names: names, action: action, errnoRet: try s.optionalUInt32("errnoRet"), args: args))
        }
        return Seccomp(defaultAction: defaultAction, defaultErrnoRet: try r.optionalUInt32("defaultErrnoRet"),
                       architectures: architectures, flags: flags, syscalls: syscalls)
    }

    /// Docker's `includes` (all conditions must hold) and `excludes` (any condition suffices).
    private static func applies(_ filter: JSON, at: String, capabilities: [String], arch: Architecture, kernel: (Int, Int), all: Bool) throws -> Bool {
        let f = try JSONReader(filter, path: at)
        var conditions: [Bool] = []
        let arches = try f.strings("arches")
        if !arches.isEmpty { conditions.append(arches.contains { arch.names.contains($0) }) }
        let caps = try f.strings("caps")
        if !caps.isEmpty {
            let bounding = Set(capabilities.map(ContainerSpecBuilder.capabilityName))
            let held = caps.map { bounding.contains(ContainerSpecBuilder.capabilityName($0)) }
            conditions.append(all ? !held.contains(false) : held.contains(true))
        }
        if let minKernel = try f.optionalString("minKernel") {
            let parts = minKernel.split(separator: ".").map { Int($0) }
            guard parts.count >= 2, let major = parts[0], let minor = parts[1] else {
                throw SkiffError.invalidArgument("\(at).minKernel \"\(minKernel)\" is not a version like 4.8")
            }
            conditions.append(kernel >= (major, minor))
        }
        if conditions.isEmpty { return all }
        return all ? !conditions.contains(false) : conditions.contains(true)
    }

    private static func object(_ json: JSON, _ key: String) -> JSON? {
        guard let v = json[key], v != .null else { return nil }
        return v
    }

    private static func checkAction(_ action: String, field: String) throws(SkiffError) {
        if action == "SCMP_ACT_NOTIFY" { throw .invalidArgument("\(field): SCMP_ACT_NOTIFY (user notification) is not supported") }
        guard actions.contains(action) else {
            throw .invalidArgument("\(field): unknown action \"\(action)\" (expected one of \(actions.joined(separator: ", ")))")
        }
    }

    /// What the launcher (libseccomp) accepts.
    static let actions = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
                          "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"]
    static let operators = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]
    static let knownArchitectures = [
        "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    ]

    /// The running kernel's major.minor, for Docker's `minKernel`.
    public static func kernelVersion() -> (Int, Int) {
        var u = utsname()
        guard uname(&u) == 0 else { return (0, 0) }
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : (0, 0)
    }

    // MARK: - The default profile

    /// The machine's seccomp architecture, its compat architectures and the names Docker profiles use for it.
    public struct Architecture: Sendable {
        public var scmp: String
        public var compat: [String]
        public var names: [String]         // as written in Docker `includes.arches`
        public var cloneFlagsArgument: UInt32  // s390 swaps clone's first two arguments

        #if arch(x86_64)
        public static let native = Architecture(scmp: "SCMP_ARCH_X86_64", compat: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                                                names: ["amd64", "x86_64", "SCMP_ARCH_X86_64"], cloneFlagsArgument: 0)
        #elseif arch(arm64)
        public static let native = Architecture(scmp: "SCMP_ARCH_AARCH64", compat: ["SCMP_ARCH_ARM"],
                                                names: ["arm64", "aarch64", "SCMP_ARCH_AARCH64"], cloneFlagsArgument: 0)
        #elseif arch(s390x)
        public static let native = Architecture(scmp: "SCMP_ARCH_S390X", compat: ["SCMP_ARCH_S390"],
                                                names: ["s390x", "SCMP_ARCH_S390X"], cloneFlagsArgument: 1)
        #elseif arch(powerpc64le)
        public static let native = Architecture(scmp: "SCMP_ARCH_PPC64LE", compat: [],
                                                names: ["ppc64le", "SCMP_ARCH_PPC64LE"], cloneFlagsArgument: 0)
        #else
        public static let native = Architecture(scmp: "", compat: [], names: [], cloneFlagsArgument: 0)
        #endif
    }

    /// Syscalls every container may make: the ones ordinary programs need and whose harm the kernel
    /// already bounds by ownership, capabilities or namespaces. Names a libseccomp or an architecture does
    /// not know are skipped by the launcher, so 32-bit and per-architecture names can be listed together.
    public static let ordinarySyscalls: [String] = [
        // Reading and writing descriptors.
        "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2",
        "lseek", "_llseek", "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range",
        "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3", "pipe", "pipe2",
        "fcntl", "fcntl64", "ioctl", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
        "sync_file_range2", "arm_sync_file_range", "fallocate", "fadvise64", "fadvise64_64", "arm_fadvise64_64",
        "readahead", "truncate", "truncate64", "ftruncate", "ftruncate64",
        // File metadata and directories.
        "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "newfstatat", "fstatat64", "statx", "statfs",
        "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "chmod", "fchmod", "fchmodat",
        "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "utime",
        "utimes", "futimesat", "utimensat", "utimensat_time64", "getxattr", "lgetxattr", "fgetxattr", "setxattr",
        "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr",
        "fremovexattr", "readlink", "readlinkat", "umask", "mkdir", "mkdirat", "rmdir", "rename", "renameat",
        "renameat2", "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "getdents", "getdents64",
        "chdir", "fchdir", "getcwd", "mknod", "mknodat", "memfd_create",
        // Memory.
        "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock", "mlock2",
        "munlock", "mlockall", "munlockall", "remap_file_pages", "membarrier", "pkey_alloc", "pkey_free",
        "pkey_mprotect",
        // Processes, threads, identity, scheduling and limits.
        "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid", "kill", "tkill",
        "tgkill", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "getuid",
        "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32", "setuid", "setuid32",
        "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid", "setresuid32",
        "setresgid", "setresgid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "setfsuid",
        "setfsuid32", "setfsgid", "setfsgid32", "getgroups", "getgroups32", "setgroups", "setgroups32", "capget",
        "capset", "prctl", "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
        "futex_time64", "futex_waitv", "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
        "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
        "sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr",
        "sched_setattr", "getpriority", "setpriority", "ioprio_get", "ioprio_set", "getrlimit", "ugetrlimit",
        "setrlimit", "prlimit64", "getrusage", "times", "uname", "sysinfo", "getcpu", "getrandom", "pidfd_open",
        "pidfd_send_signal", "set_thread_area", "get_thread_area", "seccomp", "landlock_create_ruleset",
        "landlock_add_rule", "landlock_restrict_self", "chroot", "ustat", "sysfs",
        // Signals.
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait",
        "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaction", "sigprocmask", "sigreturn",
        "sigpending", "sigsuspend", "sigaltstack", "signal", "signalfd", "signalfd4", "pause", "alarm",
        "restart_syscall",
        // Clocks and timers (setting the clock is gated below; adjtimex only reads without CAP_SYS_TIME).
        "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "clock_nanosleep",
        "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time", "adjtimex", "getitimer", "setitimer",
        "timer_create", "timer_delete", "timer_settime", "timer_settime64", "timer_gettime", "timer_gettime64",
        "timer_getoverrun", "timerfd_create", "timerfd_settime", "timerfd_settime64", "timerfd_gettime",
        "timerfd_gettime64",
        // Waiting for events; asynchronous I/O.
        "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64", "epoll_create",
        "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old", "epoll_pwait",
        "epoll_pwait2", "eventfd", "eventfd2", "inotify_init", "inotify_init1", "inotify_add_watch",
        "inotify_rm_watch", "io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
        "io_submit", "io_cancel",
        // Sockets.
        "socket", "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect", "getsockname",
        "getpeername", "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg",
        "recvmmsg_time64", "shutdown", "setsockopt", "getsockopt",
        // System V and POSIX IPC (scoped by the pod's IPC namespace).
        "ipc", "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semtimedop_time64",
        "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
        "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
        // 32-bit ARM helpers.
        "breakpoint", "cacheflush", "set_tls",
    ]

    /// Syscalls allowed only to a container that holds the capability. Never listed at all, so blocked
    /// for everyone: kexec_load/kexec_file_load, keyctl/add_key/request_key (the keyring is not
    /// namespaced), userfaultfd, io_uring_*, uselib, _sysctl, nfsservctl, vm86, lookup_dcookie,
    /// create_module/get_kernel_syms/query_module.
    public static let capabilitySyscalls: [(capability: String, names: [String])] = [
        ("CAP_SYS_ADMIN", [
            "mount", "umount", "umount2", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
            "fspick", "pivot_root", "unshare", "setns", "sethostname", "setdomainname", "clone", "clone3",
            "quotactl", "quotactl_fd", "fanotify_init", "swapon", "swapoff", "bpf", "perf_event_open",
        ]),
        ("CAP_SYS_PTRACE", ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"]),
        ("CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
        ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64"]),
        ("CAP_SYS_BOOT", ["reboot"]),
        ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
        ("CAP_SYS_PACCT", ["acct"]),
        ("CAP_SYS_NICE", ["get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind", "migrate_pages", "move_pages"]),
        ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
        ("CAP_SYSLOG", ["syslog"]),
        ("CAP_DAC_READ_SEARCH", ["open_by_handle_at", "name_to_handle_at"]),
        ("CAP_BPF", ["bpf"]),
        ("CAP_PERFMON", ["perf_event_open"]),
    ]

    /// Namespace flags of clone(2): without CAP_SYS_ADMIN clone may not set any of them.
    static let cloneNamespaceFlags: UInt64 = 0x0002_0000 /* NEWNS */ | 0x0200_0000 /* NEWCGROUP */ | 0x0400_0000 /* NEWUTS */
        | 0x0800_0000 /* NEWIPC */ | 0x1000_0000 /* NEWUSER */ | 0x2000_0000 /* NEWPID */ | 0x4000_0000 /* NEWNET */

    /// personality(2) values programs use: Linux, 32-bit uname, UNAME26 (and both), and the query 0xffffffff.
    static let allowedPersonalities: [UInt64] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff]

    /// Skiff's RuntimeDefault: everything not allowed fails with EPERM.
    public static func defaultProfile(capabilities: [String], arch: Architecture = .native) -> Seccomp {
        let held = Set(capabilities.map(ContainerSpecBuilder.capabilityName))
        var allowed = ordinarySyscalls
        for group in capabilitySyscalls where held.contains(group.capability) {
            for name in group.names where !allowed.contains(name) { allowed.append(name) }
        }
        var syscalls = [Seccomp.Syscall(names: allowed, action: "SCMP_ACT_ALLOW")]
        for value in allowedPersonalities {
            syscalls.append(Seccomp.Syscall(names: ["personality"], action: "SCMP_ACT_ALLOW",
                                            args: [Seccomp.Arg(index: 0, value: value, op: "SCMP_CMP_EQ")]))
        }
        if !held.contains("CAP_SYS_ADMIN") {
            // Threads and processes yes, new namespaces no.
            syscalls.append(Seccomp.Syscall(names: ["clone"], action: "SCMP_ACT_ALLOW", args: [
                Seccomp.Arg(index: arch.cloneFlagsArgument, value: cloneNamespaceFlags, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ"),
            ]))
            // clone3's flags live in memory a filter cannot read. ENOSYS (not EPERM) makes libc fall back to clone.
            syscalls.append(Seccomp.Syscall(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: UInt32(ENOSYS)))
        }
        return Seccomp(defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: UInt32(EPERM),
                       architectures: arch.scmp.isEmpty ? [] : [arch.scmp] + arch.compat, syscalls: syscalls)
    }
}
