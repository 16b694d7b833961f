import CLinux
import CRI
import Glibc
import Logging
import SkiffOCI
import SkiffRuntime
import SkiffStreaming
import SkiffSupport
import Synchronization

/// One streaming exec: the process runs as ExecSync runs it (the bundle's process with the request's
/// argv, `<runtime> exec --process F --pid-file P <id>`), with its stdio wired to the client's streams
/// instead of captured. With a tty the runtime creates a pty inside the container and hands the master
/// over the console socket; stderr then travels on the terminal, and resize sets its window size.
/// If the client goes away first, the exec'd process is killed and the runtime reaped.
struct ExecSession {
    let context: RuntimeContext
    let logger: Logger
    let request: ExecRequest

    func run(_ streams: RemoteCommandStreams, session: any StreamingSession) async -> RemoteCommandStatus {
        guard let record = context.containers.get(request.containerId) ?? (try? context.containers.resolve(request.containerId)) ?? nil,
              let current = context.refresh(record.id), current.state == .running
        else {
            return .failure("container \(request.containerId) is not running")
        }
        let stateDir = context.paths.containerStateDirectory(current.id)
        let token = String(newIdentifier().prefix(16))
        let processFile = stateDir + "/exec-\(token).json"
        let pidFile = stateDir + "/exec-\(token).pid"
        defer {
            unlink(processFile)
            unlink(pidFile)
        }
        do throws(SkiffError) {
            let spec: Spec
            do {
                spec = try Spec(json: JSON(parsing: try FileSystem.readBytes(stateDir + "/bundle/config.json")))
            } catch {
                throw .internal("read bundle of container \(current.id): \(error)")
            }
            guard var process = spec.process else { throw .internal("bundle of container \(current.id) has no process") }
            process.args = request.cmd
            process.terminal = request.tty
            let relay = ResizeRelay(streams)
            defer { relay.stop() }
            if request.tty, streams.resize != nil, let size = await relay.firstSize() {
                // client-go sends the terminal's size as soon as the resize stream exists: create the
                // pty with it, so the command never sees a 0x0 terminal.
                process.consoleSize = ConsoleSize(height: UInt32(size.height), width: UInt32(size.width))
            }
            do {
                try AtomicFile.write(process.json.compactText, to: processFile)
            } catch {
                throw .internal("write \(processFile): \(error)")
            }
            let runtime = try context.runtime(forHandler: context.sandboxes.get(current.sandboxId)?.runtimeHandler ?? "")
            var arguments = [runtime.path, "--root", runtime.root, "exec", "--process", processFile, "--pid-file", pidFile]
            let code: Int32
            if request.tty {
                let socketPath = Self.consoleSocketPath(state: context.paths.state, token: token)
                arguments += ["--console-socket", socketPath, current.id]
                code = try await runWithTerminal(arguments, socketPath: socketPath, pidFile: pidFile, streams: streams, relay: relay, session: session)
            } else {
                arguments.append(current.id)
                code = try await runWithPipes(arguments, pidFile: pidFile, streams: streams, session: session)
            }
            return code == 0 ? .success : .exitCode(code, command: request.cmd)
        } catch {
            logger.info("streaming exec failed", metadata: ["container": "\(current.id)", "error": "\(error)"])
            return .failure("error executing command in container: \(error.message)")
        }
    }

    /// Unix socket paths are limited to 107 bytes: fall back to /tmp when the state dir is deep.
    static func consoleSocketPath(state: String, token: String) -> String {
        let preferred = "\(state)/console-\(token).sock"
        return preferred.utf8.count < 100 ? preferred : "/tmp/skiff-console-\(token).sock"
    }

    // MARK: - Pipes

    private func runWithPipes(_ arguments: [String], pidFile: String, streams: RemoteCommandStreams, session: any StreamingSession) async throws(SkiffError) -> Int32 {
        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        defer { childEnds.forEach { close($0) } }
        func pipeOrNull(_ wanted: Bool, childReads: Bool) throws(SkiffError) -> (child: Int32, parent: Int32?) {
            guard wanted else {
                let null = try StreamProcess.devNull()
                childEnds.append(null)
                return (null, nil)
            }
            let p = try StreamProcess.pipe()
            let (child, parent) = childReads ? (p.read, p.write) : (p.write, p.read)
            childEnds.append(child)
            parentEnds.append(parent)
            return (child, parent)
        }
        let stdin = try pipeOrNull(streams.stdin != nil, childReads: true)
        let stdout = try pipeOrNull(streams.stdout != nil, childReads: false)
        let stderr = try pipeOrNull(streams.stderr != nil, childReads: false)
        let pid: pid_t
        do {
            pid = try StreamProcess.spawn(arguments, stdio: (stdin.child, stdout.child, stderr.child))
        } catch {
            parentEnds.forEach { close($0) }
            throw error
        }
        childEnds.forEach { close($0) }
        childEnds = []

        let stdinWriter = stdin.parent.map { FileDescriptorWriter(fd: $0, name: "exec-stdin") }
        let stdoutReader = stdout.parent.map { FileDescriptorReader(fd: $0, name: "exec-stdout") }
        let stderrReader = stderr.parent.map { FileDescriptorReader(fd: $0, name: "exec-stderr") }
        // Ends when the client's stdin does (at the latest when the session closes): nothing waits for it.
        _ = Task {
            guard let writer = stdinWriter, let source = streams.stdin else { return }
            while let chunk = await source.read() {
                if await !writer.write(chunk) { break }
            }
            // The client closed stdin (or went away): the process sees EOF.
            await writer.closeOnce()
        }
        let outputs = Task {
            await withTaskGroup(of: Void.self) { group in
                if let reader = stdoutReader, let sink = streams.stdout {
                    group.addTask { await Self.copy(reader, to: sink) }
                }
                if let reader = stderrReader, let sink = streams.stderr {
                    group.addTask { await Self.copy(reader, to: sink) }
                }
            }
        }
        let code = await superviseExit(pid: pid, pidFile: pidFile, session: session)
        // A background child may keep the pipes open: drain for a bounded time only (as ExecSync does).
        await Self.drain(outputs, readers: [stdoutReader, stderrReader].compactMap { $0 })
        // Closing stdin here is safe while the stdin copy still waits: the writer drops later writes.
        await stdinWriter?.finish(closing: true)
        for reader in [stdoutReader, stderrReader].compactMap({ $0 }) {
            await reader.finish()
            close(reader.fd)
        }
        return try await checkStarted(code: code, pidFile: pidFile)
    }

    // MARK: - Terminal

    private func runWithTerminal(
        _ arguments: [String], socketPath: String, pidFile: String, streams: RemoteCommandStreams, relay: ResizeRelay, session: any StreamingSession
    ) async throws(SkiffError) -> Int32 {
        let console = try ConsoleSocket(path: socketPath)
        defer { console.close() }
        let null = try StreamProcess.devNull()
        let errors = try StreamProcess.pipe()
        let pid: pid_t
        do {
            pid = try StreamProcess.spawn(arguments, stdio: (null, errors.write, errors.write))
        } catch {
            close(null)
            close(errors.read)
            close(errors.write)
            throw error
        }
        close(null)
        close(errors.write)
        let runtimeErrors = FileDescriptorReader(fd: errors.read, name: "exec-runtime-err")
        let errorText = Task { () -> [UInt8] in
            var all: [UInt8] = []
            while let chunk = await runtimeErrors.read(), all.count < 64 * 1024 { all += chunk }
            return all
        }
        let exit = Task { await StreamProcess.wait(pid) }
        let exited = ExitFlag()
        let watcher = Task {
            _ = await exit.value
            exited.set()
        }
        defer { watcher.cancel() }
        let master: Int32
        do {
            master = try await console.receiveMaster { !exited.isSet }
        } catch {
            let code = await exit.value
            runtimeErrors.cancel()
            let text = String(decoding: await errorText.value, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            await runtimeErrors.finish()
            close(errors.read)
            throw .internal(text.isEmpty ? "\(error.message) (runtime exited with \(code))" : text)
        }
        let reader = FileDescriptorReader(fd: master, name: "exec-pty-out")
        let writer = FileDescriptorWriter(fd: master, name: "exec-pty-in")
        let stdinTask = Task {
            guard let source = streams.stdin else { return }
            while let chunk = await source.read() {
                if await !writer.write(chunk) { break }
            }
        }
        relay.apply { size in
            Task { await writer.perform { _ = clx_set_winsize($0, size.height, size.width) } }
        }
        let outputs = Task {
            if let sink = streams.stdout { await Self.copy(reader, to: sink) } else { while await reader.read() != nil {} }
        }
        let code = await superviseExit(pid: pid, pidFile: pidFile, session: session, exit: exit)
        await Self.drain(outputs, readers: [reader])
        relay.stop()
        // The master is shared: stop reading first, then close it after the writer's queued jobs.
        await reader.finish()
        await writer.finish(closing: true)
        _ = stdinTask
        runtimeErrors.cancel()
        let text = String(decoding: await errorText.value, as: UTF8.self)
        await runtimeErrors.finish()
        close(errors.read)
        if code != 0 && StreamProcess.readPid(pidFile) == nil {
            throw .internal(text.isEmpty ? "the runtime exited with \(code) before starting the command" : text)
        }
        return code
    }

    // MARK: - Shared

    /// Waits for the runtime to exit; if the client disconnects first, kills the exec'd process
    /// (and the runtime if it lingers) and still reaps it.
    private func superviseExit(pid: pid_t, pidFile: String, session: any StreamingSession, exit: Task<Int32, Never>? = nil) async -> Int32 {
        let exit = exit ?? Task { await StreamProcess.wait(pid) }
        let killer = Task {
            await session.waitClosed()
            if Task.isCancelled { return }
            logger.info("streaming exec: client went away, killing the command", metadata: ["container": "\(request.containerId)"])
            if let target = StreamProcess.readPid(pidFile) { kill(target, SIGKILL) }
            // The runtime exits once its child is gone (and kills the child if it goes first).
            try? await Task.sleep(for: .seconds(5))
            if !Task.isCancelled { kill(pid, SIGKILL) }
        }
        let code = await exit.value
        killer.cancel()
        return code
    }

    private func checkStarted(code: Int32, pidFile: String) async throws(SkiffError) -> Int32 {
        if code != 0 && StreamProcess.readPid(pidFile) == nil {
            throw .internal("the runtime exited with \(code) before starting the command (its message went to the stderr stream)")
        }
        return code
    }

    static func copy(_ reader: FileDescriptorReader, to sink: any DuplexStream) async {
        while let chunk = await reader.read() {
            if (try? await sink.write(chunk)) == nil {
                // The client is gone: keep draining so the process never blocks on a full pipe.
                while await reader.read() != nil {}
                return
            }
        }
    }

    /// Lets output copying finish, for at most two seconds after the process exited.
    static func drain(_ outputs: Task<Void, Never>, readers: [FileDescriptorReader]) async {
        let timer = Task {
            try? await Task.sleep(for: .seconds(2))
            if !Task.isCancelled { readers.forEach { $0.cancel() } }
        }
        await outputs.value
        timer.cancel()
    }
}

/// The client's terminal sizes: the latest is kept until the pty exists, then each one is applied.
final class ResizeRelay: Sendable {
    private final class State: Sendable {
        let value = Mutex<(latest: TerminalSize?, apply: (@Sendable (TerminalSize) -> Void)?)>((nil, nil))
        func withLock<T>(_ body: (inout (latest: TerminalSize?, apply: (@Sendable (TerminalSize) -> Void)?)) -> T) -> T {
            value.withLock { body(&$0) }
        }
    }

    private let state = State()
    private let task: Task<Void, Never>

    init(_ streams: RemoteCommandStreams) {
        let state = self.state
        task = Task {
            for await size in streams.resizes() {
                let apply = state.withLock { s in
                    s.latest = size
                    return s.apply
                }
                apply?(size)
            }
        }
    }

    /// The first size, if the client sends one within a second.
    func firstSize() async -> TerminalSize? {
        for _ in 0..<50 {
            if let size = state.withLock({ $0.latest }) { return size }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func apply(_ body: @escaping @Sendable (TerminalSize) -> Void) {
        let latest = state.withLock { s in
            s.apply = body
            return s.latest
        }
        if let latest { body(latest) }
    }

    func stop() {
        task.cancel()
        state.withLock { $0.apply = nil }
    }
}

/// A one-way flag shared between tasks and threads.
final class ExitFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
