// Everything that differs between cgroup v1 and v2, in one place: which controllers a group lives
// in, how OCI resources become control-file writes, and how stats are read back.
//
// OCI resources use v1 units. v2 conversions (as the runtime-spec's cgroup v2 notes describe):
//   memory.limit -> memory.max          memory.swap (mem+swap) -> memory.swap.max = swap - limit
//   memory.reservation -> memory.low    cpu.shares -> cpu.weight = 1 + (shares-2)*9999/262142
//   cpu.quota/period -> cpu.max "Q P"   pids.limit -> pids.max     hugetlb.S.limit_in_bytes -> hugetlb.S.max

import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

/// One control-file write, in the order it must happen.
struct CgroupWrite: Equatable, Sendable {
    var controller: String
    var file: String
    var value: String
}

/// Current values a conversion needs to order its writes (v1 memsw) or to keep a half it was not
/// given (v2 cpu.max).
struct CgroupCurrent {
    var read: (_ controller: String, _ file: String) -> String?
    var hasFile: (_ controller: String, _ file: String) -> Bool
}

enum CgroupDialect {
    /// Controllers a container or pod group is created in, when mounted/available.
    static func wantedControllers(_ v: CgroupVersion) -> [String] {
        switch v {
        case .v1: return ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio", "hugetlb"]
        case .v2: return ["cpu", "cpuset", "memory", "pids", "io", "hugetlb"]
        }
    }

    /// The file that lists a group's processes.
    static let procsFile = "cgroup.procs"

    static func writes(_ v: CgroupVersion, _ r: Resources, current: CgroupCurrent) throws(LauncherError) -> [CgroupWrite] {
        try validate(r)
        switch v {
        case .v1: return try v1Writes(r, current)
        case .v2: return try v2Writes(r, current)
        }
    }

    private static func unsupported(_ what: String) -> LauncherError {
        LauncherError(.unsupported, step: "cgroup resources", detail: what)
    }

    static func validate(_ r: Resources) throws(LauncherError) {
        if r.blockIO != nil { throw unsupported("linux.resources.blockIO is not supported") }
        if r.network != nil { throw unsupported("linux.resources.network is not supported") }
        if r.rdma != nil { throw unsupported("linux.resources.rdma is not supported") }
        if let m = r.memory {
            if m.kernel != nil || m.kernelTCP != nil {
                throw unsupported("linux.resources.memory.kernel/kernelTCP are deprecated and not supported")
            }
            if let l = m.limit, let s = m.swap, l != -1, s != -1, s < l {
                throw LauncherError(.invalidConfig, step: "cgroup resources",
                                    detail: "memory.swap (\(s)) is memory+swap and must be >= memory.limit (\(l))")
            }
            if let sw = m.swappiness, sw > 100 {
                throw LauncherError(.invalidConfig, step: "cgroup resources", detail: "memory.swappiness \(sw) is above 100")
            }
        }
    }

    // MARK: v1

    private static func v1Writes(_ r: Resources, _ cur: CgroupCurrent) throws(LauncherError) -> [CgroupWrite] {
        var w: [CgroupWrite] = []
        if !r.unified.isEmpty { throw unsupported("linux.resources.unified needs cgroup v2 (this host runs v1)") }
        if let c = r.cpu {
            if let v = c.cpus { w.append(.init(controller: "cpuset", file: "cpuset.cpus", value: v)) }
            if let v = c.mems { w.append(.init(controller: "cpuset", file: "cpuset.mems", value: v)) }
        }
        if let m = r.memory {
            let memswFile = "memory.memsw.limit_in_bytes"
            var memWrites: [CgroupWrite] = []
            if let l = m.limit { memWrites.append(.init(controller: "memory", file: "memory.limit_in_bytes", value: String(l))) }
            if let s = m.swap {
                if cur.hasFile("memory", memswFile) {
                    let sw = CgroupWrite(controller: "memory", file: memswFile, value: String(s))
                    // The kernel keeps memory <= memory+swap at every step: when the new memory limit
                    // is above the current memsw limit, raise memsw first.
                    let curMemsw = cur.read("memory", memswFile).flatMap { Int64($0.trimmed()) } ?? Int64.max
                    let newLimit = m.limit.map { $0 == -1 ? Int64.max : $0 } ?? 0
                    if newLimit > curMemsw { memWrites.insert(sw, at: 0) } else { memWrites.append(sw) }
                } else if s != -1 && s != (m.limit ?? -1) {
                    throw unsupported("memory.swap needs swap accounting (\(memswFile) is missing)")
                }
            }
            w += memWrites
            if let v = m.reservation { w.append(.init(controller: "memory", file: "memory.soft_limit_in_bytes", value: String(v))) }
            if let v = m.swappiness { w.append(.init(controller: "memory", file: "memory.swappiness", value: String(v))) }
            if m.disableOOMKiller == true { w.append(.init(controller: "memory", file: "memory.oom_control", value: "1")) }
        }
        if let c = r.cpu {
            if let v = c.shares, v != 0 { w.append(.init(controller: "cpu", file: "cpu.shares", value: String(v))) }
            if let v = c.period, v != 0 { w.append(.init(controller: "cpu", file: "cpu.cfs_period_us", value: String(v))) }
            if let v = c.quota { w.append(.init(controller: "cpu", file: "cpu.cfs_quota_us", value: v > 0 ? String(v) : "-1")) }
            if let v = c.burst { w.append(.init(controller: "cpu", file: "cpu.cfs_burst_us", value: String(v))) }
            if let v = c.realtimePeriod, v != 0 { w.append(.init(controller: "cpu", file: "cpu.rt_period_us", value: String(v))) }
            if let v = c.realtimeRuntime { w.append(.init(controller: "cpu", file: "cpu.rt_runtime_us", value: String(v))) }
            if let v = c.idle { w.append(.init(controller: "cpu", file: "cpu.idle", value: String(v))) }
        }
        if let p = r.pids { w.append(.init(controller: "pids", file: "pids.max", value: p.limit > 0 ? String(p.limit) : "max")) }
        for h in r.hugepageLimits {
            w.append(.init(controller: "hugetlb", file: "hugetlb.\(h.pageSize).limit_in_bytes", value: String(h.limit)))
        }
        w += try v1DeviceWrites(r.devices)
        return w
    }

    /// Device rules become devices.deny / devices.allow lines, in order. A spec with any rules also
    /// gets runc's default allow list after them.
    static func v1DeviceWrites(_ rules: [DeviceRule]) throws(LauncherError) -> [CgroupWrite] {
        guard !rules.isEmpty else { return [] }
        var w: [CgroupWrite] = []
        for (i, d) in rules.enumerated() {
            let type = d.type ?? "a"
            guard ["a", "c", "b"].contains(type) else {
                throw LauncherError(.invalidConfig, step: "cgroup resources",
                                    detail: "linux.resources.devices[\(i)].type must be a, c or b")
            }
            let access = d.access ?? "rwm"
            guard !access.isEmpty, access.allSatisfy({ "rwm".contains($0) }) else {
                throw LauncherError(.invalidConfig, step: "cgroup resources",
                                    detail: "linux.resources.devices[\(i)].access must be made of r, w, m")
            }
            let line: String
            if type == "a" {
                line = "a"
            } else {
                line = "\(type) \(d.major.map { $0 < 0 ? "*" : String($0) } ?? "*"):\(d.minor.map { $0 < 0 ? "*" : String($0) } ?? "*") \(access)"
            }
            w.append(.init(controller: "devices", file: d.allow ? "devices.allow" : "devices.deny", value: line))
        }
        // The same list as runc (and so containerd and CRI-O): mknod of anything, use of the
        // standard nodes, tun, and the pty slaves.
        for line in ["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                     "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"] {
            w.append(.init(controller: "devices", file: "devices.allow", value: line))
        }
        return w
    }

    // MARK: v2

    static func cpuWeight(fromShares shares: UInt64) -> UInt64 {
        if shares == 0 { return 0 }
        let s = min(max(shares, 2), 262144)
        return 1 + ((s - 2) * 9999) / 262142
    }

    private static func v2Writes(_ r: Resources, _ cur: CgroupCurrent) throws(LauncherError) -> [CgroupWrite] {
        var w: [CgroupWrite] = []
        if let c = r.cpu {
            if let v = c.cpus { w.append(.init(controller: "cpuset", file: "cpuset.cpus", value: v)) }
            if let v = c.mems { w.append(.init(controller: "cpuset", file: "cpuset.mems", value: v)) }
        }
        if let m = r.memory {
            if let l = m.limit { w.append(.init(controller: "memory", file: "memory.max", value: l == -1 ? "max" : String(l))) }
            if let s = m.swap {
                let swapFile = "memory.swap.max"
                let limit = m.limit ?? -1
                if cur.hasFile("memory", swapFile) {
                    let value: String
                    if s == -1 {
                        value = "max"
                    } else if limit == -1 {
                        throw LauncherError(.invalidConfig, step: "cgroup resources",
                                            detail: "memory.swap needs memory.limit on cgroup v2")
                    } else {
                        value = String(s - limit)
                    }
                    w.append(.init(controller: "memory", file: swapFile, value: value))
                } else if s != -1 && s != limit {
                    throw unsupported("memory.swap needs swap accounting (\(swapFile) is missing)")
                }
            }
            if let v = m.reservation { w.append(.init(controller: "memory", file: "memory.low", value: String(v))) }
            // memory.swappiness and disableOOMKiller have no v2 equivalent; like runc, they are ignored.
        }
        if let c = r.cpu {
            if let s = c.shares, s != 0 {
                w.append(.init(controller: "cpu", file: "cpu.weight", value: String(cpuWeight(fromShares: s))))
            }
            if c.quota != nil || (c.period ?? 0) != 0 {
                // cpu.max holds both halves: keep the half we were not given.
                let old = cur.read("cpu", "cpu.max")?.trimmed().split(separator: " ") ?? []
                let quota: String
                if let q = c.quota { quota = q > 0 ? String(q) : "max" } else { quota = old.first.map(String.init) ?? "max" }
                let period: String
                if let p = c.period, p != 0 { period = String(p) } else { period = old.count > 1 ? String(old[1]) : "100000" }
                w.append(.init(controller: "cpu", file: "cpu.max", value: "\(quota) \(period)"))
            }
            if let v = c.burst { w.append(.init(controller: "cpu", file: "cpu.max.burst", value: String(v))) }
            if let v = c.idle { w.append(.init(controller: "cpu", file: "cpu.idle", value: String(v))) }
            if c.realtimeRuntime != nil || c.realtimePeriod != nil {
                throw unsupported("cpu.realtimeRuntime/realtimePeriod are not available on cgroup v2")
            }
        }
        if let p = r.pids { w.append(.init(controller: "pids", file: "pids.max", value: p.limit > 0 ? String(p.limit) : "max")) }
        for h in r.hugepageLimits {
            w.append(.init(controller: "hugetlb", file: "hugetlb.\(h.pageSize).max", value: String(h.limit)))
        }
        for key in r.unified.keys.sorted() {
            guard !key.contains("/"), let dot = key.firstIndex(of: "."), dot != key.startIndex else {
                throw LauncherError(.invalidConfig, step: "cgroup resources", detail: "invalid unified key \"\(key)\"")
            }
            w.append(.init(controller: String(key[..<dot]), file: key, value: r.unified[key]!))
        }
        return w
    }

    // MARK: stats

    static func stats(_ v: CgroupVersion, read: (_ controller: String, _ file: String) -> String?) -> CgroupStats {
        var s = CgroupStats()
        func keyed(_ text: String?) -> [Substring: UInt64] {
            var out: [Substring: UInt64] = [:]
            for line in (text ?? "").split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let n = UInt64(parts[1]) { out[parts[0]] = n }
            }
            return out
        }
        func number(_ text: String?) -> UInt64? { text.flatMap { UInt64($0.trimmed()) } }
        func limit(_ text: String?) -> UInt64? {
            guard let t = text?.trimmed(), t != "max", let n = UInt64(t) else { return nil }
            return n >= 0x7FFF_FFFF_FFFF_F000 ? nil : n
        }
        switch v {
        case .v1:
            s.cpuUsageNanoseconds = number(read("cpuacct", "cpuacct.usage")) ?? 0
            let ticks = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
            let cs = keyed(read("cpuacct", "cpuacct.stat"))
            s.cpuUserNanoseconds = (cs["user"] ?? 0) * (1_000_000_000 / ticks)
            s.cpuSystemNanoseconds = (cs["system"] ?? 0) * (1_000_000_000 / ticks)
            s.memoryUsageBytes = number(read("memory", "memory.usage_in_bytes")) ?? 0
            let ms = keyed(read("memory", "memory.stat"))
            let inactive = ms["total_inactive_file"] ?? ms["inactive_file"] ?? 0
            s.memoryWorkingSetBytes = s.memoryUsageBytes > inactive ? s.memoryUsageBytes - inactive : 0
            s.memoryRSSBytes = ms["total_rss"] ?? ms["rss"] ?? 0
            s.memoryLimitBytes = limit(read("memory", "memory.limit_in_bytes"))
            let oom = keyed(read("memory", "memory.oom_control"))
            s.oomKillCount = oom["oom_kill"] ?? 0
            s.underOOM = (oom["under_oom"] ?? 0) != 0
            s.memoryFailCount = number(read("memory", "memory.failcnt")) ?? 0
            s.pidsCurrent = number(read("pids", "pids.current")) ?? 0
            s.pidsLimit = limit(read("pids", "pids.max"))
        case .v2:
            let cs = keyed(read("cpu", "cpu.stat"))
            s.cpuUsageNanoseconds = (cs["usage_usec"] ?? 0) * 1000
            s.cpuUserNanoseconds = (cs["user_usec"] ?? 0) * 1000
            s.cpuSystemNanoseconds = (cs["system_usec"] ?? 0) * 1000
            s.memoryUsageBytes = number(read("memory", "memory.current")) ?? 0
            let ms = keyed(read("memory", "memory.stat"))
            let inactive = ms["inactive_file"] ?? 0
            s.memoryWorkingSetBytes = s.memoryUsageBytes > inactive ? s.memoryUsageBytes - inactive : 0
            s.memoryRSSBytes = ms["anon"] ?? 0
            s.memoryLimitBytes = limit(read("memory", "memory.max"))
            let ev = keyed(read("memory", "memory.events"))
            s.oomKillCount = ev["oom_kill"] ?? 0
            s.memoryFailCount = ev["max"] ?? 0
            s.underOOM = false
            s.pidsCurrent = number(read("pids", "pids.current")) ?? 0
            s.pidsLimit = limit(read("pids", "pids.max"))
        }
        return s
    }
}
