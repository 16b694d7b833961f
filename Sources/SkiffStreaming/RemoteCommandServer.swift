/// The server end of exec/attach (kubelet's remotecommand server), whatever the transport: the
/// client's stdin, stdout, stderr, error and resize streams, the terminal sizes it sends, and the end
/// of the session (output ended, the status on the error stream).
///
/// Over SPDY the client opens each stream (error first) and the server replies to each; over
/// WebSocket the streams are fixed channels that exist as soon as the handshake is done.
public struct RemoteCommandStreams: Sendable {
    /// The negotiated protocol name (decides the status format, `RemoteCommand.version(of:)`).
    public let proto: String
    public let error: any DuplexStream
    public let stdin: (any DuplexStream)?
    public let stdout: (any DuplexStream)?
    public let stderr: (any DuplexStream)?
    public let resize: (any DuplexStream)?

    public init(
        proto: String, error: any DuplexStream, stdin: (any DuplexStream)?, stdout: (any DuplexStream)?,
        stderr: (any DuplexStream)?, resize: (any DuplexStream)?
    ) {
        self.proto = proto
        self.error = error
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.resize = resize
    }

    /// SPDY: accepts the client's streams until as many as the request implies arrived (kubelet's
    /// count: error + each requested stdio + resize for a tty on v3+), or fails after `timeout`.
    public static func accept(
        from session: SPDYSession, protocol proto: String, stdin: Bool, stdout: Bool, stderr: Bool, tty: Bool,
        timeout: Duration = .seconds(30)
    ) async -> RemoteCommandStreams? {
        let expected = 1 + (stdin ? 1 : 0) + (stdout ? 1 : 0) + (stderr ? 1 : 0) + (tty && RemoteCommand.supportsResize(proto) ? 1 : 0)
        let collected: [RemoteCommand.StreamType: SPDYStream]? = await withTaskGroup(of: [RemoteCommand.StreamType: SPDYStream]?.self) { group in
            group.addTask {
                var found: [RemoteCommand.StreamType: SPDYStream] = [:]
                var count = 0
                for await stream in session.incomingStreams {
                    stream.accept()
                    guard let type = stream.headers[RemoteCommand.streamTypeHeader].flatMap(RemoteCommand.StreamType.init(rawValue:)),
                          type != .data
                    else { continue }
                    found[type] = stream
                    count += 1
                    if count == expected { return found }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let collected, let error = collected[.error] else { return nil }
        return RemoteCommandStreams(
            proto: proto, error: error, stdin: collected[.stdin], stdout: collected[.stdout], stderr: collected[.stderr],
            resize: collected[.resize])
    }

    /// WebSocket: the channels of `session` as kubelet lays them out (0 stdin, 1 stdout, 2 stderr,
    /// 3 error, 4 resize; stdin read only if requested, resize always read, as kubelet does for every
    /// channel protocol), and the notice that the streams are ready: an empty message on the lowest
    /// channel the server writes (stdout, else stderr, else error).
    public static func channels(
        of session: WebSocketChannelSession, stdin: Bool, stdout: Bool, stderr: Bool
    ) async -> RemoteCommandStreams {
        let streams = RemoteCommandStreams(
            proto: session.proto.name, error: session.channel(3), stdin: stdin ? session.channel(0) : nil,
            stdout: stdout ? session.channel(1) : nil, stderr: stderr ? session.channel(2) : nil, resize: session.channel(4))
        try? await session.channel(stdout ? 1 : stderr ? 2 : 3).announce()
        return streams
    }

    /// The channels a WebSocket remote command server reads.
    public static func readableChannels(stdin: Bool) -> Set<UInt8> { stdin ? [0, 4] : [4] }

    /// Terminal sizes as the client sends them.
    public func resizes() -> AsyncStream<TerminalSize> {
        AsyncStream { continuation in
            guard let resize else {
                continuation.finish()
                return
            }
            let task = Task {
                var buffer: [UInt8] = []
                while let chunk = await resize.read() {
                    for size in TerminalSize.decode(appending: chunk, to: &buffer) { continuation.yield(size) }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Ends the session's streams: stdout/stderr half-closed, the status written on the error stream.
    /// The transport's end (`StreamingSession.closeGracefully`) follows.
    public func finish(_ status: RemoteCommandStatus) async {
        if let stdout { await stdout.closeWrite() }
        if let stderr { await stderr.closeWrite() }
        let bytes = status.encoded(protocol: proto)
        if !bytes.isEmpty { try? await error.write(bytes) }
        await error.closeWrite()
    }
}
