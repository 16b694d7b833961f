import Foundation
import SkiffLauncher

/// The metrics one cgroup gives (a pod's or a container's, descendants included): CPU, memory, OOM kills,
/// threads, huge pages, pressure stalls and block I/O. The usage numbers the stats RPCs also report come
/// from `Cgroup.stats()` (SkiffLauncher's v1/v2 reader); the files only metrics need are read here, through
/// `read` so that both dialects are testable from fixture text. A value whose file is missing (a
/// controller that is not mounted, a kernel without the feature) is left out, never reported as 0.
public enum CgroupMetrics {
    /// `(controller, file) -> text`, nil when the file does not exist.
    public typealias Reader = (_ controller: String, _ file: String) -> String?

    /// Everything the cgroup at `path` reports, or nil when it is gone.
    static func read(path: String) -> (cgroup: Cgroup, samples: [MetricSample])? {
        guard let cgroup = try? Cgroup(path: path), let stats = try? cgroup.stats() else { return nil }
        let samples = samples(version: cgroup.version, stats: stats, hugePageSizes: HugePages.sizes,
                              devices: DeviceNames.name) { cgroup.read($1, controller: $0) }
        return (cgroup, samples)
    }

    static func samples(
        version: CgroupVersion, stats: CgroupStats, hugePageSizes: [String],
        devices: (_ major: UInt32, _ minor: UInt32) -> String, read: Reader
    ) -> [MetricSample] {
        var out = cpu(version, stats, read)
        out += memory(version, stats, read)
        if read("pids", "pids.current") != nil {
            out.append(MetricSample(MetricCatalog.threads, stats.pidsCurrent))
            // cAdvisor's convention: 0 means no limit.
            out.append(MetricSample(MetricCatalog.threadsMax, stats.pidsLimit ?? 0))
        }
        out += hugetlb(version, hugePageSizes, read)
        out += pressure(version, read)
        out += blockIO(version, devices, read)
        return out
    }

    // MARK: CPU

    /// Usage, user and system time from cpuacct (v1) or cpu.stat (v2), via CgroupStats; CFS periods and
    /// throttling from cpu.stat (v1 `throttled_time` in ns, v2 `throttled_usec`), only for a group with a
    /// quota (v1 cpu.cfs_quota_us, v2 cpu.max), as cAdvisor: without one nothing is throttled.
    static func cpu(_ version: CgroupVersion, _ stats: CgroupStats, _ read: Reader) -> [MetricSample] {
        var out: [MetricSample] = []
        let hasAccounting = version == .v1 ? read("cpuacct", "cpuacct.usage") != nil : read("cpu", "cpu.stat") != nil
        if hasAccounting {
            out.append(MetricSample(MetricCatalog.cpuUsageSeconds, seconds(nanos: stats.cpuUsageNanoseconds), ["total"]))
            out.append(MetricSample(MetricCatalog.cpuUserSeconds, seconds(nanos: stats.cpuUserNanoseconds)))
            out.append(MetricSample(MetricCatalog.cpuSystemSeconds, seconds(nanos: stats.cpuSystemNanoseconds)))
        }
        let cs = CgroupText.keyed(read("cpu", "cpu.stat"))
        if hasQuota(version, read), let periods = cs["nr_periods"], let throttled = cs["nr_throttled"] {
            let throttledNanos = version == .v1 ? cs["throttled_time"] : cs["throttled_usec"].map { $0 &* 1000 }
            out.append(MetricSample(MetricCatalog.cpuCfsPeriods, periods))
            out.append(MetricSample(MetricCatalog.cpuCfsThrottledPeriods, throttled))
            if let throttledNanos { out.append(MetricSample(MetricCatalog.cpuCfsThrottledSeconds, seconds(nanos: throttledNanos))) }
        }
        return out
    }

    static func hasQuota(_ version: CgroupVersion, _ read: Reader) -> Bool {
        switch version {
        case .v1:
            guard let quota = read("cpu", "cpu.cfs_quota_us").flatMap({ Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else { return false }
            return quota > 0
        case .v2:
            guard let max = read("cpu", "cpu.max")?.split(separator: " ").first else { return false }
            return max != "max"
        }
    }

    // MARK: Memory

    /// v1 reads the hierarchical `total_*` keys of memory.stat; v2's memory.stat is hierarchical already.
    static func memory(_ version: CgroupVersion, _ stats: CgroupStats, _ read: Reader) -> [MetricSample] {
        let usageFile = version == .v1 ? "memory.usage_in_bytes" : "memory.current"
        guard read("memory", usageFile) != nil else { return [] }
        let ms = CgroupText.keyed(read("memory", "memory.stat"))
        var out = [
            MetricSample(MetricCatalog.memoryUsage, stats.memoryUsageBytes),
            MetricSample(MetricCatalog.memoryWorkingSet, stats.memoryWorkingSetBytes),
            MetricSample(MetricCatalog.memoryRSS, stats.memoryRSSBytes),
            MetricSample(MetricCatalog.memoryFailcnt, stats.memoryFailCount),
            MetricSample(MetricCatalog.oomEvents, stats.oomKillCount),
        ]
        func add(_ definition: MetricDefinition, _ value: UInt64?) {
            if let value { out.append(MetricSample(definition, value)) }
        }
        switch version {
        case .v1:
            add(MetricCatalog.memoryMaxUsage, CgroupText.number(read("memory", "memory.max_usage_in_bytes")))
            add(MetricCatalog.memoryCache, ms["total_cache"])
            add(MetricCatalog.memoryMappedFile, ms["total_mapped_file"])
            // total_swap is there with swap accounting; without it no swap is charged to the group.
            add(MetricCatalog.memorySwap, ms["total_swap"])
            add(MetricCatalog.memoryActiveFile, ms["total_active_file"])
            add(MetricCatalog.memoryInactiveFile, ms["total_inactive_file"])
            add(MetricCatalog.memoryKernelUsage, CgroupText.number(read("memory", "memory.kmem.usage_in_bytes")))
            // scope "container": this group's own faults; "hierarchy": with its descendants.
            for (type, key) in [("pgfault", "pgfault"), ("pgmajfault", "pgmajfault")] {
                if let own = ms[Substring(key)] { out.append(MetricSample(MetricCatalog.memoryFailures, own, [type, "container"])) }
                if let all = ms[Substring("total_" + key)] { out.append(MetricSample(MetricCatalog.memoryFailures, all, [type, "hierarchy"])) }
            }
        case .v2:
            // memory.peak: kernel 5.19 and later.
            add(MetricCatalog.memoryMaxUsage, CgroupText.number(read("memory", "memory.peak")))
            add(MetricCatalog.memoryCache, ms["file"])
            add(MetricCatalog.memoryMappedFile, ms["file_mapped"])
            add(MetricCatalog.memorySwap, CgroupText.number(read("memory", "memory.swap.current")))
            add(MetricCatalog.memoryActiveFile, ms["active_file"])
            add(MetricCatalog.memoryInactiveFile, ms["inactive_file"])
            add(MetricCatalog.memoryKernelUsage, ms["kernel"])
            // v2 keeps only hierarchical counters: both scopes carry them, as cAdvisor does.
            for type in ["pgfault", "pgmajfault"] {
                guard let n = ms[Substring(type)] else { continue }
                out.append(MetricSample(MetricCatalog.memoryFailures, n, [type, "container"]))
                out.append(MetricSample(MetricCatalog.memoryFailures, n, [type, "hierarchy"]))
            }
        }
        return out
    }

    // MARK: Huge pages

    /// Per page size (`2MB`, `1GB`): v1 `hugetlb.<size>.usage_in_bytes` and `.max_usage_in_bytes`; v2
    /// `hugetlb.<size>.current` (v2 keeps no maximum).
    static func hugetlb(_ version: CgroupVersion, _ sizes: [String], _ read: Reader) -> [MetricSample] {
        var out: [MetricSample] = []
        for size in sizes {
            switch version {
            case .v1:
                if let usage = CgroupText.number(read("hugetlb", "hugetlb.\(size).usage_in_bytes")) {
                    out.append(MetricSample(MetricCatalog.hugetlbUsage, usage, [size]))
                }
                if let max = CgroupText.number(read("hugetlb", "hugetlb.\(size).max_usage_in_bytes")) {
                    out.append(MetricSample(MetricCatalog.hugetlbMaxUsage, max, [size]))
                }
            case .v2:
                if let usage = CgroupText.number(read("hugetlb", "hugetlb.\(size).current")) {
                    out.append(MetricSample(MetricCatalog.hugetlbUsage, usage, [size]))
                }
            }
        }
        return out
    }

    // MARK: Pressure

    /// PSI totals of `<resource>.pressure` (cgroup v2 with PSI enabled): waiting = `some`, stalled = `full`.
    static func pressure(_ version: CgroupVersion, _ read: Reader) -> [MetricSample] {
        let resources: [(controller: String, file: String, waiting: MetricDefinition, stalled: MetricDefinition)] = [
            ("cpu", "cpu.pressure", MetricCatalog.pressureCPUWaiting, MetricCatalog.pressureCPUStalled),
            ("memory", "memory.pressure", MetricCatalog.pressureMemoryWaiting, MetricCatalog.pressureMemoryStalled),
            (version == .v1 ? "blkio" : "io", "io.pressure", MetricCatalog.pressureIOWaiting, MetricCatalog.pressureIOStalled),
        ]
        var out: [MetricSample] = []
        for r in resources {
            let totals = CgroupText.pressureTotals(read(r.controller, r.file))
            if let some = totals.some { out.append(MetricSample(r.waiting, seconds(nanos: some &* 1000))) }
            if let full = totals.full { out.append(MetricSample(r.stalled, seconds(nanos: full &* 1000))) }
        }
        return out
    }

    // MARK: Block I/O

    /// Bytes and operations per device. v1: the blkio `io_service_bytes_recursive` / `io_serviced_recursive`
    /// files of the first policy that accounts anything (bfq, cfq, then throttle, as runc reads them); v2:
    /// io.stat (rbytes, wbytes, dbytes, rios, wios).
    static func blockIO(_ version: CgroupVersion, _ devices: (UInt32, UInt32) -> String, _ read: Reader) -> [MetricSample] {
        var bytes: [CgroupText.DeviceCounter] = []
        var ios: [CgroupText.DeviceCounter] = []
        switch version {
        case .v1:
            for prefix in ["blkio.bfq.", "blkio.", "blkio.throttle."] {
                let b = CgroupText.blkioV1(read("blkio", prefix + "io_service_bytes_recursive"))
                if b.isEmpty { continue }
                bytes = b
                ios = CgroupText.blkioV1(read("blkio", prefix + "io_serviced_recursive"))
                break
            }
        case .v2:
            for line in CgroupText.ioStatV2(read("io", "io.stat")) {
                for (key, op) in [("rbytes", "Read"), ("wbytes", "Write"), ("dbytes", "Discard")] {
                    if let v = line.values[key] { bytes.append(.init(major: line.major, minor: line.minor, operation: op, value: v)) }
                }
                for (key, op) in [("rios", "Read"), ("wios", "Write")] {
                    if let v = line.values[key] { ios.append(.init(major: line.major, minor: line.minor, operation: op, value: v)) }
                }
            }
        }
        var out: [MetricSample] = []
        for c in bytes {
            let device = devices(c.major, c.minor)
            out.append(MetricSample(MetricCatalog.blkioDeviceUsage, c.value, [device, String(c.major), String(c.minor), c.operation]))
            if c.operation == "Read" { out.append(MetricSample(MetricCatalog.fsReadsBytes, c.value, [device])) }
            if c.operation == "Write" { out.append(MetricSample(MetricCatalog.fsWritesBytes, c.value, [device])) }
        }
        for c in ios {
            let device = devices(c.major, c.minor)
            if c.operation == "Read" { out.append(MetricSample(MetricCatalog.fsReads, c.value, [device])) }
            if c.operation == "Write" { out.append(MetricSample(MetricCatalog.fsWrites, c.value, [device])) }
        }
        return out
    }

    /// Whole seconds: the CRI carries integers (containerd and CRI-O truncate the same way).
    static func seconds(nanos: UInt64) -> UInt64 { nanos / 1_000_000_000 }
}

/// Parsers for the text formats of cgroup control files.
enum CgroupText {
    /// `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control). One pass over the
    /// bytes: memory.stat has dozens of lines per group and a scrape reads it for every pod and container.
    static func keyed(_ text: String?) -> [Substring: UInt64] {
        guard var text else { return [:] }
        var out: [Substring: UInt64] = [:]
        text.withUTF8 { bytes in
            var lineStart = 0
            while lineStart < bytes.count {
                var space = -1
                var end = lineStart
                while end < bytes.count && bytes[end] != UInt8(ascii: "\n") {
                    if bytes[end] == UInt8(ascii: " ") { space = space == -1 ? end : -2 }
                    end += 1
                }
                // Exactly one space, a key before it and digits after it.
                if space > lineStart && space + 1 < end {
                    var n: UInt64 = 0
                    var ok = true
                    for i in (space + 1)..<end {
                        let d = bytes[i] &- UInt8(ascii: "0")
                        let (m, o1) = n.multipliedReportingOverflow(by: 10)
                        let (a, o2) = m.addingReportingOverflow(UInt64(d))
                        if d > 9 || o1 || o2 { ok = false; break }
                        n = a
                    }
                    if ok {
                        let key = Substring(decoding: UnsafeBufferPointer(rebasing: bytes[lineStart..<space]), as: UTF8.self)
                        out[key] = n
                    }
                }
                lineStart = end + 1
            }
        }
        return out
    }

    /// A file holding one number; nil when missing or `max`.
    static func number(_ text: String?) -> UInt64? {
        text.flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// `total=` of the `some` and `full` lines of a PSI file, in microseconds.
    static func pressureTotals(_ text: String?) -> (some: UInt64?, full: UInt64?) {
        var some: UInt64?
        var full: UInt64?
        for line in (text ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first,
                  let total = fields.first(where: { $0.hasPrefix("total=") }).flatMap({ UInt64($0.dropFirst(6)) })
            else { continue }
            if kind == "some" { some = total } else if kind == "full" { full = total }
        }
        return (some, full)
    }

    struct DeviceCounter: Equatable {
        var major: UInt32
        var minor: UInt32
        var operation: String
        var value: UInt64
    }

    /// v1 blkio: `MAJ:MIN Op value` lines and a final `Total value` (left out).
    static func blkioV1(_ text: String?) -> [DeviceCounter] {
        var out: [DeviceCounter] = []
        for line in (text ?? "").split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let (major, minor) = device(f[0]), let value = UInt64(f[2]) else { continue }
            out.append(DeviceCounter(major: major, minor: minor, operation: String(f[1]), value: value))
        }
        return out
    }

    /// v2 io.stat: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` per device.
    static func ioStatV2(_ text: String?) -> [(major: UInt32, minor: UInt32, values: [String: UInt64])] {
        var out: [(UInt32, UInt32, [String: UInt64])] = []
        for line in (text ?? "").split(separator: "\n") {
            let f = line.split(separator: " ")
            guard let first = f.first, let (major, minor) = device(first) else { continue }
            var values: [String: UInt64] = [:]
            for pair in f.dropFirst() {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, let n = UInt64(kv[1]) { values[String(kv[0])] = n }
            }
            out.append((major, minor, values))
        }
        return out
    }

    static func device(_ text: Substring) -> (UInt32, UInt32)? {
        let mm = text.split(separator: ":")
        guard mm.count == 2, let major = UInt32(mm[0]), let minor = UInt32(mm[1]) else { return nil }
        return (major, minor)
    }
}
