import CRI

// The metrics ListMetricDescriptors announces and ListPodSandboxMetrics reports: cAdvisor's names, types,
// help texts and label keys (kubelet's /metrics/cadvisor), so that dashboards and alerts written for
// cAdvisor keep working when kubelet takes its container metrics from the runtime
// (PodAndContainerStatsFromCRI). Both RPCs read this one table; a sample can only be made from one of its
// definitions (MetricSample), so a descriptor and its values cannot disagree on name, type or labels.

/// Name, help text, type and label keys of one metric.
public struct MetricDefinition: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case counter, gauge
    }

    public let name: String
    public let help: String
    public let kind: Kind
    /// Keys after the base labels (MetricLabels), e.g. `interface` for network counters.
    public let extraLabelKeys: [String]

    init(_ name: String, _ kind: Kind, _ help: String, extra: [String] = []) {
        self.name = name
        self.help = help
        self.kind = kind
        self.extraLabelKeys = extra
    }

    /// Every label key, in the order of the label values of each sample.
    public var labelKeys: [String] { MetricLabels.keys + extraLabelKeys }

    public var descriptor: MetricDescriptor {
        var d = MetricDescriptor()
        d.name = name
        d.help = help
        d.labelKeys = labelKeys
        return d
    }

    public var criType: MetricType { kind == .counter ? .counter : .gauge }
}

/// The labels every metric carries, as kubelet's cAdvisor integration sets them:
/// - container: the container's name; "" for the pod's own series (its cgroup as a whole, its network),
///   which is how cAdvisor marks pod-level series (`container!=""` leaves them out of per-container sums);
/// - id: the cgroup (relative to the hierarchy root), cAdvisor's container id;
/// - image: the image the container was created from (as the client named it); "" at pod level;
/// - name: the container's id (cAdvisor's alias for containerd containers); the pod sandbox id at pod level;
/// - namespace, pod: the pod's metadata.
public struct MetricLabels: Sendable, Hashable {
    public static let keys = ["container", "id", "image", "name", "namespace", "pod"]

    public var container: String
    public var id: String
    public var image: String
    public var name: String
    public var namespace: String
    public var pod: String

    public init(container: String, id: String, image: String, name: String, namespace: String, pod: String) {
        self.container = container
        self.id = id
        self.image = image
        self.name = name
        self.namespace = namespace
        self.pod = pod
    }

    /// Values in the order of `keys`.
    public var values: [String] { [container, id, image, name, namespace, pod] }
}

/// One value of a metric, with the values of the definition's extra labels.
public struct MetricSample: Sendable, Hashable {
    public let definition: MetricDefinition
    public let extraLabelValues: [String]
    public let value: UInt64

    init(_ definition: MetricDefinition, _ value: UInt64, _ extraLabelValues: [String] = []) {
        self.definition = definition
        self.extraLabelValues = extraLabelValues
        self.value = value
    }

    /// The CRI form. `timestamp` is when the value was read (Unix nanoseconds), as containerd and CRI-O set it.
    public func metric(labels: MetricLabels, timestamp: Int64) -> Metric {
        var m = Metric()
        m.name = definition.name
        m.timestamp = timestamp
        m.metricType = definition.criType
        m.labelValues = labels.values + extraLabelValues
        var v = UInt64Value()
        v.value = value
        m.value = v
        return m
    }
}

/// Every metric Skiff describes. Values in seconds are whole seconds (the CRI carries integers only); bytes
/// are bytes. Which file each one comes from on cgroup v1 and v2 is in docs/metrics.md.
public enum MetricCatalog {
    typealias D = MetricDefinition

    // CPU
    static let cpuCfsPeriods = D("container_cpu_cfs_periods_total", .counter, "Number of elapsed enforcement period intervals.")
    static let cpuCfsThrottledPeriods = D("container_cpu_cfs_throttled_periods_total", .counter, "Number of throttled period intervals.")
    static let cpuCfsThrottledSeconds = D("container_cpu_cfs_throttled_seconds_total", .counter, "Total time duration the container has been throttled.")
    static let cpuSystemSeconds = D("container_cpu_system_seconds_total", .counter, "Cumulative system cpu time consumed in seconds.")
    static let cpuUsageSeconds = D("container_cpu_usage_seconds_total", .counter, "Cumulative cpu time consumed in seconds.", extra: ["cpu"])
    static let cpuUserSeconds = D("container_cpu_user_seconds_total", .counter, "Cumulative user cpu time consumed in seconds.")

    // Processes
    static let fileDescriptors = D("container_file_descriptors", .gauge, "Number of open file descriptors for the container.")
    static let processes = D("container_processes", .gauge, "Number of processes running inside the container.")
    static let sockets = D("container_sockets", .gauge, "Number of open sockets for the container.")
    static let threads = D("container_threads", .gauge, "Number of threads running inside the container")
    static let threadsMax = D("container_threads_max", .gauge, "Maximum number of threads allowed inside the container, infinity if value is zero")
    static let ulimitsSoft = D("container_ulimits_soft", .gauge,
                               "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice", extra: ["ulimit"])

    // Filesystem (the container's writable layer) and block I/O
    static let blkioDeviceUsage = D("container_blkio_device_usage_total", .counter, "Blkio Device bytes usage",
                                    extra: ["device", "major", "minor", "operation"])
    static let fsInodesFree = D("container_fs_inodes_free", .gauge, "Number of available Inodes", extra: ["device"])
    static let fsInodesTotal = D("container_fs_inodes_total", .gauge, "Number of Inodes", extra: ["device"])
    static let fsLimitBytes = D("container_fs_limit_bytes", .gauge,
                                "Number of bytes that can be consumed by the container on this filesystem.", extra: ["device"])
    static let fsReadsBytes = D("container_fs_reads_bytes_total", .counter, "Cumulative count of bytes read", extra: ["device"])
    static let fsReads = D("container_fs_reads_total", .counter, "Cumulative count of reads completed", extra: ["device"])
    static let fsUsageBytes = D("container_fs_usage_bytes", .gauge,
                                "Number of bytes that are consumed by the container on this filesystem.", extra: ["device"])
    static let fsWritesBytes = D("container_fs_writes_bytes_total", .counter, "Cumulative count of bytes written", extra: ["device"])
    static let fsWrites = D("container_fs_writes_total", .counter, "Cumulative count of writes completed", extra: ["device"])

    // Huge pages
    static let hugetlbMaxUsage = D("container_hugetlb_max_usage_bytes", .gauge, "Maximum hugepage usage recorded in bytes", extra: ["pagesize"])
    static let hugetlbUsage = D("container_hugetlb_usage_bytes", .gauge, "Current hugepage usage in bytes", extra: ["pagesize"])

    // Memory
    static let memoryCache = D("container_memory_cache", .gauge, "Number of bytes of page cache memory.")
    static let memoryFailcnt = D("container_memory_failcnt", .counter, "Number of memory usage hits limits")
    static let memoryFailures = D("container_memory_failures_total", .counter, "Cumulative count of memory allocation failures.",
                                  extra: ["failure_type", "scope"])
    static let memoryKernelUsage = D("container_memory_kernel_usage", .gauge, "Size of kernel memory allocated in bytes.")
    static let memoryMappedFile = D("container_memory_mapped_file", .gauge, "Size of memory mapped files in bytes.")
    static let memoryMaxUsage = D("container_memory_max_usage_bytes", .gauge, "Maximum memory usage recorded in bytes")
    static let memoryRSS = D("container_memory_rss", .gauge, "Size of RSS in bytes.")
    static let memorySwap = D("container_memory_swap", .gauge, "Container swap usage in bytes.")
    static let memoryActiveFile = D("container_memory_total_active_file_bytes", .gauge, "Current total active file in bytes.")
    static let memoryInactiveFile = D("container_memory_total_inactive_file_bytes", .gauge, "Current total inactive file in bytes.")
    static let memoryUsage = D("container_memory_usage_bytes", .gauge,
                               "Current memory usage in bytes, including all memory regardless of when it was accessed")
    static let memoryWorkingSet = D("container_memory_working_set_bytes", .gauge, "Current working set in bytes.")
    static let oomEvents = D("container_oom_events_total", .counter, "Count of out of memory events observed for the container")

    // Network (the pod's namespace)
    static let networkReceiveBytes = D("container_network_receive_bytes_total", .counter, "Cumulative count of bytes received", extra: ["interface"])
    static let networkReceiveErrors = D("container_network_receive_errors_total", .counter,
                                        "Cumulative count of errors encountered while receiving", extra: ["interface"])
    static let networkReceiveDropped = D("container_network_receive_packets_dropped_total", .counter,
                                         "Cumulative count of packets dropped while receiving", extra: ["interface"])
    static let networkReceivePackets = D("container_network_receive_packets_total", .counter, "Cumulative count of packets received",
                                         extra: ["interface"])
    static let networkTransmitBytes = D("container_network_transmit_bytes_total", .counter, "Cumulative count of bytes transmitted",
                                        extra: ["interface"])
    static let networkTransmitErrors = D("container_network_transmit_errors_total", .counter,
                                         "Cumulative count of errors encountered while transmitting", extra: ["interface"])
    static let networkTransmitDropped = D("container_network_transmit_packets_dropped_total", .counter,
                                          "Cumulative count of packets dropped while transmitting", extra: ["interface"])
    static let networkTransmitPackets = D("container_network_transmit_packets_total", .counter, "Cumulative count of packets transmitted",
                                          extra: ["interface"])

    // Pressure stall information (cgroup v2 with PSI)
    static let pressureCPUStalled = D("container_pressure_cpu_stalled_seconds_total", .counter,
                                      "Total time duration no tasks in the container could make progress due to CPU congestion.")
    static let pressureCPUWaiting = D("container_pressure_cpu_waiting_seconds_total", .counter,
                                      "Total time duration tasks in the container have waited due to CPU congestion.")
    static let pressureIOStalled = D("container_pressure_io_stalled_seconds_total", .counter,
                                     "Total time duration no tasks in the container could make progress due to IO congestion.")
    static let pressureIOWaiting = D("container_pressure_io_waiting_seconds_total", .counter,
                                     "Total time duration tasks in the container have waited due to IO congestion.")
    static let pressureMemoryStalled = D("container_pressure_memory_stalled_seconds_total", .counter,
                                         "Total time duration no tasks in the container could make progress due to memory congestion.")
    static let pressureMemoryWaiting = D("container_pressure_memory_waiting_seconds_total", .counter,
                                         "Total time duration tasks in the container have waited due to memory congestion.")

    // The container's configuration
    static let specCPUPeriod = D("container_spec_cpu_period", .gauge, "CPU period of the container.")
    static let specCPUQuota = D("container_spec_cpu_quota", .gauge, "CPU quota of the container.")
    static let specCPUShares = D("container_spec_cpu_shares", .gauge, "CPU share of the container.")
    static let specMemoryLimit = D("container_spec_memory_limit_bytes", .gauge, "Memory limit for the container.")
    static let specMemoryReservation = D("container_spec_memory_reservation_limit_bytes", .gauge, "Memory reservation limit for the container.")
    static let specMemorySwapLimit = D("container_spec_memory_swap_limit_bytes", .gauge, "Memory swap limit for the container.")

    // Times
    static let lastSeen = D("container_last_seen", .gauge, "Last time a container was seen by the exporter")
    static let startTime = D("container_start_time_seconds", .gauge, "Start time of the container since unix epoch in seconds.")

    /// Every definition, by name.
    public static let all: [MetricDefinition] = [
        blkioDeviceUsage,
        cpuCfsPeriods, cpuCfsThrottledPeriods, cpuCfsThrottledSeconds, cpuSystemSeconds, cpuUsageSeconds, cpuUserSeconds,
        fileDescriptors,
        fsInodesFree, fsInodesTotal, fsLimitBytes, fsReadsBytes, fsReads, fsUsageBytes, fsWritesBytes, fsWrites,
        hugetlbMaxUsage, hugetlbUsage,
        lastSeen,
        memoryCache, memoryFailcnt, memoryFailures, memoryKernelUsage, memoryMappedFile, memoryMaxUsage, memoryRSS, memorySwap,
        memoryActiveFile, memoryInactiveFile, memoryUsage, memoryWorkingSet,
        networkReceiveBytes, networkReceiveErrors, networkReceiveDropped, networkReceivePackets,
        networkTransmitBytes, networkTransmitErrors, networkTransmitDropped, networkTransmitPackets,
        oomEvents,
        pressureCPUStalled, pressureCPUWaiting, pressureIOStalled, pressureIOWaiting, pressureMemoryStalled, pressureMemoryWaiting,
        processes, sockets,
        specCPUPeriod, specCPUQuota, specCPUShares, specMemoryLimit, specMemoryReservation, specMemorySwapLimit,
        startTime, threads, threadsMax, ulimitsSoft,
    ].sorted { $0.name < $1.name }

    /// What ListMetricDescriptors answers.
    public static var descriptors: [MetricDescriptor] { all.map(\.descriptor) }
}
