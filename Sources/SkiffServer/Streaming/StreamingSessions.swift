import CRI
import Logging
import SkiffRuntime
import SkiffStreaming
import SkiffSupport

/// Runs the sessions the streaming server hands over, one method per kind.
struct StreamingSessions: Sendable {
    let context: RuntimeContext
    let logger: Logger

    /// kubelet's stream creation timeout: how long the client has to open its streams.
    static let streamCreationTimeout: Duration = .seconds(30)

    func exec(_ request: ExecRequest, session: SPDYSession, protocol proto: String) async {
        guard let streams = await RemoteCommandStreams.accept(
            from: session, protocol: proto, stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
            tty: request.tty, timeout: Self.streamCreationTimeout)
        else {
            logger.info("streaming exec: the client did not open its streams", metadata: ["container": "\(request.containerId)"])
            session.close()
            return
        }
        let status = await ExecSession(context: context, logger: logger, request: request).run(streams, session: session)
        await streams.finish(status)
        await Self.closeAfterClient(session)
    }

    func attach(_ request: AttachRequest, session: SPDYSession, protocol proto: String) async {
        guard let streams = await RemoteCommandStreams.accept(
            from: session, protocol: proto, stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
            tty: request.tty, timeout: Self.streamCreationTimeout)
        else {
            logger.info("streaming attach: the client did not open its streams", metadata: ["container": "\(request.containerId)"])
            session.close()
            return
        }
        let status = await AttachSession(context: context, logger: logger, request: request).run(streams, session: session)
        await streams.finish(status)
        await Self.closeAfterClient(session)
    }

    func portForward(_ request: PortForwardRequest, session: SPDYSession) async {
        await PortForwardSession(context: context, logger: logger, sandboxId: request.podSandboxId).run(session)
        session.close()
    }

    /// The client closes the connection once it has read the status; give it a moment to, so that
    /// closing a socket with unread input (a TCP reset) cannot cut off what was just written.
    static func closeAfterClient(_ session: SPDYSession) async {
        let closer = Task {
            try? await Task.sleep(for: .seconds(5))
            if !Task.isCancelled { session.close() }
        }
        await session.waitClosed()
        closer.cancel()
    }
}
