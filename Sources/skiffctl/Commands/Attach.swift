import ArgumentParser
import CRI
import GRPCCore
import SkiffStreaming

/// `attach [-i] [-t] [--transport spdy|websocket] CONTAINER-ID`: crictl's attach. Attach answers a URL on the runtime's streaming
/// server; skiffctl joins the container's output (and stdin with -i, as a terminal with -t) over it
/// until the container exits or skiffctl is interrupted.
struct AttachCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attach", abstract: "Attach to a running container")

    @Flag(name: [.customShort("t"), .long], help: "Stdin is a TTY")
    var tty = false

    @Flag(name: [.customShort("i"), .long], help: "Pass stdin to the container")
    var stdin = false

    @Option(help: "Transport protocol to use, one of: spdy|websocket")
    var transport: StreamingTransport = .spdy

    @Argument(help: "CONTAINER-ID")
    var id: String

    func run() async throws {
        var request = AttachRequest()
        request.containerId = id
        request.tty = tty
        request.stdin = stdin
        request.stdout = true
        request.stderr = !tty
        let url = try await GlobalOptions.current.withRuntime { client in
            try await step("attach to container \(id)") { try await client.call(CRIMethods.attach, request).url }
        }
        let code = try await step("attach to container \(id)") {
            try await RemoteSession.run(url: url, stdin: stdin, tty: tty, transport: transport)
        }
        if code != 0 { throw ExitCode(code) }
    }
}
