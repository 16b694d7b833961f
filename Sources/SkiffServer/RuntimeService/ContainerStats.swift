import CRI
import SkiffLauncher
import SkiffRuntime
import SkiffSupport

/// ContainerStats and ListContainerStats: CPU time and memory working set from the container's cgroup, and
/// the size of its writable layer.
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
        var records = context.containers.all().filter { $0.state == .running || $0.state == .created }
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
            var cpu = CpuUsage()
            cpu.timestamp = now
            cpu.usageCoreNanoSeconds = Self.value(sample.cpuUsageNanoseconds)
            stats.cpu = cpu
            var memory = MemoryUsage()
            memory.timestamp = now
            memory.workingSetBytes = Self.value(sample.memoryWorkingSetBytes)
            memory.usageBytes = Self.value(sample.memoryUsageBytes)
            memory.rssBytes = Self.value(sample.memoryRSSBytes)
            if let limit = sample.memoryLimitBytes, limit > sample.memoryWorkingSetBytes {
                memory.availableBytes = Self.value(limit - sample.memoryWorkingSetBytes)
            }
            stats.memory = memory
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

    static func value(_ v: UInt64) -> UInt64Value {
        var value = UInt64Value()
        value.value = v
        return value
    }
}
