import CRI
import Foundation
import SkiffLauncher
import SkiffRuntime
import SkiffSupport

/// PodSandboxStats reports a ready pod's resource usage: CPU and memory of the pod cgroup (the infra and
/// every container), the pod's network interfaces, its process count, and the ContainerStats of each of its
/// running containers. Unknown id → NOT_FOUND. A pod that is not ready → UNAVAILABLE, as under containerd
/// (its cgroup and network namespace are gone; ListPodSandboxStats leaves such pods out).
extension CRIServer {
    func podSandboxStats(_ request: PodSandboxStatsRequest) async throws -> PodSandboxStatsResponse {
        guard !request.podSandboxId.isEmpty else { throw SkiffError.invalidArgument("PodSandboxStats: pod_sandbox_id is required") }
        guard let record = try context.sandboxes.resolve(request.podSandboxId) else {
            throw SkiffError.notFound("pod sandbox \"\(request.podSandboxId)\" not found")
        }
        guard sandboxState(record) == .sandboxReady else {
            throw SkiffError(.unavailable, "pod sandbox \(record.id) is not ready: a stopped pod has no stats")
        }
        var response = PodSandboxStatsResponse()
        response.stats = await podStats(of: record)
        return response
    }

    func podStats(of record: SandboxRecord) async -> PodSandboxStats {
        let now = unixNanos()
        var attributes = PodSandboxAttributes()
        attributes.id = record.id
        attributes.metadata = sandboxMetadata(record)
        attributes.labels = record.labels
        attributes.annotations = record.annotations
        var linux = LinuxPodSandboxStats()
        // A pod cgroup that cannot be read (removed behind skiffd's back) leaves cpu, memory and process out
        // rather than failing the whole answer.
        if let cgroup = try? Cgroup(path: record.podCgroup), let sample = try? cgroup.stats() {
            linux.cpu = cpuUsage(id: record.id, sample: sample, at: now)
            linux.memory = memoryUsage(cgroup: cgroup, sample: sample, at: now)
            var process = ProcessUsage()
            process.timestamp = now
            process.processCount = Self.value(UInt64(cgroup.processes().count))
            linux.process = process
        }
        if !record.hostNetwork, let interfaces = NetDev.read(pid: record.infraPid) {
            linux.network = Self.networkUsage(interfaces, at: now)
        }
        for container in context.containers.inSandbox(record.id).sorted(by: { $0.createdAt < $1.createdAt }) {
            guard let fresh = context.refresh(container.id), fresh.state == .running else { continue }
            linux.containers.append(await stats(of: fresh))
        }
        var stats = PodSandboxStats()
        stats.attributes = attributes
        stats.linux = linux
        return stats
    }

    /// eth0 (the interface CNI gives a pod) is the default interface, as in containerd and the kubelet;
    /// the others are listed beside it. Loopback is left out, as cAdvisor does: it is not pod traffic.
    /// nil when the pod has nothing but lo (no CNI network).
    static func networkUsage(_ interfaces: [NetDev.Interface], at now: Int64) -> NetworkUsage? {
        var usage = NetworkUsage()
        usage.timestamp = now
        for interface in interfaces where interface.name != "lo" {
            var i = NetworkInterfaceUsage()
            i.name = interface.name
            i.rxBytes = value(interface.rxBytes)
            i.rxErrors = value(interface.rxErrors)
            i.txBytes = value(interface.txBytes)
            i.txErrors = value(interface.txErrors)
            if interface.name == "eth0" { usage.defaultInterface = i } else { usage.interfaces.append(i) }
        }
        return usage.defaultInterface == nil && usage.interfaces.isEmpty ? nil : usage
    }
}
