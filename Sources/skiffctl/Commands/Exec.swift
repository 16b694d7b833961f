import ArgumentParser
import CRI
import GRPCCore

/// `exec -s [--timeout N] ID CMD...`: ExecSync; the command's stdout and stderr go to ours and skiffctl exits
/// with its exit code. Without `-s`, crictl streams through the runtime's streaming server (Exec answers a
/// URL spoken with SPDY/WebSocket); skiffctl does not speak that protocol, so it asks for the URL, which
/// reports the runtime's answer (skiffd: Unimplemented), and otherwise says to use `-s`.
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in a running container",
        discussion: "Options go before CONTAINER-ID; everything after it is the command.")

    @Flag(name: .shortAndLong, help: "Run the command synchronously")
    var sync = false

    @Option(help: "Timeout in seconds (0: none)")
    var timeout: Int64 = 0

    @Flag(name: [.customShort("t"), .long], help: "Allocate a pseudo-TTY (streaming exec only)")
    var tty = false

    @Flag(name: [.customShort("i"), .long], help: "Keep STDIN open (streaming exec only)")
    var interactive = false

    @Argument(parsing: .captureForPassthrough, help: "CONTAINER-ID COMMAND [ARG...]")
    var arguments: [String] = []

    func validate() throws {
        guard let id = arguments.first, !id.isEmpty else { throw missing("CONTAINER-ID and COMMAND are required") }
        guard arguments.count > (arguments.dropFirst().first == "--" ? 2 : 1) else { throw missing("COMMAND is required") }
    }

    func run() async throws {
        let id = arguments[0]
        var command = Array(arguments.dropFirst())
        if command.first == "--" { command.removeFirst() }
        if sync {
            let exitCode = try await execSync(id: id, command: command)
            if exitCode != 0 { throw ExitCode(exitCode) }
            return
        }
        var request = ExecRequest()
        request.containerId = id
        request.cmd = command
        request.tty = tty
        request.stdin = interactive
        request.stdout = true
        request.stderr = !tty
        let url = try await GlobalOptions.current.withRuntime { client in
            try await step("execing command in container \(id)") { try await client.call(CRIMethods.exec, request).url }
        }
        throw CtlError(
            "execing command in container \(id): the runtime offers a streaming session at \(url), which skiffctl cannot "
                + "attach to (it needs SPDY/WebSocket streaming); use `skiffctl exec -s`")
    }

    private func execSync(id: String, command: [String]) async throws -> Int32 {
        var request = ExecSyncRequest()
        request.containerId = id
        request.cmd = command
        request.timeout = timeout
        // The runtime enforces the command's timeout; the call itself gets that plus the usual budget.
        let budget: CallBudget = timeout > 0 ? .work(.seconds(timeout) + (try GlobalOptions.current.timeoutValue())) : .unbounded(nil)
        let response = try await GlobalOptions.current.withRuntime { client in
            try await step("execing command in container \(id) synchronously") { try await client.call(CRIMethods.execSync, request, budget) }
        }
        Stdio.out(response.stdout)
        Stdio.err(response.stderr)
        return response.exitCode
    }
}
