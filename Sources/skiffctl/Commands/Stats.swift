import ArgumentParser
import CRI
import Foundation

/// `stats [-a] [--id ID] [-p POD] [--label k=v] [-o] [-s N] [-w] [ID]`: crictl's columns CONTAINER, NAME,
/// CPU %, MEM, DISK, INODES, SWAP. CPU % is crictl's: two ListContainerStats samples `-s` seconds apart
/// (default 1), the growth of usageCoreNanoSeconds over the growth of the cpu timestamp, times 100
/// (100 % = one core busy). MEM is the working set.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "List container(s) resource usage statistics")

    @Flag(name: .shortAndLong, help: "Show all containers (default shows just running)")
    var all = false

    @Option(help: "Filter by container id")
    var id: String = ""

    @Option(name: [.customShort("p"), .long], help: "Filter by pod id")
    var pod: String = ""

    @Option(help: "Filter by key=value label (repeatable)")
    var label: [String] = []

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .table

    @Option(name: .shortAndLong, help: "Sample duration for CPU usage in seconds")
    var seconds: Int = 1

    @Flag(name: .shortAndLong, help: "Watch container resources")
    var watch = false

    @Argument(help: "[ID]")
    var containerID: String?

    func run() async throws {
        var filter = ContainerStatsFilter()
        filter.id = id.isEmpty ? (containerID ?? "") : id
        filter.podSandboxId = pod
        filter.labelSelector = try parseLabels(label)
        var request = ListContainerStatsRequest()
        request.filter = filter
        let sample = Duration.seconds(max(seconds, 0))
        try await StatsSampling.loop(watch: watch) { client in try await display(client, request, sample: sample) }
    }

    private func fetch(_ client: Client, _ request: ListContainerStatsRequest) async throws -> [ContainerStats] {
        try await step("get container stats") { try await client.call(CRIMethods.listContainerStats, request).stats }
            .sorted { ($0.attributes?.id ?? "") < ($1.attributes?.id ?? "") }
    }

    private func display(_ client: Client, _ request: ListContainerStatsRequest, sample: Duration) async throws {
        let first = try await fetch(client, request)
        if output != .table {
            try Output.print(Schema.list("stats", first.map { $0.protoJSON(useProtoNames: false) }, Schema.containerStats), as: output)
            return
        }
        let old = Dictionary(first.map { ($0.attributes?.id ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        try await Task.sleep(for: sample)
        let second = try await fetch(client, request)
        var table = Table(header: ["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES", "SWAP"])
        for stats in second {
            let id = stats.attributes?.id ?? ""
            let cpu = stats.cpu?.usageCoreNanoSeconds?.value ?? 0
            let memory = stats.memory?.workingSetBytes?.value ?? 0
            if !all && cpu == 0 && memory == 0 { continue }
            guard let before = old[id] else { continue }
            let percent = try StatsSampling.cpuPercent(before.cpu, stats.cpu, step: "get container stats")
            table.add([
                Human.truncated(id), stats.attributes?.metadata?.name ?? "", String(format: "%.2f", percent),
                Human.size(Double(memory)), Human.size(Double(stats.writableLayer?.usedBytes?.value ?? 0)),
                String(stats.writableLayer?.inodesUsed?.value ?? 0), Human.size(Double(stats.swap?.swapUsageBytes?.value ?? 0)),
            ])
        }
        StatsSampling.show(table, watching: watch)
    }
}

/// `statsp [--id ID] [--label k=v] [-o json|yaml|table] [-s N] [-w] [ID]`: crictl 1.26's pod stats, columns
/// POD, POD ID, CPU %, MEM. As crictl: two ListPodSandboxStats samples `-s` seconds apart; CPU % is the growth
/// of the pod's usageCoreNanoSeconds over the growth of its cpu timestamp, times 100; MEM is the pod's
/// working set; pods without cpu and memory data and pods new in the second sample are left out. With `-o`,
/// one sample is printed as a ListPodSandboxStatsResponse.
struct PodStatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "statsp", abstract: "List pod resource usage statistics")

    @Option(help: "Filter by pod id")
    var id: String = ""

    @Option(help: "Filter by key=value label (repeatable)")
    var label: [String] = []

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .table

    @Option(name: .shortAndLong, help: "Sample duration for CPU usage in seconds")
    var seconds: Int = 1

    @Flag(name: .shortAndLong, help: "Watch pod resources")
    var watch = false

    @Argument(help: "[ID]")
    var podID: String?

    func run() async throws {
        var filter = PodSandboxStatsFilter()
        filter.id = id.isEmpty ? (podID ?? "") : id
        filter.labelSelector = try parseLabels(label)
        var request = ListPodSandboxStatsRequest()
        request.filter = filter
        let sample = Duration.seconds(max(seconds, 0))
        try await StatsSampling.loop(watch: watch) { client in try await display(client, request, sample: sample) }
    }

    private func fetch(_ client: Client, _ request: ListPodSandboxStatsRequest) async throws -> [PodSandboxStats] {
        try await step("get pod stats") { try await client.call(CRIMethods.listPodSandboxStats, request).stats }
            .sorted { ($0.attributes?.id ?? "") < ($1.attributes?.id ?? "") }
    }

    private func display(_ client: Client, _ request: ListPodSandboxStatsRequest, sample: Duration) async throws {
        let first = try await fetch(client, request)
        if output != .table {
            try Output.print(Schema.list("stats", first.map { $0.protoJSON(useProtoNames: false) }, Schema.podSandboxStats), as: output)
            return
        }
        let old = Dictionary(first.map { ($0.attributes?.id ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        try await Task.sleep(for: sample)
        let second = try await fetch(client, request)
        var table = Table(header: ["POD", "POD ID", "CPU %", "MEM"])
        for stats in second {
            let id = stats.attributes?.id ?? ""
            let cpu = stats.linux?.cpu?.usageCoreNanoSeconds?.value ?? 0
            let memory = stats.linux?.memory?.workingSetBytes?.value ?? 0
            if cpu == 0 && memory == 0 { continue }
            guard let before = old[id] else { continue }
            let percent = try StatsSampling.cpuPercent(before.linux?.cpu, stats.linux?.cpu, step: "get pod stats: display pod stats")
            table.add([stats.attributes?.metadata?.name ?? "", Human.truncated(id), String(format: "%.2f", percent), Human.size(Double(memory))])
        }
        StatsSampling.show(table, watching: watch)
    }
}

/// What `stats` and `statsp` share, as crictl does it.
enum StatsSampling {
    /// Displays once, or, with `watch`, again every 500 ms until interrupted.
    static func loop(watch: Bool, _ display: (Client) async throws -> Void) async throws {
        try await GlobalOptions.current.withRuntime { client in
            repeat {
                try await display(client)
                if watch { try await Task.sleep(for: .milliseconds(500)) }
            } while watch
        }
    }

    /// crictl's CPU %: the growth of usageCoreNanoSeconds over the growth of the cpu timestamp, times 100
    /// (100 % = one core busy); 0 without usage.
    static func cpuPercent(_ before: CpuUsage?, _ after: CpuUsage?, step: String) throws -> Double {
        let used = after?.usageCoreNanoSeconds?.value ?? 0
        guard used != 0 else { return 0 }
        let elapsed = (after?.timestamp ?? 0) - (before?.timestamp ?? 0)
        guard elapsed != 0 else { throw CtlError("\(step): cpu stat is not updated during sample") }
        return (Double(used) - Double(before?.usageCoreNanoSeconds?.value ?? 0)) / Double(elapsed) * 100
    }

    /// crictl clears the screen before each table; only useful (and only done here) when watching.
    static func show(_ table: Table, watching: Bool) {
        if watching { print("\u{1B}[2J\u{1B}[H", terminator: "") }
        table.print()
    }
}

extension Schema {
    static let podSandboxStats: [Field] = [
        .message(
            "attributes",
            [.string("id"), .message("metadata", podSandboxMetadata), .map("labels"), .map("annotations")]),
        .message(
            "linux",
            [
                .message(
                    "cpu",
                    [.int64("timestamp"), .message("usageCoreNanoSeconds", uint64Value), .message("usageNanoCores", uint64Value)]),
                .message(
                    "memory",
                    [
                        .int64("timestamp"), .message("workingSetBytes", uint64Value), .message("availableBytes", uint64Value),
                        .message("usageBytes", uint64Value), .message("rssBytes", uint64Value),
                        .message("pageFaults", uint64Value), .message("majorPageFaults", uint64Value),
                    ]),
                .message("network", [.int64("timestamp"), .message("defaultInterface", networkInterface), .list("interfaces", of: networkInterface)]),
                .message("process", [.int64("timestamp"), .message("processCount", uint64Value)]),
                .list("containers", of: containerStats),
            ]),
    ]

    static let networkInterface: [Field] = [
        .string("name"), .message("rxBytes", uint64Value), .message("rxErrors", uint64Value), .message("txBytes", uint64Value),
        .message("txErrors", uint64Value),
    ]
}
