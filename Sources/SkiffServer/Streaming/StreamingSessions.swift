import CRI
import Logging
import SkiffRuntime
import SkiffStreaming
import SkiffSupport

/// Runs the sessions the streaming server hands over, one method per kind and transport. The
/// transport only decides how the streams are found (SPDY: the client opens them; WebSocket: fixed
/// channels) and how the session ends; exec, attach and port forwarding are the same code for both.
struct StreamingSessions: Sendable {
    let context: RuntimeContext
    let logger: Logger

    /// kubelet's stream creation timeout: how long the client has to open its streams.
    static let streamCreationTimeout: Duration = .seconds(30)
    /// How long a finished session waits for the client before the connection is closed anyway.
    static let closeTimeout: Duration = .seconds(5)

    func exec(_ request: ExecRequest, session: SPDYSession, protocol proto: String) async {
        guard let streams = await RemoteCommandStreams.accept(
            from: session, protocol: proto, stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
            tty: request.tty, timeout: Self.streamCreationTimeout)
        else {
            logger.info("streaming exec: the client did not open its streams", metadata: ["container": "\(request.containerId)"])
            session.close()
            return
        }
        await exec(request, streams: streams, session: session)
    }

    func exec(_ request: ExecRequest, webSocket connection: WebSocketConnection) async {
        guard let (streams, session) = await remoteCommandChannels(connection, stdin: request.stdin, stdout: request.stdout, stderr: request.stderr) else { return }
        await exec(request, streams: streams, session: session)
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
        await attach(request, streams: streams, session: session)
    }

    func attach(_ request: AttachRequest, webSocket connection: WebSocketConnection) async {
        guard let (streams, session) = await remoteCommandChannels(connection, stdin: request.stdin, stdout: request.stdout, stderr: request.stderr) else { return }
        await attach(request, streams: streams, session: session)
    }

    func portForward(_ request: PortForwardRequest, session: SPDYSession) async {
        await PortForwardSession(context: context, logger: logger, sandboxId: request.podSandboxId).run(session)
        session.close()
    }

    /// WebSocket port forwarding: SPDY tunneled over the connection (client-go's tunneling dialer), or
    /// kubelet's channel protocol with a data and an error channel per requested port.
    func portForward(_ request: PortForwardRequest, webSocket connection: WebSocketConnection) async {
        let forward = PortForwardSession(context: context, logger: logger, sandboxId: request.podSandboxId)
        if connection.subprotocol == PortForwardSession.tunnelProtocol {
            do {
                let session = try SPDYSession.tunneled(over: connection, role: .server)
                await forward.run(session)
                session.close()
            } catch {
                logger.info("streaming port forward: cannot start SPDY over WebSocket", metadata: ["error": "\(error)"])
                await connection.close(.internalError)
            }
            return
        }
        guard let proto = WebSocketChannelProtocol.named(connection.subprotocol, among: WebSocketChannelProtocol.portForward) else {
            await connection.close(.protocolError)
            return
        }
        let ports = request.port.compactMap { UInt16(exactly: $0) }
        let readable = Set((0..<ports.count).map { UInt8(truncatingIfNeeded: 2 * $0) })
        let session = WebSocketChannelSession(connection: connection, protocol: proto, readable: readable)
        await forward.run(session, ports: ports)
        await session.closeGracefully(timeout: Self.closeTimeout)
    }

    // MARK: - Shared

    private func exec(_ request: ExecRequest, streams: RemoteCommandStreams, session: any StreamingSession) async {
        let status = await ExecSession(context: context, logger: logger, request: request).run(streams, session: session)
        await streams.finish(status)
        await session.closeGracefully(timeout: Self.closeTimeout)
    }

    private func attach(_ request: AttachRequest, streams: RemoteCommandStreams, session: any StreamingSession) async {
        let status = await AttachSession(context: context, logger: logger, request: request).run(streams, session: session)
        await streams.finish(status)
        await session.closeGracefully(timeout: Self.closeTimeout)
    }

    /// The remote command channels of a WebSocket connection (its subprotocol is one the route offered).
    private func remoteCommandChannels(
        _ connection: WebSocketConnection, stdin: Bool, stdout: Bool, stderr: Bool
    ) async -> (RemoteCommandStreams, WebSocketChannelSession)? {
        guard let proto = WebSocketChannelProtocol.named(connection.subprotocol, among: WebSocketChannelProtocol.remoteCommand) else {
            await connection.close(.protocolError)
            return nil
        }
        let session = WebSocketChannelSession(connection: connection, protocol: proto, readable: RemoteCommandStreams.readableChannels(stdin: stdin))
        let streams = await RemoteCommandStreams.channels(of: session, stdin: stdin, stdout: stdout, stderr: stderr)
        return (streams, session)
    }
}
