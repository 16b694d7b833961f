import CRI
import Foundation
import Glibc
import SkiffLauncher
import Testing

@testable import SkiffRuntime

/// The metrics table and the readers behind ListMetricDescriptors / ListPodSandboxMetrics, from fixture
/// text of cgroup v1 and v2 files (no daemon, no cgroups).
@Suite struct MetricsCatalogTests {
    /// What the newest CRI conformance suite (cri-tools pkg/validate/pod.go) expects a runtime to describe:
    /// Tests/Fixtures/cri-conformance-metric-names.txt, shared with the integration tests.
    static let conformanceNames: [String] = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<2 { url.deleteLastPathComponent() }
        let path = url.appendingPathComponent("Fixtures/cri-conformance-metric-names.txt").path
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }()

    static let labels = MetricLabels(container: "app", id: "/skiff/pod/ctr", image: "busybox", name: "ctr", namespace: "ns", pod: "pod")

    /// Every sample turns into a CRI metric whose label values match its descriptor's keys one to one.
    static func checkLabels(_ samples: [MetricSample], sourceLocation: SourceLocation = #_sourceLocation) {
        let described = Dictionary(uniqueKeysWithValues: MetricCatalog.descriptors.map { ($0.name, $0) })
        for sample in samples {
            let metric = sample.metric(labels: labels, timestamp: 1)
            let descriptor = described[metric.name]
            #expect(descriptor != nil, "\(metric.name) is not described", sourceLocation: sourceLocation)
            #expect(metric.labelValues.count == descriptor?.labelKeys.count, "\(metric.name): \(metric.labelValues)", sourceLocation: sourceLocation)
            #expect(metric.metricType == sample.definition.criType)
        }
    }

    static func value(_ samples: [MetricSample], _ name: String, _ extra: [String] = []) -> UInt64? {
        samples.first { $0.definition.name == name && $0.extraLabelValues == extra }?.value
    }

    // MARK: - Catalog

    @Test func descriptorsCoverTheConformanceListWithHelpAndLabels() {
        let descriptors = MetricCatalog.descriptors
        let names = descriptors.map(\.name)
        #expect(Self.conformanceNames.count == 56, "the fixture was not read whole")
        #expect(Set(Self.conformanceNames).subtracting(names).isEmpty, "missing: \(Set(Self.conformanceNames).subtracting(names))")
        #expect(Set(names).count == names.count, "names are unique")
        #expect(names == names.sorted())
        for d in descriptors {
            #expect(!d.help.isEmpty, "\(d.name)")
            #expect(Array(d.labelKeys.prefix(6)) == ["container", "id", "image", "name", "namespace", "pod"], "\(d.name)")
            #expect(Set(d.labelKeys).count == d.labelKeys.count, "\(d.name): \(d.labelKeys)")
            #expect(d.name.hasPrefix("container_"))
        }
        // cAdvisor's extra labels and types.
        let byName = Dictionary(uniqueKeysWithValues: MetricCatalog.all.map { ($0.name, $0) })
        #expect(byName["container_cpu_usage_seconds_total"]?.extraLabelKeys == ["cpu"])
        #expect(byName["container_memory_failures_total"]?.extraLabelKeys == ["failure_type", "scope"])
        #expect(byName["container_network_receive_bytes_total"]?.extraLabelKeys == ["interface"])
        #expect(byName["container_fs_usage_bytes"]?.extraLabelKeys == ["device"])
        #expect(byName["container_blkio_device_usage_total"]?.extraLabelKeys == ["device", "major", "minor", "operation"])
        #expect(byName["container_hugetlb_usage_bytes"]?.extraLabelKeys == ["pagesize"])
        #expect(byName["container_ulimits_soft"]?.extraLabelKeys == ["ulimit"])
        // Counters end in _total, but for cAdvisor's two exceptions.
        let exceptions = ["container_memory_failcnt", "container_fs_inodes_total"]
        for d in MetricCatalog.all where !exceptions.contains(d.name) {
            #expect((d.kind == .counter) == d.name.hasSuffix("_total"), "\(d.name)")
        }
        #expect(byName["container_memory_failcnt"]?.kind == .counter)
        #expect(byName["container_fs_inodes_total"]?.kind == .gauge)
    }

    @Test func aSampleBecomesACRIMetric() {
        let metric = MetricSample(MetricCatalog.networkReceiveBytes, 42, ["eth0"]).metric(labels: Self.labels, timestamp: 123)
        #expect(metric.name == "container_network_receive_bytes_total")
        #expect(metric.timestamp == 123)
        #expect(metric.metricType == .counter)
        #expect(metric.labelValues == ["app", "/skiff/pod/ctr", "busybox", "ctr", "ns", "pod", "eth0"])
        #expect(metric.value?.value == 42)
        #expect(MetricSample(MetricCatalog.memoryUsage, 1).metric(labels: Self.labels, timestamp: 0).metricType == .gauge)
    }

    // MARK: - cgroup v1

    static let v1Files: [String: String] = [
        "cpuacct/cpuacct.usage": "5500000000\n",
        "cpu/cpu.stat": "nr_periods 40\nnr_throttled 7\nthrottled_time 3200000000\nnr_bursts 0\nburst_time 0\n",
        "cpu/cpu.cfs_quota_us": "20000\n",
        "memory/memory.usage_in_bytes": "73400320\n",
        "memory/memory.max_usage_in_bytes": "80000000\n",
        "memory/memory.kmem.usage_in_bytes": "1200000\n",
        "memory/memory.stat": """
            cache 100
            rss 200
            mapped_file 5
            swap 0
            pgfault 11
            pgmajfault 1
            total_cache 4096000
            total_rss 52428800
            total_mapped_file 65536
            total_swap 8192
            total_pgfault 1234
            total_pgmajfault 3
            total_inactive_file 2048000
            total_active_file 1024000

            """,
        "pids/pids.current": "4\n",
        "blkio/blkio.bfq.io_service_bytes_recursive": "Total 0\n",
        "blkio/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
        "blkio/blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
        "hugetlb/hugetlb.2MB.usage_in_bytes": "2097152\n",
        "hugetlb/hugetlb.2MB.max_usage_in_bytes": "4194304\n",
    ]

    static func v1Stats() -> CgroupStats {
        var s = CgroupStats()
        s.cpuUsageNanoseconds = 5_500_000_000
        s.cpuUserNanoseconds = 3_000_000_000
        s.cpuSystemNanoseconds = 2_400_000_000
        s.memoryUsageBytes = 73_400_320
        s.memoryWorkingSetBytes = 73_400_320 - 2_048_000
        s.memoryRSSBytes = 52_428_800
        s.memoryFailCount = 9
        s.oomKillCount = 2
        s.pidsCurrent = 4
        s.pidsLimit = nil
        return s
    }

    @Test func cgroupV1FilesBecomeCAdvisorMetrics() {
        let samples = CgroupMetrics.samples(
            version: .v1, stats: Self.v1Stats(), hugePageSizes: ["2MB", "1GB"], devices: { "/dev/disk\($0)-\($1)" },
            read: { Self.v1Files[$0 + "/" + $1] })
        Self.checkLabels(samples)
        let v = { (name: String, extra: [String]) in Self.value(samples, name, extra) }
        #expect(v("container_cpu_usage_seconds_total", ["total"]) == 5)
        #expect(v("container_cpu_user_seconds_total", []) == 3)
        #expect(v("container_cpu_system_seconds_total", []) == 2)
        #expect(v("container_cpu_cfs_periods_total", []) == 40)
        #expect(v("container_cpu_cfs_throttled_periods_total", []) == 7)
        #expect(v("container_cpu_cfs_throttled_seconds_total", []) == 3)
        #expect(v("container_memory_usage_bytes", []) == 73_400_320)
        #expect(v("container_memory_max_usage_bytes", []) == 80_000_000)
        #expect(v("container_memory_working_set_bytes", []) == 73_400_320 - 2_048_000)
        #expect(v("container_memory_rss", []) == 52_428_800)
        #expect(v("container_memory_cache", []) == 4_096_000)
        #expect(v("container_memory_mapped_file", []) == 65_536)
        #expect(v("container_memory_swap", []) == 8192)
        #expect(v("container_memory_kernel_usage", []) == 1_200_000)
        #expect(v("container_memory_total_active_file_bytes", []) == 1_024_000)
        #expect(v("container_memory_total_inactive_file_bytes", []) == 2_048_000)
        #expect(v("container_memory_failcnt", []) == 9)
        #expect(v("container_oom_events_total", []) == 2)
        #expect(v("container_memory_failures_total", ["pgfault", "container"]) == 11)
        #expect(v("container_memory_failures_total", ["pgfault", "hierarchy"]) == 1234)
        #expect(v("container_memory_failures_total", ["pgmajfault", "container"]) == 1)
        #expect(v("container_memory_failures_total", ["pgmajfault", "hierarchy"]) == 3)
        #expect(v("container_threads", []) == 4)
        #expect(v("container_threads_max", []) == 0, "no pids limit: 0 (infinity)")
        // bfq accounted nothing: the throttle policy's counters are used.
        #expect(v("container_blkio_device_usage_total", ["/dev/disk8-0", "8", "0", "Read"]) == 4096)
        #expect(v("container_blkio_device_usage_total", ["/dev/disk8-0", "8", "0", "Async"]) == 12288)
        #expect(v("container_fs_reads_bytes_total", ["/dev/disk8-0"]) == 4096)
        #expect(v("container_fs_writes_bytes_total", ["/dev/disk8-0"]) == 8192)
        #expect(v("container_fs_reads_total", ["/dev/disk8-0"]) == 1)
        #expect(v("container_fs_writes_total", ["/dev/disk8-0"]) == 2)
        #expect(v("container_hugetlb_usage_bytes", ["2MB"]) == 2_097_152)
        #expect(v("container_hugetlb_max_usage_bytes", ["2MB"]) == 4_194_304)
        #expect(v("container_hugetlb_usage_bytes", ["1GB"]) == nil, "no file, no value")
        // No PSI files in v1 groups here.
        #expect(!samples.contains { $0.definition.name.hasPrefix("container_pressure_") })
    }

    @Test func throttlingIsReportedOnlyUnderAQuota() {
        for (version, files, quotaFile, unlimited) in [
            (CgroupVersion.v1, Self.v1Files, "cpu/cpu.cfs_quota_us", "-1\n"), (.v2, Self.v2Files, "cpu/cpu.max", "max 100000\n"),
        ] {
            var noQuota = files
            noQuota[quotaFile] = unlimited
            let samples = CgroupMetrics.samples(version: version, stats: CgroupStats(), hugePageSizes: [], devices: { "\($0):\($1)" },
                                                read: { noQuota[$0 + "/" + $1] })
            #expect(!samples.contains { $0.definition.name.hasPrefix("container_cpu_cfs_") }, "\(version)")
            #expect(samples.contains { $0.definition.name == "container_cpu_usage_seconds_total" })
        }
    }

    @Test func missingControllersGiveNoValues() {
        // Only cpuacct: no memory, pids, blkio or hugetlb files.
        let samples = CgroupMetrics.samples(
            version: .v1, stats: CgroupStats(), hugePageSizes: ["2MB"], devices: { "\($0):\($1)" },
            read: { $0 == "cpuacct" && $1 == "cpuacct.usage" ? "0\n" : nil })
        #expect(Set(samples.map(\.definition.name)) == [
            "container_cpu_usage_seconds_total", "container_cpu_user_seconds_total", "container_cpu_system_seconds_total",
        ])
    }

    // MARK: - cgroup v2

    static let v2Files: [String: String] = [
        "cpu/cpu.stat": "usage_usec 7200000\nuser_usec 5100000\nsystem_usec 2100000\nnr_periods 50\nnr_throttled 9\nthrottled_usec 1500000\n",
        "cpu/cpu.max": "20000 100000\n",
        "memory/memory.current": "67108864\n",
        "memory/memory.peak": "70000000\n",
        "memory/memory.swap.current": "4096\n",
        "memory/memory.stat": """
            anon 41943040
            file 20971520
            kernel 3145728
            kernel_stack 16384
            file_mapped 1048576
            inactive_file 10485760
            active_file 5242880
            pgfault 999
            pgmajfault 4

            """,
        "pids/pids.current": "6\n",
        "cpu/cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=4500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\n",
        "memory/memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=100\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=50\n",
        "io/io.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n",
        "io/io.stat": "254:0 rbytes=1000 wbytes=2000 rios=3 wios=4 dbytes=0 dios=0\n",
        "hugetlb/hugetlb.2MB.current": "0\n",
    ]

    @Test func cgroupV2FilesBecomeCAdvisorMetrics() {
        var stats = CgroupStats()
        stats.cpuUsageNanoseconds = 7_200_000_000
        stats.cpuUserNanoseconds = 5_100_000_000
        stats.cpuSystemNanoseconds = 2_100_000_000
        stats.memoryUsageBytes = 67_108_864
        stats.memoryWorkingSetBytes = 67_108_864 - 10_485_760
        stats.memoryRSSBytes = 41_943_040
        stats.memoryFailCount = 5
        stats.oomKillCount = 1
        stats.pidsCurrent = 6
        stats.pidsLimit = 100
        let samples = CgroupMetrics.samples(
            version: .v2, stats: stats, hugePageSizes: ["2MB"], devices: { "\($0):\($1)" }, read: { Self.v2Files[$0 + "/" + $1] })
        Self.checkLabels(samples)
        let v = { (name: String, extra: [String]) in Self.value(samples, name, extra) }
        #expect(v("container_cpu_usage_seconds_total", ["total"]) == 7)
        #expect(v("container_cpu_user_seconds_total", []) == 5)
        #expect(v("container_cpu_cfs_periods_total", []) == 50)
        #expect(v("container_cpu_cfs_throttled_periods_total", []) == 9)
        #expect(v("container_cpu_cfs_throttled_seconds_total", []) == 1)
        #expect(v("container_memory_max_usage_bytes", []) == 70_000_000)
        #expect(v("container_memory_cache", []) == 20_971_520)
        #expect(v("container_memory_mapped_file", []) == 1_048_576)
        #expect(v("container_memory_swap", []) == 4096)
        #expect(v("container_memory_kernel_usage", []) == 3_145_728)
        #expect(v("container_memory_total_inactive_file_bytes", []) == 10_485_760)
        #expect(v("container_memory_failcnt", []) == 5)
        #expect(v("container_oom_events_total", []) == 1)
        #expect(v("container_memory_failures_total", ["pgfault", "container"]) == 999)
        #expect(v("container_memory_failures_total", ["pgfault", "hierarchy"]) == 999)
        #expect(v("container_memory_failures_total", ["pgmajfault", "hierarchy"]) == 4)
        #expect(v("container_threads", []) == 6)
        #expect(v("container_threads_max", []) == 100)
        #expect(v("container_pressure_cpu_waiting_seconds_total", []) == 4)
        #expect(v("container_pressure_cpu_stalled_seconds_total", []) == 2)
        #expect(v("container_pressure_memory_waiting_seconds_total", []) == 0)
        #expect(v("container_pressure_io_waiting_seconds_total", []) == 3)
        #expect(v("container_pressure_io_stalled_seconds_total", []) == 1)
        #expect(v("container_blkio_device_usage_total", ["254:0", "254", "0", "Write"]) == 2000)
        #expect(v("container_fs_reads_bytes_total", ["254:0"]) == 1000)
        #expect(v("container_fs_writes_total", ["254:0"]) == 4)
        #expect(v("container_hugetlb_usage_bytes", ["2MB"]) == 0)
        #expect(v("container_hugetlb_max_usage_bytes", ["2MB"]) == nil, "v2 keeps no maximum")
    }

    @Test func v2WithoutTheCpuControllerHasNoThrottlingCounters() {
        let samples = CgroupMetrics.samples(
            version: .v2, stats: CgroupStats(), hugePageSizes: [], devices: { "\($0):\($1)" },
            read: { $1 == "cpu.stat" ? "usage_usec 10\nuser_usec 5\nsystem_usec 5\n" : nil })
        #expect(Set(samples.map(\.definition.name)) == [
            "container_cpu_usage_seconds_total", "container_cpu_user_seconds_total", "container_cpu_system_seconds_total",
        ])
    }

    // MARK: - Network, processes, spec, file system

    @Test func netDevGivesEightCountersPerInterfaceButLoopback() {
        let text = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
              eth0: 1234567    1000    2    3    0     0          0         0   765432     900    4    5    0     0       0          0

            """
        let interfaces = NetDev.parse(text)
        #expect(interfaces.map(\.name) == ["lo", "eth0"])
        #expect(interfaces[1] == NetDev.Interface(name: "eth0", rxBytes: 1_234_567, rxPackets: 1000, rxErrors: 2, rxDropped: 3,
                                                   txBytes: 765_432, txPackets: 900, txErrors: 4, txDropped: 5))
        let samples = NetDev.samples(interfaces)
        Self.checkLabels(samples)
        #expect(samples.count == 8)
        #expect(samples.allSatisfy { $0.extraLabelValues == ["eth0"] })
        #expect(Self.value(samples, "container_network_receive_packets_dropped_total", ["eth0"]) == 3)
        #expect(Self.value(samples, "container_network_transmit_packets_total", ["eth0"]) == 900)
        #expect(Self.value(samples, "container_network_transmit_errors_total", ["eth0"]) == 4)
    }

    @Test func processesFilesAndSocketsOfLiveProcesses() throws {
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(socket >= 0)
        defer { close(socket) }
        let samples = ProcessMetrics.samples(pids: [getpid()], countThreads: true)
        Self.checkLabels(samples)
        #expect(Self.value(samples, "container_processes") == 1)
        #expect(Self.value(samples, "container_file_descriptors") ?? 0 >= 4, "stdio and the socket at least")
        #expect(Self.value(samples, "container_sockets") ?? 0 >= 1)
        #expect(Self.value(samples, "container_threads") ?? 0 >= 1)
        // A process that is gone counts nothing; pids.current stands in for threads when told so.
        let gone = ProcessMetrics.samples(pids: [Int32.max], countThreads: false)
        #expect(Self.value(gone, "container_file_descriptors") == 0)
        #expect(Self.value(gone, "container_threads") == nil)
    }

    @Test func softOpenFilesLimitFromProcLimits() throws {
        let limits = """
            Limit                     Soft Limit           Hard Limit           Units
            Max cpu time              unlimited            unlimited            seconds
            Max open files            1024                 524288               files

            """
        #expect(ProcessMetrics.softOpenFilesLimit(limits) == 1024)
        #expect(ProcessMetrics.softOpenFilesLimit("Max open files            unlimited            unlimited            files") == UInt64.max)
        #expect(ProcessMetrics.softOpenFilesLimit("Max processes 10 10 processes") == nil)
        var own = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &own)
        let samples = ProcessMetrics.ulimits(pid: getpid())
        Self.checkLabels(samples)
        #expect(Self.value(samples, "container_ulimits_soft", ["max_open_files"]) == UInt64(own.rlim_cur))
    }

    @Test func specValuesAreTheResourcesGiven() {
        var r = LinuxContainerResources()
        r.cpuPeriod = 100_000
        r.cpuQuota = 20_000
        r.cpuShares = 1024
        r.memoryLimitInBytes = 64 << 20
        r.memorySwapLimitInBytes = 128 << 20
        r.unified = ["memory.min": "16777216"]
        let samples = PodMetrics.spec(r)
        Self.checkLabels(samples)
        #expect(Self.value(samples, "container_spec_cpu_period") == 100_000)
        #expect(Self.value(samples, "container_spec_cpu_quota") == 20_000)
        #expect(Self.value(samples, "container_spec_cpu_shares") == 1024)
        #expect(Self.value(samples, "container_spec_memory_limit_bytes") == 64 << 20)
        #expect(Self.value(samples, "container_spec_memory_swap_limit_bytes") == 128 << 20)
        #expect(Self.value(samples, "container_spec_memory_reservation_limit_bytes") == 16 << 20)
        // Nothing set: no CPU values; unlimited memory is 0, as in cAdvisor.
        let unset = PodMetrics.spec(LinuxContainerResources())
        #expect(Set(unset.map(\.definition.name)) == [
            "container_spec_memory_limit_bytes", "container_spec_memory_swap_limit_bytes", "container_spec_memory_reservation_limit_bytes",
        ])
        #expect(unset.allSatisfy { $0.value == 0 })
        r.memoryLimitInBytes = Int64.max
        #expect(Self.value(PodMetrics.spec(r), "container_spec_memory_limit_bytes") == 0)
    }

    @Test func writableLayerUsageAndItsFileSystem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-metrics-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let samples = WritableLayer(directory: dir, usedBytes: 4096).samples()
        Self.checkLabels(samples)
        #expect(samples.count == 4)
        let device = try #require(samples.first?.extraLabelValues.first)
        #expect(!device.isEmpty && samples.allSatisfy { $0.extraLabelValues == [device] })
        #expect(Self.value(samples, "container_fs_usage_bytes", [device]) == 4096)
        #expect(Self.value(samples, "container_fs_limit_bytes", [device]) ?? 0 > 4096)
        #expect(Self.value(samples, "container_fs_inodes_total", [device]) ?? 0 >= Self.value(samples, "container_fs_inodes_free", [device]) ?? 0)
        #expect(WritableLayer(directory: dir + "/missing", usedBytes: 1).samples().isEmpty)
    }

    @Test func hostFactNames() {
        #expect(HugePages.name(directory: "hugepages-2048kB") == "2MB")
        #expect(HugePages.name(directory: "hugepages-1048576kB") == "1GB")
        #expect(HugePages.name(directory: "hugepages-64kB") == "64KB")
        #expect(HugePages.name(directory: "something") == nil)
        #expect(DeviceNames.name(major: 0, minor: 9999) == "0:9999")
        // glibc's makedev layout: minor bits 0-7 and 20-31 (and up), major bits 8-19 and 32-43.
        func dev(_ major: UInt64, _ minor: UInt64) -> dev_t {
            let low: UInt64 = ((major & 0xfff) << 8) | (minor & 0xff)
            let high: UInt64 = ((major & ~UInt64(0xfff)) << 32) | ((minor & ~UInt64(0xff)) << 12)
            return dev_t(low | high)
        }
        #expect(WritableLayer.major(dev(8, 17)) == 8 && WritableLayer.minor(dev(8, 17)) == 17)
        #expect(WritableLayer.major(dev(259, 300_000)) == 259 && WritableLayer.minor(dev(259, 300_000)) == 300_000)
        var st = stat()
        #expect(stat("/dev/null", &st) == 0)
        #expect(WritableLayer.major(st.st_rdev) == 1 && WritableLayer.minor(st.st_rdev) == 3)
        let totals = CgroupText.pressureTotals("some avg10=1.00 total=12\n")
        #expect(totals.some == 12 && totals.full == nil)
        #expect(CgroupText.number("max\n") == nil)
        // key value lines only: not two fields, not a number, an overflow are skipped; no final newline is fine.
        let keyed = CgroupText.keyed("a 1\nb x\nc 2 3\n\nd 18446744073709551616\nmax 18446744073709551615\n  \ne 5")
        #expect(keyed == ["a": 1, "max": UInt64.max, "e": 5])
        #expect(CgroupText.keyed(nil).isEmpty && CgroupText.keyed("").isEmpty)
    }

    /// Pod-level samples of a live cgroup-less process (no cgroup path): network, times; nothing invented.
    @Test func podSamplesWithoutACgroupAreTimesAndNetwork() {
        let samples = PodMetrics.pod(cgroup: "/skiff-metrics-no-such-group", infraPid: getpid(), hostNetwork: false,
                                     createdAt: 2_000_000_000, now: 5_500_000_000)
        Self.checkLabels(samples)
        #expect(Self.value(samples, "container_start_time_seconds") == 2)
        #expect(Self.value(samples, "container_last_seen") == 5)
        #expect(!samples.contains { $0.definition.name.hasPrefix("container_memory") })
        #expect(!samples.contains { $0.extraLabelValues == ["lo"] })
    }
}
