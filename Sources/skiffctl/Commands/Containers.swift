import ArgumentParser
import CRI
import Foundation
import GRPCCore

/// crictl's registry credential flags (pull, create, run).
struct PullOptions: ParsableArguments {
    @Option(help: "Use USERNAME[:PASSWORD] for accessing the registry (env CRICTL_CREDS)")
    var creds: String?

    @Option(help: "Use AUTH_STRING for accessing the registry. AUTH_STRING is a base64 encoded 'USERNAME[:PASSWORD]' (env CRICTL_AUTH)")
    var auth: String?

    @Option(name: [.customShort("u"), .long], help: "Use USERNAME for accessing the registry. The password will be requested on the command line")
    var username: String?

    @Option(name: [.customLong("pull-timeout")], help: "Maximum time to be used for pulling the image, disabled if set to 0s (env CRICTL_PULL_TIMEOUT)")
    var pullTimeout: String?

    /// crictl's getAuth: `--username` prompts for the password; `--creds` and `--auth` exclude each other.
    func authConfig() throws -> AuthConfig? {
        if let username, !username.isEmpty {
            let password = try readPassword(prompt: "Enter Password:")
            var auth = AuthConfig()
            auth.username = username
            auth.password = password
            return auth
        }
        let creds = self.creds ?? environment("CRICTL_CREDS")
        let authString = self.auth ?? environment("CRICTL_AUTH")
        if let creds, !creds.isEmpty, let authString, !authString.isEmpty {
            throw CtlError("both `--creds` and `--auth` are specified")
        }
        if let creds, !creds.isEmpty {
            var auth = AuthConfig()
            if let colon = creds.firstIndex(of: ":") {
                auth.username = String(creds[..<colon])
                auth.password = String(creds[creds.index(after: colon)...])
                if auth.username.isEmpty { throw CtlError("username can't be empty") }
            } else {
                auth.username = creds
            }
            return auth
        }
        if let authString, !authString.isEmpty {
            var auth = AuthConfig()
            auth.auth = authString
            return auth
        }
        return nil
    }

    func timeout() throws -> Duration? {
        guard let text = pullTimeout ?? environment("CRICTL_PULL_TIMEOUT") else { return nil }
        guard let value = parseDuration(text), value >= .zero else {
            throw CtlError("invalid value \"\(text)\" for flag -pull-timeout")
        }
        return value == .zero ? nil : value
    }
}

/// Reads a line from the terminal without echo.
func readPassword(prompt: String) throws -> String {
    FileHandle.standardError.write(Data(prompt.utf8))
    var saved = termios()
    let isTerminal = tcgetattr(STDIN_FILENO, &saved) == 0
    if isTerminal {
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &silent)
    }
    defer {
        if isTerminal {
            tcsetattr(STDIN_FILENO, TCSANOW, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }
    guard let line = readLine(strippingNewline: true) else { throw CtlError("no password given on stdin") }
    return line
}

/// PullImage as crictl sends it; returns the image ref.
func pullImage(
    _ client: Client, _ image: String, auth: AuthConfig?, sandbox: PodSandboxConfig?, annotations: [String: String],
    timeout: Duration?
) async throws -> String {
    var spec = ImageSpec()
    spec.image = image
    spec.annotations = annotations
    var request = PullImageRequest()
    request.image = spec
    request.auth = auth
    request.sandboxConfig = sandbox
    return try await client.call(CRIMethods.pullImage, request, .unbounded(timeout)).imageRef
}

/// Whether the runtime already has `image` (ImageStatus answers an empty image for an unknown one).
func hasImage(_ client: Client, _ image: String) async throws -> Bool {
    var spec = ImageSpec()
    spec.image = image
    var request = ImageStatusRequest()
    request.image = spec
    return try await client.call(CRIMethods.imageStatus, request).image != nil
}

enum PullPolicy {
    case never, ifMissing, always
}

/// crictl's CreateContainer: loads both configs, pulls as asked, sends CreateContainer; returns the id.
func createContainer(
    runtime: Client, images: Client?, podID: String, containerConfigPath: String, podConfigPath: String?,
    pull: PullPolicy, pullOptions: PullOptions, budget: CallBudget
) async throws -> String {
    let request = try createRequest(podID: podID, containerConfigPath: containerConfigPath, podConfigPath: podConfigPath)
    let config = request.config!
    if let images, pull != .never {
        var wanted = [config.image!.image]
        for mount in config.mounts where !(mount.image?.image ?? "").isEmpty {
            infoLog("Pulling image \(mount.image!.image) to be mounted to container path: \(mount.containerPath)")
            wanted.append(mount.image!.image)
        }
        let auth = try pullOptions.authConfig()
        for image in wanted {
            if pull == .ifMissing, try await step("image status for \"\(image)\"", { try await hasImage(images, image) }) {
                continue
            }
            infoLog("Pulling container image: \(image)")
            _ = try await step("pulling image \"\(image)\"") {
                try await pullImage(
                    images, image, auth: auth, sandbox: request.sandboxConfig, annotations: config.image?.annotations ?? [:],
                    timeout: try pullOptions.timeout())
            }
        }
    }
    return try await step("creating container") { try await runtime.call(CRIMethods.createContainer, request, budget).containerId }
}

func createRequest(podID: String, containerConfigPath: String, podConfigPath: String?) throws -> CreateContainerRequest {
    var config = try ConfigFiles.containerConfig(at: containerConfigPath)
    if config.image!.userSpecifiedImage.isEmpty { config.image!.userSpecifiedImage = config.image!.image }
    var request = CreateContainerRequest()
    request.podSandboxId = podID
    request.config = config
    if let podConfigPath { request.sandboxConfig = try ConfigFiles.podSandboxConfig(at: podConfigPath) }
    return request
}

/// `create POD-ID CONTAINER-CONFIG POD-CONFIG`: prints the container id. No pull unless `--with-pull`
/// (crictl's default, `pull-image-on-create: false`).
struct CreateContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a new container")

    @Flag(help: "Do not pull the image on container creation")
    var noPull = false

    @Flag(help: "Pull the image on container creation")
    var withPull = false

    @Option(name: [.customShort("T"), .long], help: "Time to wait for the request to complete before cancelling it (default 4m).")
    var cancelTimeout: String?

    @OptionGroup var pullOptions: PullOptions

    @Flag(help: .hidden)
    var dryRun = false

    @Argument(help: "POD-ID")
    var podID: String

    @Argument(help: "container-config.[json|yaml]")
    var containerConfig: String

    @Argument(help: "pod-config.[json|yaml]")
    var podConfig: String

    func run() async throws {
        if noPull && withPull { throw CtlError("conflict: no-pull and with-pull are both set") }
        if dryRun {
            print(try createRequest(podID: podID, containerConfigPath: containerConfig, podConfigPath: podConfig).jsonText(pretty: true))
            return
        }
        let budget = CallBudget.work(try cancelTimeout.map(parseCancelTimeout))
        let global = GlobalOptions.current
        let id = try await global.withRuntime { runtime in
            if withPull {
                return try await global.withImages { images in
                    try await createContainer(
                        runtime: runtime, images: images, podID: podID, containerConfigPath: containerConfig,
                        podConfigPath: podConfig, pull: .always, pullOptions: pullOptions, budget: budget)
                }
            }
            return try await createContainer(
                runtime: runtime, images: nil, podID: podID, containerConfigPath: containerConfig, podConfigPath: podConfig,
                pull: .never, pullOptions: pullOptions, budget: budget)
        }
        print(id)
    }
}

func startContainer(_ client: Client, _ id: String) async throws {
    guard !id.isEmpty else { throw CtlError("ID cannot be empty") }
    var request = StartContainerRequest()
    request.containerId = id
    _ = try await step("starting the container \"\(id)\"") { try await client.call(CRIMethods.startContainer, request, .work(nil)) }
    print(id)
}

func stopContainer(_ client: Client, _ id: String, timeout: Int64) async throws {
    guard !id.isEmpty else { throw CtlError("ID cannot be empty") }
    var request = StopContainerRequest()
    request.containerId = id
    request.timeout = timeout
    _ = try await step("stopping the container \"\(id)\"") {
        try await client.call(CRIMethods.stopContainer, request, .work(nil), extra: .seconds(max(timeout, 0)))
    }
    print(id)
}

/// `start ID...`
struct StartContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start one or more created containers")

    @Argument(help: "CONTAINER-ID [CONTAINER-ID...]")
    var ids: [String] = []

    func run() async throws {
        guard !ids.isEmpty else { throw CtlError("ID cannot be empty") }
        try await GlobalOptions.current.withRuntime { client in
            for id in ids { try await startContainer(client, id) }
        }
    }
}

/// `stop [-t N] [-a] ID...`: StopContainer with a grace period of N seconds (0: kill at once).
struct StopContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop one or more running containers")

    @Option(name: [.customShort("t"), .long], help: "Seconds to wait to kill the container after a graceful stop is requested")
    var timeout: Int64 = 0

    @Flag(name: .shortAndLong, help: "Stop all running containers")
    var all = false

    @Argument(help: "CONTAINER-ID [CONTAINER-ID...]")
    var ids: [String] = []

    func run() async throws {
        if all && !ids.isEmpty { throw CtlError("cannot specify CONTAINER-ID(s) when using --all") }
        if !all && ids.isEmpty { throw CtlError("you must specify at least one CONTAINER-ID or use --all") }
        try await GlobalOptions.current.withRuntime { client in
            var ids = self.ids
            if all {
                let query = ContainerQuery(state: "running")
                ids = try await step("listing containers") { try await query.list(client, images: nil).map(\.id) }
                if ids.isEmpty {
                    print("No running containers found.")
                    return
                }
            }
            for id in ids { try await stopContainer(client, id, timeout: timeout) }
        }
    }
}

/// `rm [-f] [-a] [-k] ID...`: a running container is refused unless `-f` (stop with no grace first). The
/// log file and its rotations are removed unless `--keep-logs`, as crictl does.
struct RemoveContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove one or more containers")

    @Flag(name: .shortAndLong, help: "Force removal of the container, disregarding if running")
    var force = false

    @Flag(name: .shortAndLong, help: "Remove all containers")
    var all = false

    @Flag(name: [.customShort("k"), .long], help: "Preserve the container log file and its rotations")
    var keepLogs = false

    @Argument(help: "CONTAINER-ID [CONTAINER-ID...]")
    var ids: [String] = []

    func validate() throws {
        if ids.isEmpty && !all { throw missing("CONTAINER-ID is required (or --all)") }
    }

    func run() async throws {
        try await GlobalOptions.current.withRuntime { client in
            var ids = self.ids
            if all {
                ids = try await step("listing containers") {
                    try await client.call(CRIMethods.listContainers, ListContainersRequest()).containers.map(\.id)
                }
                if ids.isEmpty {
                    infoLog("No containers to remove")
                    return
                }
            }
            try await forEach(ids) { id in
                var statusRequest = ContainerStatusRequest()
                statusRequest.containerId = id
                let status = try await step("getting container status \"\(id)\"") {
                    try await client.call(CRIMethods.containerStatus, statusRequest)
                }.status
                if status?.state == .containerRunning {
                    guard force else { throw CtlError("container \"\(id)\" is running, please stop it first") }
                    try await stopContainer(client, id, timeout: 0)
                }
                var request = RemoveContainerRequest()
                request.containerId = id
                _ = try await step("removing container \"\(id)\"") { try await client.call(CRIMethods.removeContainer, request, .work(nil)) }
                if !keepLogs, let logPath = status?.logPath, !logPath.isEmpty {
                    removeLogs(logPath, container: id)
                }
                print(id)
            }
        }
    }

    private func removeLogs(_ logPath: String, container id: String) {
        let url = URL(fileURLWithPath: logPath)
        let directory = url.deletingLastPathComponent().path
        let base = url.lastPathComponent
        let rotations = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(base + ".") }
            .map { directory + "/" + $0 }
        for file in rotations + [logPath] where FileManager.default.fileExists(atPath: file) {
            do {
                try FileManager.default.removeItem(atPath: file)
            } catch {
                FileHandle.standardError.write(Data("ERRO removing log file \(file) for container \"\(id)\" failed: \(error.localizedDescription)\n".utf8))
            }
        }
    }
}

/// Filters shared by `ps`, `inspect`, `exec` and `stop -a`.
struct ContainerListOptions: ParsableArguments {
    @Option(help: "Filter by container id")
    var id: String = ""

    @Option(help: "Filter by container name regular expression pattern")
    var name: String?

    @Option(name: [.customShort("p"), .long], help: "Filter by pod id")
    var pod: String = ""

    @Option(help: "Filter by pod namespace regular expression pattern")
    var namespace: String?

    @Option(help: "Filter by container image")
    var image: String?

    @Option(name: [.customShort("s"), .long], help: "Filter by container state (created, running, exited, unknown)")
    var state: String?

    @Option(help: "Filter by key=value label (repeatable)")
    var label: [String] = []

    @Flag(name: .shortAndLong, help: "Show all containers")
    var all = false

    @Flag(name: [.customShort("l"), .long], help: "Show the most recently created container (includes all states)")
    var latest = false

    @Option(name: [.customShort("n"), .long], help: "Show last n recently created containers (includes all states). Set 0 for unlimited.")
    var last: Int = 0

    var query: ContainerQuery {
        ContainerQuery(
            id: id, name: name, pod: pod, namespace: namespace, image: image, state: state, labels: label, all: all,
            latest: latest, last: last)
    }

    func list(_ client: Client, images: Client?) async throws -> [Container] {
        try await query.list(client, images: images)
    }

    var needsImages: Bool { !(image ?? "").isEmpty }
}

/// A container listing as crictl makes it; plain values so that verbs can build one without parsing.
struct ContainerQuery: Sendable {
    var id = ""
    var name: String?
    var pod = ""
    var namespace: String?
    var image: String?
    var state: String?
    var labels: [String] = []
    var all = false
    var latest = false
    var last = 0

    /// crictl's ListContainers: running only unless -a, --state, --latest or --last; then the name,
    /// namespace and image filters on the client side; newest first.
    func list(_ client: Client, images: Client?) async throws -> [Container] {
        var filter = ContainerFilter()
        filter.id = id
        filter.podSandboxId = pod
        if !all && state == nil {
            var value = ContainerStateValue()
            value.state = .containerRunning
            filter.state = value
        }
        if let state {
            var value = ContainerStateValue()
            switch state.lowercased() {
            case "created": value.state = .containerCreated
            case "running": value.state = .containerRunning
            case "exited": value.state = .containerExited
            case "unknown": value.state = .containerUnknown
            default: throw CtlError("--state should be one of created, running, exited or unknown")
            }
            filter.state = value
        }
        if latest || last > 0 { filter.state = nil }
        filter.labelSelector = try parseLabels(labels)
        var request = ListContainersRequest()
        request.filter = filter
        let containers = try await step("call list containers RPC") {
            try await client.call(CRIMethods.listContainers, request).containers
        }
        let namePattern = try Pattern(name)
        let namespacePattern = try Pattern(namespace)
        var wantedImageID: String?
        if let image, !image.isEmpty, let images {
            wantedImageID = try await imageID(images, image) ?? ""
        }
        var filtered: [Container] = []
        for container in containers {
            guard let metadata = container.metadata else { continue }
            if let wantedImageID, let images {
                let id = try await imageID(images, container.image?.image ?? "")
                if id == nil || id != wantedImageID { continue }
            }
            if namePattern.matches(metadata.name) && namespacePattern.matches(podNamespace(container.labels)) {
                filtered.append(container)
            }
        }
        filtered.sort { $0.createdAt > $1.createdAt }
        return Array(filtered.prefix(truncateCount(filtered.count, latest: latest, last: last)))
    }

    private func imageID(_ client: Client, _ image: String) async throws -> String? {
        var spec = ImageSpec()
        spec.image = image
        var request = ImageStatusRequest()
        request.image = spec
        return try await step("image status for \"\(image)\"") { try await client.call(CRIMethods.imageStatus, request).image?.id }
    }
}

func podNamespace(_ labels: [String: String]) -> String { labels["io.kubernetes.pod.namespace"] ?? "unknown" }
func podName(_ labels: [String: String]) -> String { labels["io.kubernetes.pod.name"] ?? "unknown" }

/// `ps`: crictl's columns CONTAINER, IMAGE, CREATED, STATE, NAME, ATTEMPT, POD ID, POD, NAMESPACE.
struct ListContainersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers")

    @OptionGroup var filters: ContainerListOptions

    @Flag(name: .shortAndLong, help: "Show verbose information for containers")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Only display container IDs")
    var quiet = false

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .table

    @Flag(help: "Show output without truncating the ID")
    var noTrunc = false

    @Flag(name: [.customShort("r"), .long], help: "Show image path instead of image id")
    var resolveImagePath = false

    func run() async throws {
        let global = GlobalOptions.current
        let needsImages = filters.needsImages || resolveImagePath
        let (containers, repoImages): ([Container], [String: String]) = try await global.withRuntime { runtime in
            let list: @Sendable (Client?) async throws -> ([Container], [String: String]) = { images in
                let containers = try await step("listing containers") { try await filters.list(runtime, images: images) }
                var repoImages: [String: String] = [:]
                if resolveImagePath, let images {
                    for container in containers {
                        let image = container.image?.image ?? ""
                        if repoImages[image] == nil { repoImages[image] = try await repoImage(images, image) }
                    }
                }
                return (containers, repoImages)
            }
            if needsImages { return try await global.withImages { images in try await list(images) } }
            return try await list(nil)
        }
        switch output {
        case .json, .yaml:
            try Output.print(
                Schema.list("containers", containers.map { $0.protoJSON(useProtoNames: false) }, Schema.container), as: output)
            return
        case .table:
            break
        }
        var table = Table(
            header: verbose || quiet ? nil : ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD", "NAMESPACE"])
        for container in containers {
            if quiet {
                print(container.id)
                continue
            }
            let created = Human.ago(unixNanos: container.createdAt)
            let state = try containerStateName(container.state)
            if !verbose {
                var image = container.image?.image ?? ""
                var id = container.id
                var podID = container.podSandboxId
                if !noTrunc {
                    id = Human.truncated(id)
                    podID = Human.truncated(podID)
                    if isDigest(image) { image = Human.truncated(image, prefix: "sha256:") }
                }
                if resolveImagePath { image = repoImages[container.image?.image ?? ""] ?? image }
                table.add([
                    id, image, created, state, container.metadata?.name ?? "", String(container.metadata?.attempt ?? 0), podID,
                    podName(container.labels), podNamespace(container.labels),
                ])
                continue
            }
            print("ID: \(container.id)")
            print("PodID: \(container.podSandboxId)")
            print("Namespace: \(podNamespace(container.labels))")
            if let metadata = container.metadata {
                if !metadata.name.isEmpty { print("Name: \(metadata.name)") }
                print("Attempt: \(metadata.attempt)")
            }
            print("State: \(state)")
            if let image = container.image { print("Image: \(image.image)") }
            print("Created: \(created)")
            printMap("Labels", container.labels)
            printMap("Annotations", container.annotations)
            print()
        }
        table.print()
    }
}

/// `sha256:<64 hex>`, which crictl shortens in `ps` like an id.
func isDigest(_ image: String) -> Bool {
    guard image.hasPrefix("sha256:") else { return false }
    let hex = image.dropFirst(7)
    return hex.count == 64 && hex.allSatisfy(\.isHexDigit)
}

/// The first repo tag of an image, as `ps -r` shows it.
func repoImage(_ client: Client, _ image: String) async throws -> String {
    var spec = ImageSpec()
    spec.image = image
    var request = ImageStatusRequest()
    request.image = spec
    let status = try await step("failed to fetch repo image") { try await client.call(CRIMethods.imageStatus, request) }
    return status.image?.repoTags.first ?? image
}

func containerStateName(_ state: ContainerState) throws -> String {
    switch state {
    case .containerCreated: return "Created"
    case .containerRunning: return "Running"
    case .containerExited: return "Exited"
    case .containerUnknown: return "Unknown"
    default: throw CtlError("unknown container state \"\(state.name)\"")
    }
}

/// `inspect ID...`: ContainerStatus (verbose unless -q) with RFC 3339 times, as crictl shows it.
struct InspectContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Display the status of one or more containers")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .json

    @Flag(name: .shortAndLong, help: "Do not show verbose information")
    var quiet = false

    @OptionGroup var filters: ContainerListOptions

    @Argument(help: "CONTAINER-ID [CONTAINER-ID...]")
    var ids: [String] = []

    func run() async throws {
        let global = GlobalOptions.current
        let documents = try await global.withRuntime { client in
            var ids = self.ids
            if ids.isEmpty {
                ids = try await step("listing containers") {
                    if filters.needsImages { return try await global.withImages { images in try await filters.list(client, images: images).map(\.id) } }
                    return try await filters.list(client, images: nil).map(\.id)
                }
            }
            guard !ids.isEmpty else { throw CtlError("No IDs provided or nothing found per filter") }
            var documents: [ProtoJSON] = []
            for id in ids {
                var request = ContainerStatusRequest()
                request.containerId = id
                request.verbose = !quiet
                let response = try await step("get container status \"\(id)\"") { try await client.call(CRIMethods.containerStatus, request) }
                if output == .table {
                    printContainerStatusTable(response, verbose: !quiet)
                } else {
                    documents.append(
                        Output.statusDocument(status: containerStatusJSON(response.status ?? ContainerStatus()), info: response.info))
                }
            }
            return documents
        }
        try Output.printStatuses(documents, as: output)
    }
}

/// crictl's `marshalContainerStatus`: all fields; created/started/finished as RFC 3339 text (Go's zero time
/// when not started / not finished).
func containerStatusJSON(_ status: ContainerStatus) -> ProtoJSON {
    var json = nestedSorted(Schema.withDefaults(status.protoJSON(useProtoNames: false), Schema.containerStatus))
    json = Output.setting("createdAt", .string(GoTime.rfc3339Nano(unixNanos: status.createdAt)), in: json)
    let started = status.state != .containerCreated ? GoTime.rfc3339Nano(unixNanos: status.startedAt) : GoTime.zero
    let finishedKnown =
        status.state == .containerExited || (status.state == .containerUnknown && status.finishedAt > 0)
    let finished = finishedKnown ? GoTime.rfc3339Nano(unixNanos: status.finishedAt) : GoTime.zero
    json = Output.setting("startedAt", .string(started), in: json)
    return Output.setting("finishedAt", .string(finished), in: json)
}

private func printContainerStatusTable(_ response: ContainerStatusResponse, verbose: Bool) {
    let status = response.status ?? ContainerStatus()
    print("ID: \(status.id)")
    if let metadata = status.metadata {
        if !metadata.name.isEmpty { print("Name: \(metadata.name)") }
        if metadata.attempt != 0 { print("Attempt: \(metadata.attempt)") }
    }
    print("State: \(status.state.name)")
    print("Created: \(Human.ago(unixNanos: status.createdAt))")
    if status.state != .containerCreated { print("Started: \(Human.ago(unixNanos: status.startedAt))") }
    if status.state == .containerExited {
        if status.finishedAt > 0 { print("Finished: \(Human.ago(unixNanos: status.finishedAt))") }
        print("Exit Code: \(status.exitCode)")
    }
    printMap("Labels", status.labels)
    printMap("Annotations", status.annotations)
    if verbose {
        let entries = response.info.keys.sorted().map { "\($0):\(response.info[$0]!)" }
        print("Info: map[\(entries.joined(separator: " "))]")
    }
}

/// `update [resource flags] ID...`: UpdateContainerResources with the Linux resources given.
struct UpdateContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Update one or more running containers")

    @Option(help: "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default")
    var cpuPeriod: Int64 = 0

    @Option(help: "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period")
    var cpuQuota: Int64 = 0

    @Option(help: "CPU shares (relative weight vs. other containers)")
    var cpuShare: Int64 = 0

    @Option(help: "Memory limit (in bytes)")
    var memory: Int64 = 0

    @Option(help: "CPU(s) to use")
    var cpusetCpus: String = ""

    @Option(help: "Memory node(s) to use")
    var cpusetMems: String = ""

    @Option(help: "OOM Killer score to use")
    var oomScoreAdj: Int64 = 0

    @Argument(help: "CONTAINER-ID [CONTAINER-ID...]")
    var ids: [String] = []

    func run() async throws {
        guard !ids.isEmpty else { throw CtlError("ID cannot be empty") }
        var resources = LinuxContainerResources()
        resources.cpuPeriod = cpuPeriod
        resources.cpuQuota = cpuQuota
        resources.cpuShares = cpuShare
        resources.memoryLimitInBytes = memory
        resources.cpusetCpus = cpusetCpus
        resources.cpusetMems = cpusetMems
        resources.oomScoreAdj = oomScoreAdj
        try await GlobalOptions.current.withRuntime { client in
            for id in ids {
                var request = UpdateContainerResourcesRequest()
                request.containerId = id
                request.linux = resources
                _ = try await step("updating container resources for \"\(id)\"") {
                    try await client.call(CRIMethods.updateContainerResources, request, .work(nil))
                }
                print(id)
            }
        }
    }
}

/// `run CONTAINER-CONFIG POD-CONFIG`: pulls the image if the runtime lacks it, runs the pod, creates and
/// starts the container; prints the container id. If a step after RunPodSandbox fails, the new pod is
/// stopped and removed again so that nothing is left half made.
struct RunContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a new container inside a sandbox")

    @Option(name: [.customShort("r"), .long], help: "Runtime handler to use. Available options are defined by the container runtime.")
    var runtime: String = ""

    @Flag(help: "Do not pull the image")
    var noPull = false

    @Flag(help: "Pull the image even if the runtime has it")
    var withPull = false

    @Option(name: [.customShort("T"), .long], help: "Time to wait for each request to complete before cancelling it (default 4m).")
    var cancelTimeout: String?

    @OptionGroup var pullOptions: PullOptions

    @Argument(help: "container-config.[json|yaml]")
    var containerConfig: String

    @Argument(help: "pod-config.[json|yaml]")
    var podConfig: String

    func run() async throws {
        if noPull && withPull { throw CtlError("conflict: no-pull and with-pull are both set") }
        let budget = CallBudget.work(try cancelTimeout.map(parseCancelTimeout))
        let podSandboxConfig = try await step("load podSandboxConfig") { try ConfigFiles.podSandboxConfig(at: podConfig) }
        _ = try await step("running container") { try ConfigFiles.containerConfig(at: containerConfig) }
        let global = GlobalOptions.current
        let policy: PullPolicy = noPull ? .never : withPull ? .always : .ifMissing
        try await global.withRuntime { runtimeClient in
            try await global.withImages { images in
                var request = RunPodSandboxRequest()
                request.config = podSandboxConfig
                request.runtimeHandler = runtime
                let podID = try await step("run pod sandbox") {
                    try await runtimeClient.call(CRIMethods.runPodSandbox, request, budget).podSandboxId
                }
                do {
                    let id = try await createContainer(
                        runtime: runtimeClient, images: images, podID: podID, containerConfigPath: containerConfig,
                        podConfigPath: podConfig, pull: policy, pullOptions: pullOptions, budget: budget)
                    try await startContainer(runtimeClient, id)
                } catch {
                    // Leave no half-made pod behind; report the first failure.
                    var stop = StopPodSandboxRequest()
                    stop.podSandboxId = podID
                    var remove = RemovePodSandboxRequest()
                    remove.podSandboxId = podID
                    _ = try? await runtimeClient.call(CRIMethods.stopPodSandbox, stop, .work(nil))
                    _ = try? await runtimeClient.call(CRIMethods.removePodSandbox, remove, .work(nil))
                    throw error
                }
            }
        }
    }
}
