import CRI
import SkiffRuntime
import SkiffSupport

/// ListPodSandboxMetrics: cAdvisor-style metrics of every ready pod and of its running containers (pods
/// that are not ready, and containers that are not running, are left out, as containerd does). Pod-level
/// metrics describe the pod's cgroup as a whole and its network, with an empty `container` label, as
/// cAdvisor's pod series; each container's come from its own cgroup, processes, resources and writable
/// layer. Values are read at the call; each metric carries the time it was read (Unix ns).
extension CRIServer {
    func listPodSandboxMetrics(_ request: ListPodSandboxMetricsRequest) async -> ListPodSandboxMetricsResponse {
        // One pass over the containers for all pods.
        var containersBySandbox: [String: [SkiffRuntime.ContainerRecord]] = [:]
        for container in context.containers.all() { containersBySandbox[container.sandboxId, default: []].append(container) }
        var response = ListPodSandboxMetricsResponse()
        for record in context.sandboxes.all().sorted(by: { $0.createdAt > $1.createdAt }) where sandboxState(record) == .sandboxReady {
            let containers = (containersBySandbox[record.id] ?? []).sorted { $0.createdAt < $1.createdAt }
            response.podMetrics.append(await podMetrics(of: record, containers: containers))
        }
        return response
    }

    private func podMetrics(of record: SandboxRecord, containers: [SkiffRuntime.ContainerRecord]) async -> PodSandboxMetrics {
        var metrics = PodSandboxMetrics()
        metrics.podSandboxId = record.id
        let now = unixNanos()
        let podLabels = MetricLabels(container: "", id: Self.cgroupID(record.podCgroup), image: "", name: record.id,
                                     namespace: record.namespace, pod: record.name)
        metrics.metrics = PodMetrics.pod(cgroup: record.podCgroup, infraPid: record.infraPid, hostNetwork: record.hostNetwork,
                                         createdAt: record.createdAt, now: now)
            .map { $0.metric(labels: podLabels, timestamp: now) }
        for container in containers {
            guard let fresh = context.refresh(container.id), fresh.state == .running else { continue }
            metrics.containerMetrics.append(await containerMetrics(of: fresh, in: record))
        }
        return metrics
    }

    private func containerMetrics(of record: SkiffRuntime.ContainerRecord, in sandbox: SandboxRecord) async -> ContainerMetrics {
        var layer: WritableLayer?
        if let mount = await images.rootfsMount(containerID: record.id), let usage = await images.writableLayerUsage(containerID: record.id) {
            layer = WritableLayer(directory: mount.upperDir, usedBytes: usage.bytes)
        }
        let now = unixNanos()
        // The first process, only while it is the one started (a reused pid is someone else's).
        let pid = ProcFS.isAlive(record.initPid, startTime: record.initStartTime) ? record.initPid : 0
        let labels = MetricLabels(container: record.name, id: Self.cgroupID(record.cgroup), image: record.image, name: record.id,
                                  namespace: sandbox.namespace, pod: sandbox.name)
        var metrics = ContainerMetrics()
        metrics.containerId = record.id
        metrics.metrics = PodMetrics.container(
            cgroup: record.cgroup, initPid: pid, startedAt: record.startedAt,
            resources: try? LinuxContainerResources(serializedBytes: Array(record.resources)), writableLayer: layer, now: now)
            .map { $0.metric(labels: labels, timestamp: now) }
        return metrics
    }

    /// cAdvisor's id of a container: its cgroup, from the hierarchy root.
    static func cgroupID(_ path: String) -> String { path.hasPrefix("/") ? path : "/" + path }
}
