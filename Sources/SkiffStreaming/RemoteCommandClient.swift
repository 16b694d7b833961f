import Synchronization

/// The transports a client can reach a streaming server with (crictl's `--transport`).
public enum StreamingTransport: String, Sendable, CaseIterable {
    /// SPDY/3.1 after an HTTP upgrade (client-go's default).
    case spdy
    /// WebSocket: the channel protocols for exec/attach, SPDY tunneled over WebSocket for port
    /// forwarding (what client-go's WebSocket executor and tunneling dialer speak).
    case websocket
}

/// The client end of exec/attach (client-go's remotecommand): stdin, stdout, stderr (no stderr with a
/// tty) and resize (tty) over either transport, and the command's fate from the error stream.
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
    /// The WebSocket protocols the client offers, newest first. client-go offers v5 alone (servers
    /// behind older API servers would not honour the CLOSE signal); offering older ones too lets a
    /// kubelet-style server without v5 still be used, with stdin ending only with the connection.
    public static let webSocketProtocols = WebSocketChannelProtocol.remoteCommand.map(\.name)

    /// Runs the session at `url` (from Exec/Attach) and returns the command's exit code.
    public static func run(
        url: String, tty: Bool, io: RemoteCommandIO, transport: StreamingTransport = .spdy,
        webSocketProtocols: [String] = webSocketProtocols
    ) async throws -> Int32 {
        let session: any StreamingSession
        let streams: RemoteCommandStreams
        switch transport {
        case .spdy:
            let (spdy, proto) = try await StreamingClient.connect(url: url, protocols: RemoteCommand.protocols)
            session = spdy
            func open(_ type: RemoteCommand.StreamType) async throws -> SPDYStream {
                try await spdy.openStream(headers: [(RemoteCommand.streamTypeHeader, type.rawValue)].headers)
            }
            // kubelet counts the streams it waits for: open exactly the ones the request implies.
            let error = try await open(.error)
            let stdin = io.stdin != nil ? try await open(.stdin) : nil
            let stdout = io.stdout != nil ? try await open(.stdout) : nil
            let stderr = io.stderr != nil && !tty ? try await open(.stderr) : nil
            let resize = tty && RemoteCommand.supportsResize(proto) ? try await open(.resize) : nil
            streams = RemoteCommandStreams(proto: proto, error: error, stdin: stdin, stdout: stdout, stderr: stderr, resize: resize)
        case .websocket:
            let connection = try await StreamingClient.connectWebSocket(url: url, protocols: webSocketProtocols)
            guard let proto = WebSocketChannelProtocol.named(connection.subprotocol, among: WebSocketChannelProtocol.remoteCommand) else {
                await connection.close()
                throw StreamingClientError.protocolError("the server chose \"\(connection.subprotocol)\", which is not a remote command protocol")
            }
            let channels = WebSocketChannelSession(connection: connection, protocol: proto, readable: tty ? [1, 3] : [1, 2, 3])
            session = channels
            streams = RemoteCommandStreams(
                proto: proto.name, error: channels.channel(3), stdin: io.stdin != nil ? channels.channel(0) : nil,
                stdout: channels.channel(1), stderr: tty ? nil : channels.channel(2), resize: tty ? channels.channel(4) : nil)
        }
        defer { session.close() }
        return try await exchange(streams, io: io)
    }

    /// Copies the local ends to the session's streams until the server ends its output, then reads the
    /// status (the error stream ends with the SPDY FIN, or with the WebSocket connection).
    static func exchange(_ streams: RemoteCommandStreams, io: RemoteCommandIO) async throws -> Int32 {
        let errorTask = Task { await streams.error.readAll() }
        let stdinTask = Task {
            guard let stdin = streams.stdin, let next = io.stdin else { return }
            while let chunk = await next() {
                if Task.isCancelled { return }
                if (try? await stdin.write(chunk)) == nil { return }
            }
            await stdin.closeWrite()
        }
        let resizeTask = Task {
            guard let resize = streams.resize, let sizes = io.resize else { return }
            for await size in sizes {
                if (try? await resize.write(size.json)) == nil { return }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            if let stdout = streams.stdout {
                let sink = io.stdout
                group.addTask { while let chunk = await stdout.read() { await sink?(chunk) } }
            }
            if let stderr = streams.stderr {
                let sink = io.stderr
                group.addTask { while let chunk = await stderr.read() { await sink?(chunk) } }
            }
        }
        let status = await errorTask.value
        stdinTask.cancel()
        resizeTask.cancel()
        return try RemoteCommandStatus.decode(status, protocol: streams.proto).get()
    }
}

/// The client end of port forwarding: one SPDY session (over TCP, or tunneled over WebSocket) carries
/// any number of forwarded TCP connections, each as an error stream plus a data stream sharing a
/// request id.
public final class PortForwardClient: Sendable {
    public let session: SPDYSession
    private let nextRequest = Mutex<Int>(0)

    private init(session: SPDYSession) {
        self.session = session
    }

    public static func connect(url: String, transport: StreamingTransport = .spdy) async throws -> PortForwardClient {
        switch transport {
        case .spdy:
            let (session, _) = try await StreamingClient.connect(url: url, protocols: [RemoteCommand.portForwardProtocol])
            return PortForwardClient(session: session)
        case .websocket:
            let (session, _) = try await StreamingClient.connectTunneled(url: url, protocols: [RemoteCommand.portForwardProtocol])
            return PortForwardClient(session: session)
        }
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
