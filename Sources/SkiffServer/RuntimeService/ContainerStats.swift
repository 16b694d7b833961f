import CRI
import SkiffLauncher
import SkiffRuntime
import SkiffSupport
import Synchronization

/// ContainerStats and ListContainerStats: CPU and memory from the container's cgroup, and the size of its
/// writable layer. The cgroup readings here are shared with PodSandboxStats, which reads the pod's cgroup.
extension CRIServer {
    func containerStats(_ request: ContainerStatsRequest) async throws -> ContainerStatsResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("ContainerStats: container_id is required") }
        guard let found = try context.containers.resolve(request.containerId), let record = context.refresh(found.id) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        var response = ContainerStatsResponse()
        response.stats = await stats(of: record)
        return response
    }

    func listContainerStats(_ request: ListContainerStatsRequest) async throws -> ListContainerStatsResponse {
        let all = context.containers.all()
        Self.cpuSamples.retain(Set(all.map(\.id)).union(context.sandboxes.ids))
        var records = all.filter { $0.state == .running || $0.state == .created }
        if let filter = request.filter {
            if !filter.id.isEmpty { records = records.filter { $0.id.hasPrefix(filter.id) } }
            if !filter.podSandboxId.isEmpty { records = records.filter { $0.sandboxId.hasPrefix(filter.podSandboxId) } }
            if !filter.labelSelector.isEmpty {
                records = records.filter { r in filter.labelSelector.allSatisfy { r.labels[$0.key] == $0.value } }
            }
        }
        var response = ListContainerStatsResponse()
        for record in records.sorted(by: { $0.createdAt > $1.createdAt }) {
            response.stats.append(await stats(of: record))
        }
        return response
    }

    func stats(of record: SkiffRuntime.ContainerRecord) async -> ContainerStats {
        let now = unixNanos()
        var attributes = ContainerAttributes()
        attributes.id = record.id
        attributes.metadata = containerMetadata(record)
        attributes.labels = record.labels
        attributes.annotations = record.annotations
        var stats = ContainerStats()
        stats.attributes = attributes
        if record.state == .running, let cgroup = try? Cgroup(path: record.cgroup), let sample = try? cgroup.stats() {
            stats.cpu = cpuUsage(id: record.id, sample: sample, at: now)
            stats.memory = memoryUsage(cgroup: cgroup, sample: sample, at: now)
        }
        if let usage = await images.writableLayerUsage(containerID: record.id) {
            var fs = FilesystemUsage()
            fs.timestamp = now
            var id = FilesystemIdentifier()
            id.mountpoint = context.paths.containerStateDirectory(record.id) + "/bundle/rootfs"
            fs.fsId = id
            fs.usedBytes = Self.value(usage.bytes)
            fs.inodesUsed = Self.value(usage.inodes)
            stats.writableLayer = fs
        }
        return stats
    }

    /// Cumulative CPU time, and the cores in use since the previous sample of the same container or pod
    /// (containerd's usage_nano_cores: 0 on the first sample, then Δusage / Δtime).
    func cpuUsage(id: String, sample: CgroupStats, at now: Int64) -> CpuUsage {
        var cpu = CpuUsage()
        cpu.timestamp = now
        cpu.usageCoreNanoSeconds = Self.value(sample.cpuUsageNanoseconds)
        cpu.usageNanoCores = Self.value(Self.cpuSamples.nanoCores(id: id, usage: sample.cpuUsageNanoseconds, at: now))
        return cpu
    }

    /// Memory as the kubelet reads it: working set (usage minus inactive file cache), usage, RSS, page faults,
    /// and what is left under the limit (only when there is one).
    func memoryUsage(cgroup: Cgroup, sample: CgroupStats, at now: Int64) -> MemoryUsage {
        var memory = MemoryUsage()
        memory.timestamp = now
        memory.workingSetBytes = Self.value(sample.memoryWorkingSetBytes)
        memory.usageBytes = Self.value(sample.memoryUsageBytes)
        memory.rssBytes = Self.value(sample.memoryRSSBytes)
        if let limit = sample.memoryLimitBytes, limit > sample.memoryWorkingSetBytes {
            memory.availableBytes = Self.value(limit - sample.memoryWorkingSetBytes)
        }
        // v1 keeps the hierarchical counters under total_*; v2's memory.stat is hierarchical already.
        let faults = Self.keyedCounters(cgroup.read("memory.stat", controller: "memory"))
        let prefix = cgroup.version == .v1 ? "total_" : ""
        if let minor = faults[prefix + "pgfault"] { memory.pageFaults = Self.value(minor) }
        if let major = faults[prefix + "pgmajfault"] { memory.majorPageFaults = Self.value(major) }
        return memory
    }

    static func keyedCounters(_ text: String?) -> [Substring: UInt64] {
        var out: [Substring: UInt64] = [:]
        for line in (text ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let n = UInt64(parts[1]) { out[parts[0]] = n }
        }
        return out
    }

    static func value(_ v: UInt64) -> UInt64Value {
        var value = UInt64Value()
        value.value = v
        return value
    }

    /// The previous CPU sample of every container and pod whose stats were read.
    static let cpuSamples = CPUSamples()
}

/// Previous (usage, time) per container or pod id, for usage_nano_cores. Entries of removed ids are
/// dropped by `retain`, which the List calls run.
final class CPUSamples: Sendable {
    private let samples = Mutex<[String: (usage: UInt64, at: Int64)]>([:])

    /// Cores in use (in billionths) between the previous sample of `id` and this one, which replaces it.
    func nanoCores(id: String, usage: UInt64, at now: Int64) -> UInt64 {
        samples.withLock { s in
            let previous = s[id]
            s[id] = (usage, now)
            // First sample, a clock step back, or a counter that went backwards (a new cgroup): no rate yet.
            guard let previous, now > previous.at, usage >= previous.usage else { return 0 }
            return UInt64(Double(usage - previous.usage) / Double(now - previous.at) * 1e9)
        }
    }

    func retain(_ ids: Set<String>) {
        samples.withLock { s in s = s.filter { ids.contains($0.key) } }
    }
}
