import ArgumentParser
import CRI
import Dispatch
import Foundation
import GRPCCore
import SkiffStreaming

/// `exec [-i] [-t] [--transport spdy|websocket] ID CMD...`: crictl's streaming exec. Exec answers a URL
/// on the runtime's streaming server; skiffctl upgrades it to SPDY/3.1 or WebSocket (client-go's
/// remotecommand protocols), copies stdin/stdout/stderr, and exits with the command's exit code. `-t`
/// puts the local terminal in raw mode and sends its size (and every SIGWINCH). `exec -s [--timeout N]`
/// uses ExecSync instead.
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in a running container",
        discussion: "Options go before CONTAINER-ID; everything after it is the command.")

    @Flag(name: .shortAndLong, help: "Run the command synchronously")
    var sync = false

    @Option(help: "Timeout in seconds (0: none)")
    var timeout: Int64 = 0

    @Flag(name: [.customShort("t"), .long], help: "Allocate a pseudo-TTY")
    var tty = false

    @Flag(name: [.customShort("i"), .long], help: "Keep STDIN open")
    var interactive = false

    @Option(help: "Transport protocol to use, one of: spdy|websocket")
    var transport: StreamingTransport = .spdy

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
        let code = try await step("exec in container \(id)") {
            try await RemoteSession.run(url: url, stdin: interactive, tty: tty, transport: transport)
        }
        if code != 0 { throw ExitCode(code) }
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

/// The local end of exec and attach: our stdio on the session's streams, raw terminal and resizes for -t.
enum RemoteSession {
    static func run(url: String, stdin: Bool, tty: Bool, transport: StreamingTransport) async throws -> Int32 {
        let stdout = FileDescriptorWriter(fd: 1, name: "stdout")
        let stderr = FileDescriptorWriter(fd: 2, name: "stderr")
        let input = stdin ? FileDescriptorReader(fd: 0, name: "stdin") : nil
        let terminal = tty && isatty(0) == 1 ? RawTerminal(fd: 0) : nil
        defer { terminal?.restore() }
        var resize: AsyncStream<TerminalSize>?
        var signalSource: (any DispatchSourceSignal)?
        if tty {
            let (stream, continuation) = AsyncStream.makeStream(of: TerminalSize.self, bufferingPolicy: .bufferingNewest(1))
            if let size = TerminalSizeReader.current() { continuation.yield(size) }
            signal(SIGWINCH, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
            source.setEventHandler {
                if let size = TerminalSizeReader.current() { continuation.yield(size) }
            }
            source.resume()
            signalSource = source
            resize = stream
        }
        defer { signalSource?.cancel() }
        var readStdin: (@Sendable () async -> [UInt8]?)?
        if let input {
            readStdin = { await input.read() }
        }
        let io = RemoteCommandIO(
            stdin: readStdin,
            stdout: { bytes in _ = await stdout.write(bytes) },
            stderr: { bytes in _ = await stderr.write(bytes) },
            resize: resize)
        let code = try await RemoteCommandClient.run(url: url, tty: tty, io: io, transport: transport)
        input?.cancel()
        return code
    }
}

/// Raw mode for the local terminal while a -t session runs (no echo, no line editing, no signals
/// from ^C: they go to the remote command), restored afterwards.
final class RawTerminal {
    let fd: Int32
    private var saved = termios()
    private var active = false

    init?(fd: Int32) {
        self.fd = fd
        guard tcgetattr(fd, &saved) == 0 else { return nil }
        var raw = saved
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSANOW, &raw) == 0 else { return nil }
        active = true
    }

    func restore() {
        if active { tcsetattr(fd, TCSANOW, &saved) }
        active = false
    }
}

/// The local terminal's size. Swift cannot call the variadic ioctl(TIOCGWINSZ), so stty answers it.
enum TerminalSizeReader {
    static func current() -> TerminalSize? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/stty")
        process.arguments = ["size"]
        process.standardInput = FileHandle(fileDescriptor: 0, closeOnDealloc: false)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let fields = String(decoding: data, as: UTF8.self).split(separator: " ").compactMap { UInt16($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard process.terminationStatus == 0, fields.count == 2 else { return nil }
        return TerminalSize(width: fields[1], height: fields[0])
    }
}

/// `--transport spdy|websocket` (exec, attach, port-forward), as crictl spells it.
extension StreamingTransport: ExpressibleByArgument {}
