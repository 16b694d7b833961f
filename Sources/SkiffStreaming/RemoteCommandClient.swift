import Synchronization

/// The client end of exec/attach (client-go's remotecommand, SPDY flavour): open the error stream,
/// then stdin, stdout, stderr (no stderr with a tty) and resize (tty, v3+), copy, and read the
/// command's fate from the error stream.
public struct RemoteCommandIO: Sendable {
    /// Next chunk of local stdin, nil at EOF (then the remote stdin is closed). nil: no stdin.
    public var stdin: (@Sendable () async -> [UInt8]?)?
    public var stdout: (@Sendable ([UInt8]) async -> Void)?
    public var stderr: (@Sendable ([UInt8]) async -> Void)?
    /// Terminal sizes to send (tty only).
    public var resize: AsyncStream<TerminalSize>?

    public init(
        stdin: (@Sendable () async -> [UInt8]?)? = nil, stdout: (@Sendable ([UInt8]) async -> Void)? = nil,
        stderr: (@Sendable ([UInt8]) async -> Void)? = nil, resize: AsyncStream<TerminalSize>? = nil
    ) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.resize = resize
    }
}

public enum RemoteCommandClient {
    /// Runs the session at `url` (from Exec/Attach) and returns the command's exit code.
    public static func run(url: String, tty: Bool, io: RemoteCommandIO) async throws -> Int32 {
        let (session, proto) = try await StreamingClient.connect(url: url, protocols: RemoteCommand.protocols)
        defer { session.close() }
        func open(_ type: RemoteCommand.StreamType) async throws -> SPDYStream {
            try await session.openStream(headers: [(RemoteCommand.streamTypeHeader, type.rawValue)].headers)
        }
        let errorStream = try await open(.error)
        let stdin = io.stdin != nil ? try await open(.stdin) : nil
        let stdout = io.stdout != nil ? try await open(.stdout) : nil
        let stderr = io.stderr != nil && !tty ? try await open(.stderr) : nil
        let resize = tty && RemoteCommand.supportsResize(proto) ? try await open(.resize) : nil

        let errorTask = Task { await errorStream.readAll() }
        let stdinTask = Task {
            guard let stdin, let next = io.stdin else { return }
            while let chunk = await next() {
                if Task.isCancelled { return }
                if (try? await stdin.write(chunk)) == nil { return }
            }
            await stdin.closeWrite()
        }
        let resizeTask = Task {
            guard let resize, let sizes = io.resize else { return }
            for await size in sizes {
                if (try? await resize.write(size.json)) == nil { return }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            if let stdout, let sink = io.stdout {
                group.addTask { while let chunk = await stdout.read() { await sink(chunk) } }
            }
            if let stderr, let sink = io.stderr {
                group.addTask { while let chunk = await stderr.read() { await sink(chunk) } }
            }
        }
        let status = await errorTask.value
        stdinTask.cancel()
        resizeTask.cancel()
        return try RemoteCommandStatus.decode(status, protocol: proto).get()
    }
}

/// The client end of port forwarding: one SPDY connection carries any number of forwarded TCP
/// connections, each as an error stream plus a data stream sharing a request id.
public final class PortForwardClient: Sendable {
    public let session: SPDYSession
    private let nextRequest = Mutex<Int>(0)

    private init(session: SPDYSession) {
        self.session = session
    }

    public static func connect(url: String) async throws -> PortForwardClient {
        let (session, _) = try await StreamingClient.connect(url: url, protocols: [RemoteCommand.portForwardProtocol])
        return PortForwardClient(session: session)
    }

    /// Opens the stream pair for one forwarded connection to `port` in the pod.
    public func open(port: UInt16) async throws -> (data: SPDYStream, error: SPDYStream) {
        let id = nextRequest.withLock { n in
            defer { n += 1 }
            return n
        }
        let base = [(RemoteCommand.portHeader, String(port)), (RemoteCommand.requestIDHeader, String(id))]
        let error = try await session.openStream(headers: SPDYHeaders([(RemoteCommand.streamTypeHeader, "error")] + base))
        // Nothing is ever written to the error stream by the client (client-go closes it at once).
        await error.closeWrite()
        let data = try await session.openStream(headers: SPDYHeaders([(RemoteCommand.streamTypeHeader, "data")] + base))
        return (data, error)
    }

    public func close() { session.close() }
}

extension Array where Element == (String, String) {
    var headers: SPDYHeaders { SPDYHeaders(self) }
}
