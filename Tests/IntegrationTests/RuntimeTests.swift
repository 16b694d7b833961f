import CRI
import Foundation
import GRPCCore
import SkiffClient
import Testing

/// Pods and containers driven through skiffd's socket with real namespaces, cgroups and images pulled
/// from a local registry. Serialized: the machine has two cores and every test starts real processes.
@Suite(.serialized, RegistryScope())
struct RuntimeTests {}

// MARK: - Pod sandboxes

extension RuntimeTests {
    @Test func podLifecycleHostnameDNSAndIdempotentStopRemove() async throws {
        try await RuntimeHarness.run { h in
        var dns = DNSConfig()
        dns.servers = ["10.0.0.10"]
        dns.searches = ["skiff.svc.cluster.local", "svc.cluster.local"]
        dns.options = ["ndots:5"]
        let podConfig = h.podConfig(hostname: "skiff-host", dns: dns)
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            let status = try await c.podStatus(pod, verbose: true)
            #expect(status.status?.state == .sandboxReady)
            #expect(status.status?.metadata?.name == podConfig.metadata?.name)
            #expect((status.status?.createdAt ?? 0) > 1_600_000_000_000_000_000)
            #expect(status.info["info"]?.contains("\"pid\"") == true)

            let ctr = try await c.run(pod, Pods.container(name: "c", image: h.registry.image("latest"), command: ["sleep", "300"]), podConfig)
            #expect(try await c.exec(ctr, ["hostname"]).out == "skiff-host\n")
            #expect(try await c.exec(ctr, ["cat", "/etc/hostname"]).out == "skiff-host\n")
            let resolv = try await c.exec(ctr, ["cat", "/etc/resolv.conf"]).out
            #expect(resolv.contains("nameserver 10.0.0.10"))
            #expect(resolv.contains("search skiff.svc.cluster.local svc.cluster.local"))
            #expect(resolv.contains("options ndots:5"))
            // lo is up (IFF_UP | IFF_LOOPBACK) in the pod's own network namespace.
            #expect(try await c.exec(ctr, ["cat", "/sys/class/net/lo/flags"]).out == "0x9\n")

            try await c.stopPod(pod)
            #expect(try await c.podStatus(pod).status?.state == .sandboxNotready)
            #expect(try await c.status(ctr).state == .containerExited)
            try await c.stopPod(pod)  // stopping twice is fine
            try await c.removePod(pod)
            try await c.removePod(pod)  // removing twice is fine
            try await c.stopPod(String(repeating: "f", count: 64))  // unknown: fine
            await #expect { try await c.podStatus(pod) } throws: { ($0 as? RPCError)?.code == .notFound }
            #expect(try await c.listPods().isEmpty)
            #expect(try await c.listContainers().isEmpty)
        }
        }
    }

    @Test func containersOfAPodShareNetworkIPCAndUTSButNotMounts() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig(hostname: "shared")
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            let server = try await c.run(pod, Pods.container(
                name: "server", image: h.registry.image("latest"),
                command: ["sh", "-c", "mkdir -p /www && echo skiff-pong > /www/index.html && exec httpd -f -p 8080 -h /www"]), podConfig)
            let client = try await c.run(pod, Pods.container(name: "client", image: h.registry.image("latest"), command: ["sleep", "300"]), podConfig)
            // localhost networking across containers (retry while httpd binds).
            var body = ""
            for _ in 0..<100 {
                body = try await c.exec(client, ["wget", "-qO-", "http://127.0.0.1:8080/"]).out
                if body.contains("skiff-pong") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(body == "skiff-pong\n")
            for ns in ["net", "ipc", "uts"] {
                let a = try await c.exec(server, ["readlink", "/proc/self/ns/\(ns)"]).out
                let b = try await c.exec(client, ["readlink", "/proc/self/ns/\(ns)"]).out
                #expect(a == b && !a.isEmpty, "\(ns) namespace differs: \(a) vs \(b)")
            }
            let mntA = try await c.exec(server, ["readlink", "/proc/self/ns/mnt"]).out
            let mntB = try await c.exec(client, ["readlink", "/proc/self/ns/mnt"]).out
            #expect(mntA != mntB)
            // Separate root filesystems.
            #expect(try await c.exec(client, ["test", "-e", "/www/index.html"]).code != 0)
            #expect(try await c.exec(client, ["hostname"]).out == "shared\n")
            // Separate PID namespaces by default: each container's init is PID 1 of its own.
            #expect(try await c.exec(client, ["cat", "/proc/1/cmdline"]).out.hasPrefix("sleep"))
            try await c.removePod(pod)
        }
        }
    }

    @Test func sharedPodPIDNamespace() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig(pid: .pod)
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            let a = try await c.run(pod, Pods.container(name: "a", image: h.registry.image("latest"), command: ["sleep", "301"], pid: .pod), podConfig)
            let b = try await c.run(pod, Pods.container(name: "b", image: h.registry.image("latest"), command: ["sleep", "302"], pid: .pod), podConfig)
            let ps = try await c.exec(b, ["ps", "-o", "pid,args"]).out
            #expect(ps.contains("sleep 301"), "container b should see a's process: \(ps)")
            #expect(ps.contains("sleep 302"))
            // The infra process is PID 1 of the shared namespace.
            #expect(try await c.exec(a, ["cat", "/proc/1/cmdline"]).out.hasPrefix("/pause"))
            try await c.removePod(pod)
        }
        }
    }

    @Test func hostNetworkPodSeesTheHostNamespace() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig(network: .node)
        let hostNet = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            let ctr = try await c.run(pod, Pods.container(name: "c", image: h.registry.image("latest"), command: ["sleep", "300"]), podConfig)
            #expect(try await c.exec(ctr, ["readlink", "/proc/self/ns/net"]).out == hostNet + "\n")
            try await c.removePod(pod)
        }
        }
    }

    @Test func listPodSandboxFilters() async throws {
        try await RuntimeHarness.run { h in
        try await h.client { c in
            let a = try await c.runPod(h.podConfig(name: "a", labels: ["app": "web", "tier": "front"]))
            let b = try await c.runPod(h.podConfig(name: "b", labels: ["app": "web", "tier": "back"]))
            let d = try await c.runPod(h.podConfig(name: "d", labels: ["app": "db"]))
            try await c.stopPod(d)
            #expect(Set(try await c.listPods().map(\.id)) == [a, b, d])
            var filter = PodSandboxFilter()
            filter.id = String(a.prefix(12))
            #expect(try await c.listPods(filter).map(\.id) == [a])
            filter = PodSandboxFilter()
            filter.labelSelector = ["app": "web"]
            #expect(Set(try await c.listPods(filter).map(\.id)) == [a, b])
            filter.labelSelector = ["app": "web", "tier": "back"]
            #expect(try await c.listPods(filter).map(\.id) == [b])
            filter = PodSandboxFilter()
            var state = PodSandboxStateValue()
            state.state = .sandboxNotready
            filter.state = state
            #expect(try await c.listPods(filter).map(\.id) == [d])
            state.state = .sandboxReady
            filter.state = state
            #expect(Set(try await c.listPods(filter).map(\.id)) == [a, b])
            filter = PodSandboxFilter()
            filter.id = "no-such-id"
            #expect(try await c.listPods(filter).isEmpty)
        }
        }
    }

    @Test func badSandboxRequestsGetClearErrors() async throws {
        try await RuntimeHarness.run { h in
        try await h.client { c in
            var noMetadata = h.podConfig()
            noMetadata.metadata = nil
            await #expect { try await c.runPod(noMetadata) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            var emptyName = h.podConfig()
            emptyName.metadata?.name = ""
            await #expect { try await c.runPod(emptyName) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            var badSysctl = h.podConfig()
            badSysctl.linux?.sysctls = ["kernel.hostname": "x"]
            await #expect { try await c.runPod(badSysctl) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            let config = h.podConfig(name: "dup")
            _ = try await c.runPod(config)
            await #expect { try await c.runPod(config) } throws: { ($0 as? RPCError)?.code == .alreadyExists }
            var request = RunPodSandboxRequest()
            request.config = h.podConfig()
            request.runtimeHandler = "no-such-runtime"
            await #expect { try await c.call(CRIMethods.runPodSandbox, request) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            #expect(try await c.listPods().count == 1)
        }
        }
    }

    @Test func twentySandboxesConcurrently() async throws {
        try await RuntimeHarness.run { h in
        try await h.client { c in
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<20 { group.addTask { try await c.runPod(h.podConfig(name: "many-\(i)")) } }
                var ids: [String] = []
                for try await id in group { ids.append(id) }
                return ids
            }
            #expect(Set(ids).count == 20)
            for id in ids { #expect(try await c.podStatus(id).status?.state == .sandboxReady) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in ids { group.addTask { try await c.removePod(id) } }
                try await group.waitForAll()
            }
            #expect(try await c.listPods().isEmpty)
        }
        }
    }
}

// MARK: - Runtime handlers and failures half-way

extension RuntimeTests {
    /// Debian's runc stands in for skiff-runc when a pod names it: the same pods and containers work.
    @Test func runcAsARuntimeHandler() async throws {
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        try #require(runc != nil, "runc is installed by scripts/install-deps --test")
        try await RuntimeHarness.run(configYAML: "runtimes:\n  runc:\n    path: \(runc!)\n") { h in
            let podConfig = h.podConfig(hostname: "runc-pod")
            try await h.client { c in
                try await c.pull(h.registry.image("latest"))
                var request = RunPodSandboxRequest()
                request.config = podConfig
                request.runtimeHandler = "runc"
                let pod = try await c.call(CRIMethods.runPodSandbox, request).podSandboxId
                #expect(try await c.podStatus(pod).status?.runtimeHandler == "runc")
                let ctr = try await c.run(pod, Pods.container(name: "c", image: h.registry.image("latest"), command: ["sleep", "300"]), podConfig)
                #expect(try await c.exec(ctr, ["hostname"]).out == "runc-pod\n")
                try await c.stop(ctr, timeout: 0)
                #expect(try await c.status(ctr).exitCode == 137)
                try await c.removePod(pod)
            }
        }
    }

    /// A launcher that fails half-way through RunPodSandbox leaves no sandbox, directory or cgroup behind.
    @Test func failedRunPodSandboxLeavesNothing() async throws {
        try await RuntimeHarness.run(configYAML: "runtimes:\n  broken:\n    path: /bin/false\n") { h in
            let podConfig = h.podConfig(name: "doomed")
            try await h.client { c in
                var request = RunPodSandboxRequest()
                request.config = podConfig
                request.runtimeHandler = "broken"
                await #expect { try await c.call(CRIMethods.runPodSandbox, request) } throws: { ($0 as? RPCError)?.code == .internalError }
                #expect(try await c.listPods().isEmpty)
                // The name is free again: the same pod on a working runtime starts.
                let pod = try await c.runPod(podConfig)
                #expect(try await c.podStatus(pod).status?.state == .sandboxReady)
                try await c.removePod(pod)
            }
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: h.daemon.root + "/sandboxes")) ?? []).isEmpty)
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: h.daemon.state + "/sandboxes")) ?? []).isEmpty)
            let cgroupDir = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory"
            #expect(!FileManager.default.fileExists(atPath: cgroupDir + podConfig.linux!.cgroupParent))
        }
    }
}
