import NIOCore
import Synchronization

/// Where a SPDY session's bytes go: straight onto the TCP connection after the SPDY/3.1 upgrade, or
/// inside binary WebSocket messages when SPDY is tunneled over WebSocket (client-go's
/// `SPDY/3.1+portforward.k8s.io`, crictl's `port-forward --transport websocket`).
protocol SPDYTransport: Sendable {
    /// Queues `bytes` in call order; the future completes when they are handed to the socket.
    func write(_ bytes: [UInt8]) -> EventLoopFuture<Void>
    /// Stops or resumes reading from the peer (the session's bound on unread data).
    func setReading(_ enabled: Bool)
    /// Ends the connection once what was written is on the wire.
    func close()
}

struct ChannelTransport: SPDYTransport {
    let channel: any Channel

    func write(_ bytes: [UInt8]) -> EventLoopFuture<Void> { channel.writeAndFlush(ByteBuffer(bytes: bytes)) }
    func setReading(_ enabled: Bool) { channel.setOption(ChannelOptions.autoRead, value: enabled).whenComplete { _ in } }
    func close() { channel.close(mode: .all, promise: nil) }
}

/// SPDY inside a WebSocket connection: each write is one binary message, and the messages received are
/// the SPDY byte stream (message boundaries mean nothing). Pausing stops taking messages from the
/// connection, whose own queue limit then stops the socket.
final class WebSocketTunnel: SPDYTransport {
    /// The subprotocol prefix client-go puts before the tunneled SPDY protocol.
    static let prefix = "SPDY/3.1+"

    let connection: WebSocketConnection
    private let gate = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((true, []))

    init(connection: WebSocketConnection) {
        self.connection = connection
    }

    func write(_ bytes: [UInt8]) -> EventLoopFuture<Void> { connection.sendNow(.binary(bytes)) }

    func setReading(_ enabled: Bool) {
        let waiters = gate.withLock { g in
            g.open = enabled
            guard enabled else { return [CheckedContinuation<Void, Never>]() }
            defer { g.waiters = [] }
            return g.waiters
        }
        waiters.forEach { $0.resume() }
    }

    func close() { Task { [connection] in await connection.close() } }

    func waitUntilReading() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = gate.withLock { g in
                if g.open { return true }
                g.waiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }
}

extension SPDYSession {
    /// A SPDY session over an upgraded WebSocket connection (no HTTP upgrade inside: frames start at
    /// once). The session ends with the connection; closing the session closes the connection with 1000.
    public static func tunneled(over connection: WebSocketConnection, role: Role) throws(SPDYError) -> SPDYSession {
        let tunnel = WebSocketTunnel(connection: connection)
        let session = try SPDYSession(transport: tunnel, role: role)
        let decoder = try SPDYFrameDecoder()
        Task {
            while let message = await connection.next() {
                await tunnel.waitUntilReading()
                decoder.append(message.data)
                do {
                    while let frame = try decoder.next() { session.receive(frame) }
                } catch {
                    // A broken frame stream cannot be resynchronised: end the connection.
                    await connection.close(.protocolError, reason: "SPDY: \(error)")
                    break
                }
            }
            session.connectionClosed()
        }
        session.start()
        return session
    }
}
