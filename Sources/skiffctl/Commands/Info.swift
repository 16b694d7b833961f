import ArgumentParser
import CRI

/// `info`: the runtime's Status as crictl shows it: `status` (conditions), `runtimeHandlers`, `features`
/// and each verbose info entry (parsed where it is a JSON object), keys sorted.
struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Display information of the container runtime")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml")
    var output: OutputFormat = .json

    @Flag(name: .shortAndLong, help: "Do not show verbose information")
    var quiet = false

    func run() async throws {
        var request = StatusRequest()
        request.verbose = !quiet
        let response = try await GlobalOptions.current.withRuntime { client in
            try await step("get status") { try await client.call(CRIMethods.status, request) }
        }
        var document = Output.statusDocument(status: response.status?.protoJSON(useProtoNames: false), info: response.info)
        if !response.runtimeHandlers.isEmpty {
            document = Output.setting("runtimeHandlers", .array(
                response.runtimeHandlers.map {
                    Schema.withDefaults(
                        $0.protoJSON(useProtoNames: false),
                        [.string("name"), .message("features", [.bool("recursiveReadOnlyMounts"), .bool("userNamespaces")])])
                }), in: document)
        }
        if let features = response.features {
            document = Output.setting("features", features.protoJSON(useProtoNames: false), in: document)
        }
        try Output.print(Output.sortedTopLevel(document), as: output == .table ? .json : output)
    }
}

/// `imagefsinfo`: where images (and container layers) live and how much they use.
struct ImageFsInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "imagefsinfo", abstract: "Return image filesystem info")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .json

    func run() async throws {
        let response = try await GlobalOptions.current.withImages { client in
            try await step("image filesystem info request") { try await client.call(CRIMethods.imageFsInfo, ImageFsInfoRequest()) }
        }
        if output == .table {
            printFilesystems("Container", response.containerFilesystems)
            printFilesystems("Image", response.imageFilesystems)
            return
        }
        let status = Schema.withDefaults(
            response.protoJSON(useProtoNames: false),
            [.list("imageFilesystems", of: Schema.filesystemUsage), .list("containerFilesystems", of: Schema.filesystemUsage)])
        try Output.print(Output.statusDocument(status: Output.sortedKeys(status), info: [:]), as: output)
    }

    private func printFilesystems(_ label: String, _ filesystems: [FilesystemUsage]) {
        print("\(label) Filesystem ")
        for (i, fs) in filesystems.enumerated() {
            print("TimeStamp[\(i)]: \(fs.timestamp)")
            print("Disk[\(i)]: \(Human.size(Double(fs.usedBytes?.value ?? 0)))")
            print("Inodes[\(i)]: \(fs.inodesUsed?.value ?? 0)")
            print("Mountpoint[\(i)]: \(fs.fsId?.mountpoint ?? "")")
        }
    }
}
