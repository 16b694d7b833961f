import ArgumentParser
import CRI

/// crictl's two metrics verbs print the response messages as documents only (no table): JSON by default.
enum MetricsOutputFormat: String, ExpressibleByArgument, CaseIterable {
    case json, yaml

    var format: OutputFormat { self == .json ? .json : .yaml }
}

/// `metricdescs [-o json|yaml]`: the runtime's ListMetricDescriptorsResponse, as crictl prints it.
struct MetricDescsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metricdescs",
        abstract: "List metric descriptors. Returns information about the metrics available through the CRI.")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml")
    var output: MetricsOutputFormat = .json

    func run() async throws {
        let response = try await GlobalOptions.current.withRuntime { client in
            try await step("get metric descriptors: list metric descriptors") {
                try await client.call(CRIMethods.listMetricDescriptors, ListMetricDescriptorsRequest())
            }
        }
        let items = response.descriptors.map { $0.protoJSON(useProtoNames: false) }
        try Output.print(Schema.list("descriptors", items, Schema.metricDescriptor), as: output.format)
    }
}

/// `metricsp [-o json|yaml] [-w]`: the runtime's ListPodSandboxMetricsResponse, as crictl prints it; with
/// `-w`, again every 500 ms until interrupted.
struct PodMetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metricsp",
        abstract: "List pod metrics. Metrics are unstructured key/value pairs gathered by CRI meant to replace cAdvisor's /metrics/cadvisor endpoint.")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml")
    var output: MetricsOutputFormat = .json

    @Flag(name: .shortAndLong, help: "Watch pod metrics")
    var watch = false

    func run() async throws {
        try await GlobalOptions.current.withRuntime { client in
            repeat {
                let response = try await step("get pod metrics: list pod sandbox metrics") {
                    try await client.call(CRIMethods.listPodSandboxMetrics, ListPodSandboxMetricsRequest())
                }
                let items = response.podMetrics.map { $0.protoJSON(useProtoNames: false) }
                try Output.print(Schema.list("podMetrics", items, Schema.podSandboxMetrics), as: output.format)
                if watch { try await Task.sleep(for: .milliseconds(500)) }
            } while watch
        }
    }
}

extension Schema {
    static let metricDescriptor: [Field] = [.string("name"), .string("help"), .list("labelKeys")]

    static let metric: [Field] = [
        .string("name"), .int64("timestamp"), .enumeration("metricType", zero: "COUNTER"), .list("labelValues"),
        .message("value", uint64Value),
    ]

    static let podSandboxMetrics: [Field] = [
        .string("podSandboxId"), .list("metrics", of: metric),
        .list("containerMetrics", of: [.string("containerId"), .list("metrics", of: metric)]),
    ]
}
