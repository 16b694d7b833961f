import CRI
import Foundation
import GRPCCore
@testable import SkiffClient
import Testing

/// ListMetricDescriptors and ListPodSandboxMetrics against a real skiffd, with the checks of the CRI
/// conformance suite (cri-tools pkg/validate/pod.go, "runtime should support listing pod sandbox metrics")
/// and the values themselves: spec values as set, usage from the cgroup, network from the pod's namespace.
@Suite(.serialized, RegistryScope())
struct MetricsTests {
    /// The conformance suite's lists: every expected metric must be described, and have a value for a pod
    /// with one running container, unless it is unimplemented (runtimes need not describe it) or optional
    /// (its value depends on block I/O accounting of the test machine).
    static let expected = MetricCatalogNames.expected
    static let unimplemented: Set<String> = [
        "container_hugetlb_max_usage_bytes", "container_hugetlb_usage_bytes", "container_pressure_cpu_stalled_seconds_total",
        "container_pressure_cpu_waiting_seconds_total", "container_pressure_io_stalled_seconds_total",
        "container_pressure_io_waiting_seconds_total", "container_pressure_memory_stalled_seconds_total",
        "container_pressure_memory_waiting_seconds_total", "container_spec_cpu_quota",
        "container_spec_memory_reservation_limit_bytes", "container_ulimits_soft",
    ]
    static let optional: Set<String> = [
        "container_blkio_device_usage_total", "container_fs_reads_bytes_total", "container_fs_reads_total",
        "container_fs_writes_bytes_total", "container_fs_writes_total",
    ]

    @Test func aPodWithALimitedContainerHasEveryMetric() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig(labels: ["skiff-metrics": "main"])
        let hostConfig = h.podConfig(network: .node)
        let image = h.registry.image("latest")
        try await h.client { c in
            try await c.pull(image)
            let pod = try await c.runPod(podConfig)
            let hostPod = try await c.runPod(hostConfig)
            // As the conformance test: CPU and memory limits, files written in the writable layer. Then an
            // allocation over the limit (the OOM killer takes dd, the shell lives on), then a busy loop that
            // the 20 % quota throttles.
            var config = Pods.container(name: "limited", image: image, command: ["sh", "-c", """
                mkdir -p /var/lib/mydisktest && for i in 1 2 3 4 5 6 7 8 9 10; do echo hi >> /var/lib/mydisktest/inode_test_file_$i; done
                dd if=/dev/zero of=/dev/null bs=100M count=1; touch /tmp/skiff-after-oom; while :; do :; done
                """])
            var resources = LinuxContainerResources()
            resources.cpuPeriod = 100_000
            resources.cpuQuota = 20_000
            resources.cpuShares = 1024
            resources.memoryLimitInBytes = 64 * 1024 * 1024
            resources.memorySwapLimitInBytes = 64 * 1024 * 1024
            resources.unified = ["pids.max": "64"]
            config.linux?.resources = resources
            let limited = try await c.run(pod, config, podConfig)
            let done = try await c.run(pod, Pods.container(name: "done", image: image, command: ["true"]), podConfig)
            _ = try await c.waitFor(done) { $0.state == .containerExited }
            try await PodStatsTests.waitUntil("dd was OOM-killed") { try await c.exec(limited, ["test", "-e", "/tmp/skiff-after-oom"]).code == 0 }
            // A few CFS periods of the throttled loop.
            try await Task.sleep(for: .milliseconds(1500))
            // Interfaces made from the host side in the pod's namespace, as CNI would (see PodStatsTests).
            let netns = "--net=/proc/\(try await Self.infraPid(c, pod))/ns/net"
            for command in [
                "ip link add eth0 type veth peer name skiffpeer0", "ip addr add 10.252.0.1/24 dev eth0", "ip link set eth0 up",
                "ip link set skiffpeer0 up", "ip neigh add 10.252.0.2 lladdr 02:00:00:00:00:02 dev eth0",
            ] {
                try await offThePool { try sh(["nsenter", netns] + command.split(separator: " ").map(String.init)) }
            }
            let send = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(20): s.sendto(b'x' * 1000, ('10.252.0.2', 9))"
            try await offThePool { try sh(["nsenter", netns, "python3", "-c", send]) }

            let descriptors = try await c.call(CRIMethods.listMetricDescriptors, ListMetricDescriptorsRequest()).descriptors
            let before = Int64(Date().timeIntervalSince1970 * 1e9)
            let all = try await c.call(CRIMethods.listPodSandboxMetrics, ListPodSandboxMetricsRequest()).podMetrics
            let after = Int64(Date().timeIntervalSince1970 * 1e9)

            // The conformance checks.
            let described = Dictionary(uniqueKeysWithValues: descriptors.map { ($0.name, $0) })
            for d in descriptors {
                #expect(!d.help.isEmpty && !d.labelKeys.isEmpty, "\(d.name)")
            }
            try #require(Self.expected.count == 56, "Tests/Fixtures/cri-conformance-metric-names.txt was not read whole")
            #expect(Self.expected.filter { described[$0] == nil && !Self.unimplemented.contains($0) } == [])
            #expect(Set(all.map(\.podSandboxId)) == [pod, hostPod], "ready pods only")
            let metrics = try #require(all.first { $0.podSandboxId == pod })
            let podLevel = metrics.metrics
            #expect(metrics.containerMetrics.map(\.containerId) == [limited], "running containers only")
            let containerLevel = metrics.containerMetrics.first?.metrics ?? []
            let found = Set((podLevel + containerLevel).map(\.name))
            let missing = Self.expected.filter { !found.contains($0) && !Self.unimplemented.contains($0) && !Self.optional.contains($0) }
            #expect(missing == [], "no values for \(missing)")
            for metric in all.flatMap({ $0.metrics + $0.containerMetrics.flatMap(\.metrics) }) {
                let keys = described[metric.name]?.labelKeys
                #expect(keys != nil, "\(metric.name) is not described")
                #expect(metric.labelValues.count == keys?.count, "\(metric.name): \(metric.labelValues) for \(keys ?? [])")
                #expect(metric.value != nil)
                #expect(metric.timestamp >= before && metric.timestamp <= after, "\(metric.name) at \(metric.timestamp)")
            }

            // Labels: cAdvisor's keys; the pod's own series have no container name.
            let podCgroup = podConfig.linux!.cgroupParent
            func labels(_ m: Metric) -> [String: String] {
                Dictionary(uniqueKeysWithValues: zip(described[m.name]?.labelKeys ?? [], m.labelValues).map { ($0, $1) })
            }
            func one(_ list: [Metric], _ name: String, _ extra: [String: String] = [:]) -> Metric? {
                list.first { m in m.name == name && extra.allSatisfy { labels(m)[$0.key] == $0.value } }
            }
            func value(_ list: [Metric], _ name: String, _ extra: [String: String] = [:]) -> UInt64? { one(list, name, extra)?.value?.value }
            let podUsage = try #require(one(podLevel, "container_memory_usage_bytes"))
            #expect(labels(podUsage) == ["container": "", "id": podCgroup, "image": "", "name": pod,
                                         "namespace": "skiff-tests", "pod": podConfig.metadata!.name])
            let ctrUsage = try #require(one(containerLevel, "container_memory_usage_bytes"))
            #expect(labels(ctrUsage) == ["container": "limited", "id": podCgroup + "/" + limited, "image": image, "name": limited,
                                         "namespace": "skiff-tests", "pod": podConfig.metadata!.name])

            // Spec values are the ones set.
            #expect(value(containerLevel, "container_spec_cpu_period") == 100_000)
            #expect(value(containerLevel, "container_spec_cpu_quota") == 20_000)
            #expect(value(containerLevel, "container_spec_cpu_shares") == 1024)
            #expect(value(containerLevel, "container_spec_memory_limit_bytes") == 64 * 1024 * 1024)
            #expect(value(containerLevel, "container_spec_memory_swap_limit_bytes") == 64 * 1024 * 1024)
            #expect(value(containerLevel, "container_threads_max") == 64)
            // Usage from the container's cgroup.
            #expect(ctrUsage.value?.value ?? 0 > 0)
            #expect(ctrUsage.metricType == .gauge)
            #expect(value(containerLevel, "container_memory_working_set_bytes") ?? 0 > 0)
            #expect(value(containerLevel, "container_memory_max_usage_bytes") ?? 0 >= 32 * 1024 * 1024, "dd pushed it to the limit")
            #expect(value(containerLevel, "container_oom_events_total") ?? 0 >= 1)
            // The limit counter as the kernel has it (v1: memory.failcnt, which stays 0 when memory+swap, limited
            // to the same value, is the counter that refuses first; v2: memory.events `max`).
            let ctrCgroup = podCgroup + "/" + limited
            let failcnt: UInt64?
            if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") {
                let events = try String(contentsOfFile: "/sys/fs/cgroup\(ctrCgroup)/memory.events", encoding: .utf8)
                failcnt = events.split(separator: "\n").first { $0.hasPrefix("max ") }.flatMap { UInt64($0.dropFirst(4)) }
            } else {
                failcnt = UInt64(try String(contentsOfFile: "/sys/fs/cgroup/memory\(ctrCgroup)/memory.failcnt", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines))
            }
            #expect(failcnt != nil && value(containerLevel, "container_memory_failcnt") == failcnt)
            // Where the kernel keeps them (cgroup v2 with PSI, the hugetlb controller), stalls and huge pages too.
            let unified = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
            if unified && FileManager.default.fileExists(atPath: "/sys/fs/cgroup\(ctrCgroup)/cpu.pressure") {
                for name in Self.unimplemented where name.hasPrefix("container_pressure_") {
                    #expect(one(containerLevel, name) != nil, "\(name)")
                }
            }
            if let size = FileManager.default.enumerator(atPath: "/sys/fs/cgroup\(unified ? "" : "/hugetlb")\(ctrCgroup)")?
                .compactMap({ $0 as? String }).first(where: { $0.hasPrefix("hugetlb.") && ($0.hasSuffix(".current") || $0.hasSuffix(".usage_in_bytes")) && !$0.contains(".rsvd.") })?
                .split(separator: ".")[1] {
                #expect(value(containerLevel, "container_hugetlb_usage_bytes", ["pagesize": String(size)]) == 0)
            }
            #expect(value(containerLevel, "container_memory_failures_total", ["failure_type": "pgfault", "scope": "hierarchy"]) ?? 0 > 0)
            #expect(value(containerLevel, "container_cpu_cfs_periods_total") ?? 0 > 0)
            #expect(value(containerLevel, "container_cpu_cfs_throttled_periods_total") ?? 0 > 0)
            #expect(one(containerLevel, "container_cpu_usage_seconds_total")?.metricType == .counter)
            #expect(labels(try #require(one(containerLevel, "container_cpu_usage_seconds_total")))["cpu"] == "total")
            #expect(value(containerLevel, "container_processes") == 1, "the shell alone")
            #expect(value(containerLevel, "container_threads") == 1)
            #expect(value(containerLevel, "container_file_descriptors") ?? 0 >= 3)
            #expect(value(containerLevel, "container_ulimits_soft", ["ulimit": "max_open_files"]) ?? 0 > 0)
            let status = try await c.status(limited)
            #expect(value(containerLevel, "container_start_time_seconds") == UInt64(status.startedAt / 1_000_000_000))
            #expect(value(containerLevel, "container_last_seen") ?? 0 >= UInt64(before / 1_000_000_000))
            let fsUsage = try #require(one(containerLevel, "container_fs_usage_bytes"))
            #expect(fsUsage.value?.value ?? 0 > 0, "the files written")
            #expect(value(containerLevel, "container_fs_limit_bytes", ["device": labels(fsUsage)["device"]!]) ?? 0 > fsUsage.value?.value ?? 0)
            // The pod as a whole: its cgroup holds the infra and the container.
            #expect(podUsage.value?.value ?? 0 >= ctrUsage.value?.value ?? 0)
            #expect(value(podLevel, "container_processes") ?? 0 >= 2)
            #expect(value(podLevel, "container_start_time_seconds") ?? 0 > 0)
            #expect(one(podLevel, "container_spec_memory_limit_bytes") == nil, "the spec is the containers'")
            #expect(one(podLevel, "container_cpu_cfs_periods_total") == nil, "no quota on the pod: nothing throttled")
            // Network: eth0's counters from the pod's namespace; loopback left out.
            #expect(value(podLevel, "container_network_transmit_bytes_total", ["interface": "eth0"]) ?? 0 >= 20 * 1000)
            #expect(value(podLevel, "container_network_transmit_packets_total", ["interface": "eth0"]) ?? 0 >= 20)
            #expect(value(podLevel, "container_network_receive_bytes_total", ["interface": "skiffpeer0"]) ?? 0 >= 20 * 1000)
            #expect(value(podLevel, "container_network_receive_errors_total", ["interface": "eth0"]) == 0)
            #expect(!podLevel.contains { labels($0)["interface"] == "lo" })
            #expect(!containerLevel.contains { $0.name.hasPrefix("container_network_") })

            // A pod on the host's network has its cgroup's metrics but no network of its own.
            let host = try #require(all.first { $0.podSandboxId == hostPod })
            #expect(host.metrics.contains { $0.name == "container_memory_usage_bytes" })
            #expect(!host.metrics.contains { $0.name.hasPrefix("container_network_") })
            #expect(host.containerMetrics.isEmpty)

            // skiffctl: crictl's documents (a generous timeout: crictl's 2 s default is short on an emulated VM).
            let descs = try ProtoJSON.parse(try await Ctl.run(h.daemon, ["-t", "60s", "metricdescs"]).out)
            guard case .array(let listed)? = descs["descriptors"] else { throw TestFailure("metricdescs: no descriptors list") }
            #expect(listed.count == descriptors.count)
            #expect(listed.first?["name"] == .string(descriptors[0].name))
            #expect(listed.first?["labelKeys"] == .array(descriptors[0].labelKeys.map { .string($0) }))
            let yaml = try await Ctl.run(h.daemon, ["-t", "60s", "metricdescs", "-o", "yaml"])
            #expect(yaml.out.hasPrefix("descriptors:\n- help: "), "\(yaml)")
            let table = try await Ctl.run(h.daemon, ["-t", "60s", "metricdescs", "-o", "table"])
            #expect(table.status != 0, "crictl offers json and yaml only")
            let podsJSON = try ProtoJSON.parse(try await Ctl.run(h.daemon, ["-t", "60s", "metricsp", "-o", "json"]).out)
            guard case .array(let pods)? = podsJSON["podMetrics"] else { throw TestFailure("metricsp: no podMetrics list") }
            let mine = try #require(pods.first { $0["podSandboxId"] == .string(pod) })
            guard case .array(let podMetrics)? = mine["metrics"], case .array(let ctrs)? = mine["containerMetrics"] else {
                throw TestFailure("metricsp: \(mine)")
            }
            #expect(podMetrics.count == podLevel.count)
            #expect(ctrs.first?["containerId"] == .string(limited))
            let first = try #require(podMetrics.first)
            // protojson with EmitDefaultValues: 64-bit numbers as strings, the enum by name, COUNTER included.
            #expect(first["metricType"] == .string("COUNTER") || first["metricType"] == .string("GAUGE"))
            if case .string(let ts)? = first["timestamp"] { #expect(Int64(ts) ?? 0 > 0) } else { Issue.record("timestamp: \(first)") }
            if case .string(let v)? = first["value"]?["value"] { #expect(UInt64(v) != nil) } else { Issue.record("value: \(first)") }
            let podsYAML = try await Ctl.run(h.daemon, ["-t", "60s", "metricsp", "-o", "yaml"])
            #expect(podsYAML.out.hasPrefix("podMetrics:\n"), "\(podsYAML.status) \(podsYAML.err)")

            // A stopped pod is left out.
            try await c.stopPod(hostPod)
            try await c.stopPod(pod)
            #expect(try await c.call(CRIMethods.listPodSandboxMetrics, ListPodSandboxMetricsRequest()).podMetrics.isEmpty)
            try await c.removePod(pod)
            try await c.removePod(hostPod)
        }
        }
    }

    static func infraPid(_ c: CRIClient, _ pod: String) async throws -> Int {
        let info = try ProtoJSON.parse(try await c.podStatus(pod, verbose: true).info["info"] ?? "{}")
        switch info["pid"] {
        case .int(let n)?: return Int(n)
        case .uint(let n)?: return Int(n)
        case .number(let n)?: return Int(n)
        default: throw TestFailure("no infra pid in PodSandboxStatus info: \(info)")
        }
    }
}

/// The names the conformance suite expects, from the fixture both metrics suites read.
enum MetricCatalogNames {
    static let expected: [String] = {
        let path = repoRoot + "/Tests/Fixtures/cri-conformance-metric-names.txt"
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }()
}
