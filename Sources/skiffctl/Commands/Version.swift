import ArgumentParser
import CRI

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Display runtime version information.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .shortAndLong, help: "Output format: json, yaml (default: text).")
    var output: OutputFormat?

    func run() async throws {
        let response = try await global.withRuntime { client in
            try await client.call(CRIMethods.version, VersionRequest())
        }
        if let output {
            try Output.print(response.protoJSON(useProtoNames: false), as: output)
            return
        }
        print("Version:  \(response.version)")
        print("RuntimeName:  \(response.runtimeName)")
        print("RuntimeVersion:  \(response.runtimeVersion)")
        print("RuntimeApiVersion:  \(response.runtimeApiVersion)")
    }
}
