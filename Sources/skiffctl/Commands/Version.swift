import ArgumentParser
import CRI

/// `version`: the runtime's Version, as crictl prints it.
struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Display runtime version information")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml (default: text)")
    var output: OutputFormat?

    func run() async throws {
        let response = try await GlobalOptions.current.withRuntime { client in
            try await step("get the runtime version") { try await client.call(CRIMethods.version, VersionRequest()) }
        }
        if let output, output != .table {
            try Output.print(
                Schema.withDefaults(
                    response.protoJSON(useProtoNames: false),
                    [.string("version"), .string("runtimeName"), .string("runtimeVersion"), .string("runtimeApiVersion")]),
                as: output)
            return
        }
        print("Version:  \(response.version)")
        print("RuntimeName:  \(response.runtimeName)")
        print("RuntimeVersion:  \(response.runtimeVersion)")
        print("RuntimeApiVersion:  \(response.runtimeApiVersion)")
    }
}
