import CRI
import Foundation
import GRPCCore
@testable import SkiffClient
import Synchronization
import Testing

/// PodSandboxStats, ListPodSandboxStats and GetContainerEvents against a real skiffd.
@Suite(.serialized, RegistryScope())
struct PodStatsTests {
    // MARK: - Pod stats

    @Test func podStatsCoverThePodAndItsRunningContainers() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig(labels: ["skiff-stats": "hog"])
        let otherConfig = h.podConfig(labels: ["skiff-stats": "other"])
        let image = h.registry.image("latest")
        try await h.client { c in
            try await c.pull(image)
            let pod = try await c.runPod(podConfig)
            let other = try await c.runPod(otherConfig)
            // 50 MiB in the pod's tmpfs stays charged to the pod while the container sleeps.
            let hog = try await c.run(pod, Pods.container(
                name: "hog", image: image,
                command: ["sh", "-c", "head -c 50m /dev/zero > /dev/shm/skiff-hog && touch /tmp/skiff-filled; sleep 600"]), podConfig)
            let busy = try await c.run(pod, Pods.container(name: "busy", image: image, command: ["sh", "-c", "while :; do :; done"]), podConfig)
            let done = try await c.run(pod, Pods.container(name: "done", image: image, command: ["true"]), podConfig)
            _ = try await c.waitFor(done) { $0.state == .containerExited }
            try await Self.waitUntil("the hog filled /dev/shm") { try await c.exec(hog, ["test", "-e", "/tmp/skiff-filled"]).code == 0 }

            let first = try await c.podStats(pod)
            try await Task.sleep(for: .seconds(1))
            let second = try await c.podStats(pod)

            #expect(second.attributes?.id == pod)
            #expect(second.attributes?.metadata?.name == podConfig.metadata?.name)
            #expect(second.attributes?.labels == ["skiff-stats": "hog"])
            let linux = try #require(second.linux)
            let cpu = try #require(linux.cpu)
            #expect(cpu.usageCoreNanoSeconds?.value ?? 0 > first.linux?.cpu?.usageCoreNanoSeconds?.value ?? 0)
            #expect(cpu.timestamp > first.linux?.cpu?.timestamp ?? 0)
            // The busy loop keeps about one core busy: the rate between the two calls is well above zero.
            #expect(cpu.usageNanoCores?.value ?? 0 > 100_000_000, "\(cpu)")
            let memory = try #require(linux.memory)
            #expect(memory.workingSetBytes?.value ?? 0 >= 50 * 1024 * 1024, "\(memory)")
            #expect(memory.usageBytes?.value ?? 0 >= memory.workingSetBytes?.value ?? 0)
            #expect(memory.pageFaults?.value ?? 0 > 0)
            #expect(memory.majorPageFaults != nil)
            // pause + the hog's sleep (sh execs its last command) + the busy sh, at least.
            #expect(linux.process?.processCount?.value ?? 0 >= 3, "\(String(describing: linux.process))")
            // Only lo here (no CNI config): loopback is not reported, so there is no network usage.
            #expect(linux.network == nil)
            // The running containers only, with their own stats.
            let containers = Dictionary(uniqueKeysWithValues: linux.containers.map { ($0.attributes?.id ?? "", $0) })
            #expect(Set(containers.keys) == [hog, busy])
            #expect(containers[hog]?.memory?.workingSetBytes?.value ?? 0 >= 50 * 1024 * 1024)
            #expect(containers[busy]?.cpu?.usageNanoCores?.value ?? 0 > 100_000_000)
            #expect(containers[hog]?.attributes?.metadata?.name == "hog")

            // ContainerStats reports the rate too.
            var request = ContainerStatsRequest()
            request.containerId = busy
            _ = try await c.call(CRIMethods.containerStats, request)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await c.call(CRIMethods.containerStats, request).stats?.cpu?.usageNanoCores?.value ?? 0 > 100_000_000)

            // List: all, by id prefix, by label.
            #expect(Set(try await c.listPodStats().compactMap { $0.attributes?.id }) == [pod, other])
            var filter = PodSandboxStatsFilter()
            filter.id = String(pod.prefix(12))
            #expect(try await c.listPodStats(filter).compactMap { $0.attributes?.id } == [pod])
            filter = PodSandboxStatsFilter()
            filter.labelSelector = ["skiff-stats": "other"]
            #expect(try await c.listPodStats(filter).compactMap { $0.attributes?.id } == [other])
            filter.labelSelector = ["skiff-stats": "none"]
            #expect(try await c.listPodStats(filter).isEmpty)

            // skiffctl statsp: crictl's table (both pods: the infra alone has some memory), and JSON.
            let table = try await Ctl.run(h.daemon, ["-t", "60s", "statsp", "-s", "1"])
            let rows = table.out.split(separator: "\n")
            #expect(rows.first?.hasPrefix("POD                 POD ID              CPU %") == true, "\(table)")
            #expect(rows.contains { $0.hasPrefix(podConfig.metadata!.name) && $0.contains(String(pod.prefix(13))) }, "\(table)")
            let json = try ProtoJSON.parse(try await Ctl.run(h.daemon, ["-t", "60s", "statsp", "-o", "json", "--label", "skiff-stats=hog"]).out)
            guard case .array(let listed)? = json["stats"] else { throw TestFailure("statsp -o json: no stats list") }
            #expect(listed.count == 1 && listed.first?["attributes"]?["id"] == .string(pod))

            // A stopped pod has no stats (UNAVAILABLE, as containerd) and is left out of the list.
            try await c.stopPod(other)
            await #expect { try await c.podStats(other) } throws: { ($0 as? RPCError)?.code == .unavailable }
            #expect(try await c.listPodStats().compactMap { $0.attributes?.id } == [pod])
            await #expect { try await c.podStats(String(repeating: "0", count: 64)) } throws: { ($0 as? RPCError)?.code == .notFound }
            await #expect { try await c.podStats("") } throws: { ($0 as? RPCError)?.code == .invalidArgument }

            try await c.removePod(pod)
            try await c.removePod(other)
        }
        }
    }

    @Test func podNetworkCountersComeFromThePodsNamespace() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        let hostConfig = h.podConfig(network: .node)
        try await h.client { c in
            let pod = try await c.runPod(podConfig)
            let hostPod = try await c.runPod(hostConfig)
            // Interfaces made from the host side in the pod's namespace: a veth pair, eth0 (what CNI would
            // add) and its peer. A static neighbour lets datagrams leave eth0 at once (no ARP), and the peer
            // counts them as received.
            let info = try ProtoJSON.parse(try await c.podStatus(pod, verbose: true).info["info"] ?? "{}")
            let pid: Int
            switch info["pid"] {
            case .int(let n)?: pid = Int(n)
            case .uint(let n)?: pid = Int(n)
            case .number(let n)?: pid = Int(n)
            default: throw TestFailure("no infra pid in PodSandboxStatus info: \(info)")
            }
            let netns = "--net=/proc/\(pid)/ns/net"
            for command in [
                "ip link add eth0 type veth peer name skiffpeer0", "ip addr add 10.251.0.1/24 dev eth0", "ip link set eth0 up",
                "ip link set skiffpeer0 up", "ip neigh add 10.251.0.2 lladdr 02:00:00:00:00:02 dev eth0",
            ] {
                try await offThePool { try sh(["nsenter", netns] + command.split(separator: " ").map(String.init)) }
            }
            let send = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(20): s.sendto(b'x' * 1000, ('10.251.0.2', 9))"
            try await offThePool { try sh(["nsenter", netns, "python3", "-c", send]) }

            let stats = try await c.podStats(pod)
            let network = try #require(stats.linux?.network)
            #expect(network.timestamp > 0)
            #expect(network.defaultInterface?.name == "eth0")
            #expect(network.defaultInterface?.txBytes?.value ?? 0 >= 20 * 1000, "\(network)")
            #expect(network.defaultInterface?.rxErrors?.value == 0)
            #expect(network.interfaces.map(\.name) == ["skiffpeer0"], "lo is left out: \(network.interfaces)")
            #expect(network.interfaces.first?.rxBytes?.value ?? 0 >= 20 * 1000)
            // A pod on the host's network has no network usage of its own.
            #expect(try await c.podStats(hostPod).linux?.network == nil)
            #expect(try await c.podStats(hostPod).linux?.cpu != nil)
            try await c.removePod(pod)
            try await c.removePod(hostPod)
        }
        }
    }

    // MARK: - Events

    @Test func eventsFollowTheLifecycleOfContainersAndPods() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        let image = h.registry.image("latest")
        try await h.client { c in try await c.pull(image) }
        let first = EventCollector(h.daemon)
        let second = EventCollector(h.daemon)
        defer { first.stop(); second.stop() }
        try await EventCollector.waitForSubscribers(h.daemon, joined: 2)
        try await h.client { c in
            let pod = try await c.runPod(podConfig)
            let ctr = try await c.create(pod, Pods.container(name: "app", image: image, command: ["sleep", "600"]), podConfig)
            try await c.start(ctr)
            try await c.stop(ctr, timeout: 0)
            try await c.remove(ctr)

            for collector in [first, second] {
                let events = try await collector.waitFor(ctr, count: 4)
                #expect(events.map(\.containerEventType) == [.containerCreatedEvent, .containerStartedEvent, .containerStoppedEvent, .containerDeletedEvent])
                #expect(events.map { $0.containersStatuses.first { $0.id == ctr }?.state } == [.containerCreated, .containerRunning, .containerExited, nil])
                for event in events {
                    #expect(event.podSandboxStatus?.id == pod)
                    #expect(event.podSandboxStatus?.metadata?.uid == podConfig.metadata?.uid)
                    #expect(event.podSandboxStatus?.state == .sandboxReady)
                    #expect(event.createdAt > 0)
                }
                #expect(events.map(\.createdAt) == events.map(\.createdAt).sorted())
                #expect(events[2].containersStatuses.first { $0.id == ctr }?.exitCode == 137)
            }

            // A container that exits by itself is reported STOPPED without anyone asking for its status.
            let quick = try await c.run(pod, Pods.container(name: "quick", image: image, command: ["sh", "-c", "exit 3"]), podConfig)
            let quickEvents = try await first.waitFor(quick, count: 3)
            #expect(quickEvents.map(\.containerEventType) == [.containerCreatedEvent, .containerStartedEvent, .containerStoppedEvent])
            let exited = quickEvents.last?.containersStatuses.first { $0.id == quick }
            #expect(exited?.state == .containerExited && exited?.exitCode == 3 && exited?.reason == "Error")

            // The sandbox reports its own transitions under its own id.
            try await c.stopPod(pod)
            try await c.removePod(pod)
            let podEvents = try await first.waitFor(pod, count: 4)
            #expect(podEvents.map(\.containerEventType) == [.containerCreatedEvent, .containerStartedEvent, .containerStoppedEvent, .containerDeletedEvent])
            #expect(podEvents.map { $0.podSandboxStatus?.state } == [.sandboxReady, .sandboxReady, .sandboxNotready, .sandboxNotready])
            // The quick container was removed with the pod (STOPPED already reported, then DELETED).
            #expect(try await first.waitFor(quick, count: 4).last?.containerEventType == .containerDeletedEvent)
            #expect(try await second.waitFor(pod, count: 4).map(\.containerEventType) == podEvents.map(\.containerEventType))
        }
        }
    }

    @Test func aSubscriberThatLeavesIsDropped() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        let staying = EventCollector(h.daemon)
        let leaving = EventCollector(h.daemon)
        defer { staying.stop() }
        try await EventCollector.waitForSubscribers(h.daemon, joined: 2)
        leaving.stop()
        try await Self.waitUntil("skiffd dropped the subscriber that left") {
            h.daemon.logs().split(separator: "\n").contains { $0.contains("events: subscriber left") && $0.contains("subscribers=1") }
        }
        try await h.client { c in
            let pod = try await c.runPod(podConfig)
            // The one left still gets everything.
            #expect(try await staying.waitFor(pod, count: 2).map(\.containerEventType) == [.containerCreatedEvent, .containerStartedEvent])
            try await c.removePod(pod)
            #expect(try await staying.waitFor(pod, count: 4).last?.containerEventType == .containerDeletedEvent)
        }
        #expect(leaving.events(for: nil).isEmpty)
        }
    }

    static func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        while !(try await condition()) {
            if clock.now > deadline { throw TestFailure("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

extension CRIClient {
    func podStats(_ id: String) async throws -> PodSandboxStats {
        var request = PodSandboxStatsRequest()
        request.podSandboxId = id
        return try await call(CRIMethods.podSandboxStats, request).stats ?? PodSandboxStats()
    }

    func listPodStats(_ filter: PodSandboxStatsFilter? = nil) async throws -> [PodSandboxStats] {
        var request = ListPodSandboxStatsRequest()
        request.filter = filter
        return try await call(CRIMethods.listPodSandboxStats, request).stats
    }
}

/// One GetContainerEvents stream on its own connection, collecting events until `stop()`.
final class EventCollector: Sendable {
    private let received = Mutex<[ContainerEventResponse]>([])
    private let ended = Mutex<String?>(nil)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ daemon: TestDaemon) {
        let endpoint = daemon.endpoint
        let t = Task { await self.collect(endpoint) }
        task.withLock { $0 = t }
    }

    private func collect(_ endpoint: String) async {
        do {
            try await CRIClient.withClient(endpoint: endpoint) { client in
                var options = CallOptions.defaults
                options.timeout = .seconds(600)
                try await client.grpc.serverStreaming(
                    request: ClientRequest(message: GetEventsRequest()), descriptor: CRIMethods.getContainerEvents.descriptor,
                    serializer: CRISerializer<GetEventsRequest>(), deserializer: CRIDeserializer<ContainerEventResponse>(),
                    options: options
                ) { response in
                    for try await event in response.messages { self.received.withLock { $0.append(event) } }
                }
            }
            ended.withLock { $0 = "ended" }
        } catch {
            ended.withLock { $0 = "\(error)" }
        }
    }

    func stop() { task.withLock { $0?.cancel() } }

    /// Events about `id` (all events when nil), in arrival order.
    func events(for id: String?) -> [ContainerEventResponse] {
        received.withLock { all in id.map { id in all.filter { $0.containerId == id } } ?? all }
    }

    /// Waits (generously) until `count` events about `id` have arrived; returns them.
    func waitFor(_ id: String, count: Int) async throws -> [ContainerEventResponse] {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        while events(for: id).count < count {
            if clock.now > deadline {
                throw TestFailure("\(count) events for \(id) expected; got \(events(for: id).map(\.containerEventType.rawValue)), stream: \(ended.withLock { $0 } ?? "open")")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return events(for: id)
    }

    /// Subscriptions start when skiffd runs the handler: wait for its log line, so no event is missed.
    static func waitForSubscribers(_ daemon: TestDaemon, joined: Int) async throws {
        try await PodStatsTests.waitUntil("\(joined) event subscribers joined") {
            daemon.logs().components(separatedBy: "events: subscriber joined").count - 1 >= joined
        }
    }
}
