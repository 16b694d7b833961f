/// The server end of exec/attach (kubelet's remotecommand over SPDY): the client opens an error
/// stream, then stdin, stdout, stderr and resize streams as requested; the server replies to each,
/// runs the command, writes its fate on the error stream and closes.
public struct RemoteCommandStreams: Sendable {
    public let proto: String
    public let error: SPDYStream
    public let stdin: SPDYStream?
    public let stdout: SPDYStream?
    public let stderr: SPDYStream?
    public let resize: SPDYStream?

    /// Accepts the client's streams until as many as the request implies arrived (kubelet's count:
    /// error + each requested stdio + resize for a tty on v3+), or fails after `timeout`.
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
    public func finish(_ status: RemoteCommandStatus) async {
        if let stdout { await stdout.closeWrite() }
        if let stderr { await stderr.closeWrite() }
        let bytes = status.encoded(protocol: proto)
        if !bytes.isEmpty { try? await error.write(bytes) }
        await error.closeWrite()
    }
}
