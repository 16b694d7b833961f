import CRI
import SkiffSupport
#if canImport(Glibc)
import Glibc
#endif

/// What ListPodSandboxMetrics reports for one ready pod and for each of its running containers, as plain
/// samples (the handler adds the labels and the timestamp). Reading is best effort: what a cgroup or
/// process that vanished mid-read cannot give is left out, the rest is still reported.
public enum PodMetrics {
    /// The pod as a whole: its cgroup (infra and containers together), its processes, its network
    /// interfaces (none on the host's network: those are the node's), and its start.
    public static func pod(cgroup: String, infraPid: Int32, hostNetwork: Bool, createdAt: Int64, now: Int64) -> [MetricSample] {
        var out = cgroupAndProcesses(cgroup)
        if !hostNetwork, let interfaces = NetDev.read(pid: infraPid) { out += NetDev.samples(interfaces) }
        out += times(started: createdAt, now: now)
        return out
    }

    /// One running container: its cgroup and processes, the soft open-files limit of its first process, the
    /// resources it was given (CRI values, updated by UpdateContainerResources), its writable layer, its start.
    public static func container(
        cgroup: String, initPid: Int32, startedAt: Int64, resources: LinuxContainerResources?,
        writableLayer: WritableLayer?, now: Int64
    ) -> [MetricSample] {
        var out = cgroupAndProcesses(cgroup)
        out += ProcessMetrics.ulimits(pid: initPid)
        if let resources { out += spec(resources) }
        if let writableLayer { out += writableLayer.samples() }
        out += times(started: startedAt, now: now)
        return out
    }

    static func cgroupAndProcesses(_ path: String) -> [MetricSample] {
        guard let (cgroup, samples) = CgroupMetrics.read(path: path) else { return [] }
        // Threads come from pids.current where the pids controller counts them.
        let countThreads = !samples.contains { $0.definition == MetricCatalog.threads }
        return samples + ProcessMetrics.samples(pids: cgroup.processes(), countThreads: countThreads)
    }

    static func times(started: Int64, now: Int64) -> [MetricSample] {
        [
            MetricSample(MetricCatalog.startTime, UInt64(max(0, started)) / 1_000_000_000),
            MetricSample(MetricCatalog.lastSeen, UInt64(max(0, now)) / 1_000_000_000),
        ]
    }

    // MARK: Spec

    /// The container's resources as the CRI gave them, with cAdvisor's conventions: memory limits of 0
    /// mean unlimited (so do values above 2^62, which the kernel rounds "unlimited" to); quota, period and
    /// shares appear only when set. The swap limit is memory+swap, as in the CRI (and cgroup v1's memsw).
    /// The reservation is the `memory.min` the CRI's unified map may carry (0 without one).
    static func spec(_ r: LinuxContainerResources) -> [MetricSample] {
        func memory(_ v: Int64) -> UInt64 { v <= 0 || v > (1 << 62) ? 0 : UInt64(v) }
        var out: [MetricSample] = []
        if r.cpuPeriod > 0 { out.append(MetricSample(MetricCatalog.specCPUPeriod, UInt64(r.cpuPeriod))) }
        if r.cpuQuota > 0 { out.append(MetricSample(MetricCatalog.specCPUQuota, UInt64(r.cpuQuota))) }
        if r.cpuShares > 0 { out.append(MetricSample(MetricCatalog.specCPUShares, UInt64(r.cpuShares))) }
        out.append(MetricSample(MetricCatalog.specMemoryLimit, memory(r.memoryLimitInBytes)))
        out.append(MetricSample(MetricCatalog.specMemorySwapLimit, memory(r.memorySwapLimitInBytes)))
        let reservation = r.unified["memory.min"].flatMap { Int64($0) } ?? 0
        out.append(MetricSample(MetricCatalog.specMemoryReservation, memory(reservation)))
        return out
    }
}

/// A container's writable layer: the directory its writes land in and the bytes they take.
public struct WritableLayer: Sendable {
    public var directory: String
    public var usedBytes: UInt64

    public init(directory: String, usedBytes: UInt64) {
        self.directory = directory
        self.usedBytes = usedBytes
    }

    /// Usage is the layer's own bytes; limit and inodes are those of the file system holding it (statvfs),
    /// under the name of its device, as cAdvisor reports a container's root file system.
    func samples() -> [MetricSample] {
        var fs = statvfs()
        var st = stat()
        guard statvfs(directory, &fs) == 0, stat(directory, &st) == 0 else { return [] }
        let device = [DeviceNames.name(major: Self.major(st.st_dev), minor: Self.minor(st.st_dev))]
        let blockSize = UInt64(max(0, fs.f_frsize > 0 ? fs.f_frsize : fs.f_bsize))
        return [
            MetricSample(MetricCatalog.fsUsageBytes, usedBytes, device),
            MetricSample(MetricCatalog.fsLimitBytes, UInt64(fs.f_blocks) &* blockSize, device),
            MetricSample(MetricCatalog.fsInodesTotal, UInt64(fs.f_files), device),
            MetricSample(MetricCatalog.fsInodesFree, UInt64(fs.f_ffree), device),
        ]
    }

    // glibc's major()/minor() are macros Swift does not import.
    static func major(_ dev: dev_t) -> UInt32 { UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)) }
    static func minor(_ dev: dev_t) -> UInt32 { UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~0xff)) }
}
