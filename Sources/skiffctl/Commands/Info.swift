import ArgumentParser
import CRI

/// `info`: the runtime's Status as JSON: `status` (conditions) plus each verbose info entry, parsed as JSON
/// where it is JSON, as crictl shows them.
struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Display information of the container runtime.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .shortAndLong, help: "Output format: json or yaml.")
    var output: OutputFormat = .json

    func run() async throws {
        var request = StatusRequest()
        request.verbose = true
        let response = try await global.withRuntime { client in try await client.call(CRIMethods.status, request) }
        var fields: [(String, ProtoJSON)] = []
        if let status = response.status { fields.append(("status", status.protoJSON(useProtoNames: false))) }
        for key in response.info.keys.sorted() {
            let raw = response.info[key]!
            fields.append((key, (try? ProtoJSON.parse(raw)) ?? .string(raw)))
        }
        try Output.print(.object(fields), as: output)
    }
}

/// `imagefsinfo`: where images live and how much they use.
struct ImageFsInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "imagefsinfo", abstract: "Return image filesystem info.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .shortAndLong, help: "Output format: json or yaml.")
    var output: OutputFormat = .json

    func run() async throws {
        let response = try await global.withImages { client in try await client.call(CRIMethods.imageFsInfo, ImageFsInfoRequest()) }
        try Output.print(response.protoJSON(useProtoNames: false), as: output)
    }
}
