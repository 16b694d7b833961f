import ArgumentParser
import CRI
import GRPCCore

/// `runp POD-CONFIG`: RunPodSandbox from crictl's pod config file; prints the pod id.
struct RunPodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runp", abstract: "Run a new pod")

    @Option(name: [.customShort("r"), .long], help: "Runtime handler to use. Available options are defined by the container runtime.")
    var runtime: String = ""

    @Option(name: [.customShort("T"), .long], help: "Time to wait for the request to complete before cancelling it (default 4m).")
    var cancelTimeout: String?

    @Flag(help: .hidden)
    var dryRun = false

    @Argument(help: "pod-config.[json|yaml]")
    var podConfig: String

    func run() async throws {
        let config = try await step("load podSandboxConfig") { try ConfigFiles.podSandboxConfig(at: podConfig) }
        var request = RunPodSandboxRequest()
        request.config = config
        request.runtimeHandler = runtime
        if dryRun {
            print(request.jsonText(pretty: true))
            return
        }
        let budget = CallBudget.work(try cancelTimeout.map(parseCancelTimeout))
        let id = try await GlobalOptions.current.withRuntime { client in
            try await step("run pod sandbox") { try await client.call(CRIMethods.runPodSandbox, request, budget).podSandboxId }
        }
        print(id)
    }
}

func parseCancelTimeout(_ text: String) throws -> Duration {
    guard let value = parseDuration(text), value > .zero else {
        throw CtlError("invalid value \"\(text)\" for flag -cancel-timeout: use e.g. 30s, 2m")
    }
    return value
}

/// `stopp ID...`
struct StopPodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stopp", abstract: "Stop one or more running pods")

    @Argument(help: "POD-ID [POD-ID...]")
    var ids: [String] = []

    func validate() throws {
        if ids.isEmpty { throw missing("POD-ID is required") }
    }

    func run() async throws {
        try await GlobalOptions.current.withRuntime { client in
            for id in ids {
                try await stopPod(client, id)
            }
        }
    }
}

func stopPod(_ client: Client, _ id: String) async throws {
    guard !id.isEmpty else { throw CtlError("ID cannot be empty") }
    var request = StopPodSandboxRequest()
    request.podSandboxId = id
    _ = try await step("stopping the pod sandbox \"\(id)\"") { try await client.call(CRIMethods.stopPodSandbox, request, .work(nil)) }
    print("Stopped sandbox \(id)")
}

func removePod(_ client: Client, _ id: String) async throws {
    guard !id.isEmpty else { throw CtlError("ID cannot be empty") }
    var request = RemovePodSandboxRequest()
    request.podSandboxId = id
    _ = try await step("removing the pod sandbox \"\(id)\"") { try await client.call(CRIMethods.removePodSandbox, request, .work(nil)) }
    print("Removed sandbox \(id)")
}

/// `rmp [-f] [-a] [ID...]`: a ready pod is refused unless `-f`, which stops it first.
struct RemovePodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmp", abstract: "Remove one or more pods")

    @Flag(name: .shortAndLong, help: "Force removal of the pod sandbox, disregarding if running")
    var force = false

    @Flag(name: .shortAndLong, help: "Remove all pods")
    var all = false

    @Argument(help: "POD-ID [POD-ID...]")
    var ids: [String] = []

    func validate() throws {
        if ids.isEmpty && !all { throw missing("POD-ID is required (or --all)") }
    }

    func run() async throws {
        try await GlobalOptions.current.withRuntime { client in
            var ids = self.ids
            if all {
                ids = try await step("listing pod sandboxes") {
                    try await client.call(CRIMethods.listPodSandbox, ListPodSandboxRequest()).items.map(\.id)
                }
                if ids.isEmpty {
                    infoLog("No pods to remove")
                    return
                }
            }
            try await forEach(ids) { id in
                var statusRequest = PodSandboxStatusRequest()
                statusRequest.podSandboxId = id
                let status = try await step("getting sandbox status of pod \"\(id)\"") {
                    try await client.call(CRIMethods.podSandboxStatus, statusRequest)
                }
                if status.status?.state == .sandboxReady {
                    guard force else { throw CtlError("pod sandbox \"\(id)\" is running, please stop it first") }
                    try await stopPod(client, id)
                }
                try await removePod(client, id)
            }
        }
    }
}

/// Filters shared by `pods` and `inspectp`.
struct PodFilterOptions: ParsableArguments {
    @Option(help: "Filter by pod name regular expression pattern")
    var name: String?

    @Option(help: "Filter by pod namespace regular expression pattern")
    var namespace: String?

    @Option(name: [.customShort("s"), .long], help: "Filter by pod state (ready, notready)")
    var state: String?

    @Option(help: "Filter by key=value label (repeatable)")
    var label: [String] = []

    @Flag(name: [.customShort("l"), .long], help: "Show the most recently created pod")
    var latest = false

    @Option(name: [.customShort("n"), .long], help: "Show last n recently created pods. Set 0 for unlimited")
    var last: Int = 0

    /// ListPodSandbox with the server-side filters, then crictl's client-side name/namespace patterns,
    /// newest first, cut by --latest/--last.
    func list(_ client: Client, id: String = "") async throws -> [PodSandbox] {
        var filter = PodSandboxFilter()
        filter.id = id
        if let state {
            var value = PodSandboxStateValue()
            switch state.lowercased() {
            case "ready": value.state = .sandboxReady
            case "notready": value.state = .sandboxNotready
            default: throw CtlError("--state should be ready or notready")
            }
            filter.state = value
        }
        filter.labelSelector = try parseLabels(label)
        let namePattern = try Pattern(name)
        let namespacePattern = try Pattern(namespace)
        var request = ListPodSandboxRequest()
        request.filter = filter
        let items = try await step("call list sandboxes RPC") { try await client.call(CRIMethods.listPodSandbox, request).items }
        let filtered = items.filter { pod in
            guard let metadata = pod.metadata else { return false }
            return namePattern.matches(metadata.name) && namespacePattern.matches(metadata.namespace)
        }.sorted { $0.createdAt > $1.createdAt }
        return Array(filtered.prefix(truncateCount(filtered.count, latest: latest, last: last)))
    }
}

/// `pods`: crictl's columns POD ID, CREATED, STATE, NAME, NAMESPACE, ATTEMPT, RUNTIME.
struct ListPodsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pods", abstract: "List pods")

    @Option(help: "filter by pod id")
    var id: String = ""

    @OptionGroup var filters: PodFilterOptions

    @Flag(name: .shortAndLong, help: "Show verbose info for pods")
    var verbose = false

    @Flag(name: .shortAndLong, help: "List only pod IDs")
    var quiet = false

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .table

    @Flag(help: "Show output without truncating the ID")
    var noTrunc = false

    func run() async throws {
        let pods = try await GlobalOptions.current.withRuntime { client in
            try await step("listing pod sandboxes") { try await filters.list(client, id: id) }
        }
        switch output {
        case .json, .yaml:
            try Output.print(Schema.list("items", pods.map { $0.protoJSON(useProtoNames: false) }, Schema.podSandbox), as: output)
            return
        case .table:
            break
        }
        var table = Table(header: verbose || quiet ? nil : ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"])
        for pod in pods {
            if quiet {
                print(pod.id)
                continue
            }
            let state = try podStateName(pod.state)
            let runtime = pod.runtimeHandler.isEmpty ? "(default)" : pod.runtimeHandler
            if !verbose {
                table.add([
                    noTrunc ? pod.id : Human.truncated(pod.id), Human.ago(unixNanos: pod.createdAt), state,
                    pod.metadata?.name ?? "", pod.metadata?.namespace ?? "", String(pod.metadata?.attempt ?? 0), runtime,
                ])
                continue
            }
            print("ID: \(pod.id)")
            if let metadata = pod.metadata {
                if !metadata.name.isEmpty { print("Name: \(metadata.name)") }
                if !metadata.uid.isEmpty { print("UID: \(metadata.uid)") }
                if !metadata.namespace.isEmpty { print("Namespace: \(metadata.namespace)") }
                if metadata.attempt != 0 { print("Attempt: \(metadata.attempt)") }
            }
            print("Status: \(state)")
            print("Created: \(GoTime.string(unixNanos: pod.createdAt))")
            printMap("Labels", pod.labels)
            printMap("Annotations", pod.annotations)
            print("Runtime: \(runtime)")
            print()
        }
        table.print()
    }
}

func podStateName(_ state: PodSandboxState) throws -> String {
    switch state {
    case .sandboxReady: return "Ready"
    case .sandboxNotready: return "NotReady"
    default: throw CtlError("unknown pod state \"\(state.name)\"")
    }
}

/// `inspectp ID...`: PodSandboxStatus (verbose unless -q) as crictl shows it: `status` with an RFC 3339
/// `createdAt`, plus each verbose info entry.
struct InspectPodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspectp", abstract: "Display the status of one or more pods")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .json

    @Flag(name: .shortAndLong, help: "Do not show verbose information")
    var quiet = false

    @OptionGroup var filters: PodFilterOptions

    @Argument(help: "POD-ID [POD-ID...]")
    var ids: [String] = []

    func run() async throws {
        let documents = try await GlobalOptions.current.withRuntime { client in
            var ids = self.ids
            if ids.isEmpty {
                ids = try await step("listing pod sandboxes") { try await filters.list(client).map(\.id) }
            }
            guard !ids.isEmpty else { throw CtlError("No IDs provided or nothing found per filter") }
            var documents: [ProtoJSON] = []
            for id in ids {
                var request = PodSandboxStatusRequest()
                request.podSandboxId = id
                request.verbose = !quiet
                let response = try await step("get pod sandbox status \"\(id)\"") {
                    try await client.call(CRIMethods.podSandboxStatus, request)
                }
                if output == .table {
                    printPodStatusTable(response, verbose: !quiet)
                } else {
                    documents.append(Output.statusDocument(status: podStatusJSON(response.status ?? PodSandboxStatus()), info: response.info))
                }
            }
            return documents
        }
        try Output.printStatuses(documents, as: output)
    }
}

/// crictl's `marshalPodSandboxStatus`: all fields, `createdAt` as RFC 3339 text.
func podStatusJSON(_ status: PodSandboxStatus) -> ProtoJSON {
    let json = Schema.withDefaults(status.protoJSON(useProtoNames: false), Schema.podSandboxStatus)
    return Output.setting("createdAt", .string(GoTime.rfc3339Nano(unixNanos: status.createdAt)), in: nestedSorted(json))
}

/// Go re-marshals the status through a map: the top level keeps field order, nested objects sort their keys.
func nestedSorted(_ json: ProtoJSON) -> ProtoJSON {
    guard case .object(let members) = json else { return json }
    return .object(members.map { ($0.0, Output.sortedKeys($0.1)) })
}

private func printPodStatusTable(_ response: PodSandboxStatusResponse, verbose: Bool) {
    let status = response.status ?? PodSandboxStatus()
    print("ID: \(status.id)")
    if let metadata = status.metadata {
        if !metadata.name.isEmpty { print("Name: \(metadata.name)") }
        if !metadata.uid.isEmpty { print("UID: \(metadata.uid)") }
        if !metadata.namespace.isEmpty { print("Namespace: \(metadata.namespace)") }
        print("Attempt: \(metadata.attempt)")
    }
    print("Status: \(status.state.name)")
    print("Created: \(GoTime.string(unixNanos: status.createdAt))")
    if let network = status.network {
        print("IP Addresses: \(network.ip)")
        for ip in network.additionalIps { print("Additional IP: \(ip.ip)") }
    }
    printMap("Labels", status.labels)
    printMap("Annotations", status.annotations)
    if verbose {
        let entries = response.info.keys.sorted().map { "\($0):\(response.info[$0]!)" }
        print("Info: map[\(entries.joined(separator: " "))]")
    }
}
