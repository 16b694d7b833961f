// Capability names <-> numbers, and applying a process's capability sets and credentials.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

enum Caps {
    /// Index = capability number (linux/capability.h).
    static let names: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// Highest capability the running kernel knows.
    static let lastCap: Int = {
        if let s = Sys.readStringIfPresent("/proc/sys/kernel/cap_last_cap"), let n = Int(s.trimmed()) { return n }
        return names.count - 1
    }()

    static func number(_ name: String) -> Int? {
        let upper = name.uppercased()
        let full = upper.hasPrefix("CAP_") ? upper : "CAP_" + upper
        return names.firstIndex(of: full)
    }

    /// A 64-bit mask from names. Unknown names are errors; capabilities the kernel does not have
    /// are left out (like runc).
    static func mask(_ list: [String], field: String) throws(LauncherError) -> UInt64 {
        var m: UInt64 = 0
        for n in list {
            guard let c = number(n) else {
                throw LauncherError(.invalidConfig, step: "capabilities", detail: "unknown capability \"\(n)\" in \(field)")
            }
            if c <= lastCap { m |= 1 << UInt64(c) }
        }
        return m
    }

    struct Sets: Sendable {
        var bounding: UInt64
        var effective: UInt64
        var permitted: UInt64
        var inheritable: UInt64
        var ambient: UInt64

        init(_ c: Capabilities?) throws(LauncherError) {
            guard let c else {
                // No capabilities object: the process keeps none.
                bounding = 0; effective = 0; permitted = 0; inheritable = 0; ambient = 0
                return
            }
            bounding = try Caps.mask(c.bounding, field: "bounding")
            effective = try Caps.mask(c.effective, field: "effective")
            permitted = try Caps.mask(c.permitted, field: "permitted")
            inheritable = try Caps.mask(c.inheritable, field: "inheritable")
            ambient = try Caps.mask(c.ambient, field: "ambient")
        }
    }

    /// Drops the bounding set, switches to the user (keeping permitted capabilities across the uid
    /// change), then sets effective/permitted/inheritable and ambient. Runs in the container process
    /// right before exec.
    static func applyUserAndCapabilities(user: User, caps: Sets) throws(LauncherError) {
        for c in 0...lastCap where caps.bounding & (1 << UInt64(c)) == 0 {
            if clx_capbset_drop(Int32(c)) != 0 && errno != EINVAL {
                throw .sys("capabilities", "prctl(PR_CAPBSET_DROP)", names.indices.contains(c) ? names[c] : String(c))
            }
        }
        if clx_set_keepcaps(1) != 0 { throw .sys("user", "prctl(PR_SET_KEEPCAPS)") }
        let groups = user.additionalGids.map { gid_t($0) }
        let rc = groups.withUnsafeBufferPointer { clx_setgroups($0.count, $0.baseAddress) }
        if rc != 0 { throw .sys("user", "setgroups", groups.map(String.init).joined(separator: ",")) }
        if clx_setresgid(user.gid, user.gid, user.gid) != 0 { throw .sys("user", "setresgid", String(user.gid)) }
        if clx_setresuid(user.uid, user.uid, user.uid) != 0 { throw .sys("user", "setresuid", String(user.uid)) }
        if clx_set_keepcaps(0) != 0 { throw .sys("user", "prctl(PR_SET_KEEPCAPS)") }
        if clx_capset(caps.effective, caps.permitted, caps.inheritable) != 0 {
            let e = errno
            throw LauncherError(.system, step: "capabilities", syscall: "capset", errno: e,
                                detail: unobtainable(caps).map { "this process does not hold " + $0 })
        }
        if clx_cap_ambient_clear_all() != 0 && errno != EINVAL { throw .sys("capabilities", "prctl(PR_CAP_AMBIENT_CLEAR_ALL)") }
        for c in 0...lastCap where caps.ambient & (1 << UInt64(c)) != 0 {
            // The kernel only allows ambient capabilities that are also permitted and inheritable;
            // like runc, the others are skipped rather than failing the container.
            _ = clx_cap_ambient_raise(Int32(c))
        }
    }
}

extension Caps {
    /// Names of the requested effective/permitted capabilities this process cannot grant (not in its
    /// permitted set), for the capset error: the usual cause is a spec asking for more than the
    /// caller of the launcher holds. Nil when capget fails or nothing is missing.
    static func unobtainable(_ caps: Sets) -> String? {
        var eff: UInt64 = 0, prm: UInt64 = 0, inh: UInt64 = 0
        guard clx_capget(&eff, &prm, &inh) == 0 else { return nil }
        let missing = (caps.permitted | caps.effective) & ~prm
        let list = describe(missing)
        return list.isEmpty ? nil : list
    }

    /// "CAP_A, CAP_B" for the bits of a mask.
    static func describe(_ mask: UInt64) -> String {
        (0..<64).filter { mask & (1 << UInt64($0)) != 0 }
            .map { names.indices.contains($0) ? names[$0] : "capability \($0)" }
            .joined(separator: ", ")
    }
}

enum Rlimits {
    static let table: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    static func resolve(_ list: [Rlimit]) throws(LauncherError) -> [(Int32, UInt64, UInt64)] {
        var out: [(Int32, UInt64, UInt64)] = []
        var seen = Set<String>()
        for r in list {
            guard let n = table[r.type] else { throw .config("unknown rlimit type \"\(r.type)\"") }
            guard seen.insert(r.type).inserted else { throw .config("rlimit \(r.type) is listed twice") }
            guard r.soft <= r.hard else { throw .config("rlimit \(r.type): soft \(r.soft) is above hard \(r.hard)") }
            out.append((n, r.soft, r.hard))
        }
        return out
    }

    static func apply(_ list: [(Int32, UInt64, UInt64)]) throws(LauncherError) {
        for (res, soft, hard) in list where clx_setrlimit(res, soft, hard) != 0 {
            let name = table.first { $0.value == res }?.key ?? String(res)
            throw .sys("rlimits", "setrlimit", name)
        }
    }
}
