import NIOCore
import Synchronization

public enum WebSocketError: Error, Equatable, CustomStringConvertible {
    /// The connection is closed, or this end already sent its close frame.
    case connectionClosed

    public var description: String {
        switch self {
        case .connectionClosed: "the WebSocket connection is closed"
        }
    }
}

/// One WebSocket connection after the opening handshake, either end (RFC 6455 §5–§7): complete data
/// messages in, messages out, pings answered, and the closing handshake.
///
/// Incoming messages queue until `next()` takes them; above 4 MiB of queued data the socket is no
/// longer read (the peer's TCP window then closes), below 1 MiB reading resumes. A protocol violation
/// is answered with a close frame carrying the matching code (1002, 1007, 1009) and the connection
/// ends. Clients mask every frame with a fresh random key; servers never mask and refuse unmasked
/// frames (and the other way round).
public final class WebSocketConnection: Sendable {
    public enum Role: Sendable { case client, server }

    /// Largest message (and frame) accepted, as golang.org/x/net/websocket's default in kubelet.
    public static let maxMessageSize = 32 << 20
    static let pauseReadingAbove = 4 << 20
    static let resumeReadingBelow = 1 << 20

    public let role: Role
    /// The negotiated subprotocol ("" when none).
    public let subprotocol: String
    let channel: any Channel
    private let state: Mutex<State>

    struct State {
        var decoder: WebSocketFrameDecoder
        var assembler = WebSocketMessageAssembler(maxMessageSize: WebSocketConnection.maxMessageSize)
        var inbox: [WebSocketMessage] = []
        var inboxHead = 0
        var buffered = 0
        var readingPaused = false
        var reader: CheckedContinuation<WebSocketMessage?, Never>?
        var sentClose = false
        var peerClose: (code: WebSocketCloseCode, reason: String)?
        var violation: WebSocketProtocolViolation?
        var closed = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    init(channel: any Channel, role: Role, subprotocol: String) {
        self.channel = channel
        self.role = role
        self.subprotocol = subprotocol
        state = Mutex(State(decoder: WebSocketFrameDecoder(expectMasked: role == .server, maxFramePayload: Self.maxMessageSize)))
    }

    // MARK: - Application side

    /// The next data message; nil once the peer closed (after the messages before its close frame),
    /// the connection failed, or it is gone. One reader at a time.
    public func next() async -> WebSocketMessage? {
        await withCheckedContinuation { (continuation: CheckedContinuation<WebSocketMessage?, Never>) in
            var resume = false
            let answer: WebSocketMessage?? = state.withLock { s in
                if s.inboxHead < s.inbox.count {
                    let message = s.inbox[s.inboxHead]
                    s.inboxHead += 1
                    if s.inboxHead == s.inbox.count {
                        s.inbox.removeAll(keepingCapacity: true)
                        s.inboxHead = 0
                    }
                    s.buffered -= message.data.count
                    if s.readingPaused && s.buffered < Self.resumeReadingBelow {
                        s.readingPaused = false
                        resume = true
                    }
                    return .some(message)
                }
                if s.closed || s.peerClose != nil || s.violation != nil { return .some(nil) }
                precondition(s.reader == nil, "one WebSocket reader at a time")
                s.reader = continuation
                return .none
            }
            if resume { channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
            if case .some(let message) = answer { continuation.resume(returning: message) }
        }
    }

    /// Sends one message as a single frame; returns when it is handed to the socket.
    public func send(_ message: WebSocketMessage) async throws(WebSocketError) {
        do {
            try await sendNow(message).get()
        } catch {
            throw .connectionClosed
        }
    }

    /// Sends without waiting (the frame is queued on the channel in call order): for callers that must
    /// keep their own order under a lock, like SPDY tunneled over WebSocket.
    func sendNow(_ message: WebSocketMessage) -> EventLoopFuture<Void> {
        let open = state.withLock { !$0.closed && !$0.sentClose }
        guard open else { return channel.eventLoop.makeFailedFuture(WebSocketError.connectionClosed) }
        return write(WebSocketFrame(opcode: message.kind == .text ? .text : .binary, payload: message.data))
    }

    /// Sends a ping; the peer's pong is not waited for.
    public func ping(_ payload: [UInt8] = []) async throws(WebSocketError) {
        let open = state.withLock { !$0.closed && !$0.sentClose }
        guard open, payload.count <= 125 else { throw .connectionClosed }
        do {
            try await write(WebSocketFrame(opcode: .ping, payload: payload)).get()
        } catch {
            throw .connectionClosed
        }
    }

    /// The closing handshake (§7.1.2): sends a close frame with `code`, waits for the peer's close frame
    /// (or the connection's end) at most `timeout`, then closes the TCP connection. Idempotent.
    public func close(_ code: WebSocketCloseCode = .normal, reason: String = "", timeout: Duration = .seconds(5)) async {
        let send = state.withLock { s -> Bool in
            if s.closed || s.sentClose { return false }
            s.sentClose = true
            return true
        }
        if send {
            // Once the peer's close frame arrived too, `receive` ends the connection.
            let frame = WebSocketFrame.close(code, reason: reason)
            _ = try? await write(frame).get()
            if state.withLock({ $0.peerClose != nil }) { channel.close(promise: nil) }
        }
        let forced = Task { [channel] in
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { try? await channel.close() }
        }
        await waitClosed()
        forced.cancel()
    }

    /// Returns when the TCP connection is closed.
    public func waitClosed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let already = state.withLock { s in
                if s.closed { return true }
                s.closeWaiters.append(continuation)
                return false
            }
            if already { continuation.resume() }
        }
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// The peer's close frame, if one came.
    public var peerClose: (code: WebSocketCloseCode, reason: String)? { state.withLock { $0.peerClose } }

    /// The violation this end closed the connection for, if any.
    public var violation: WebSocketProtocolViolation? { state.withLock { $0.violation } }

    // MARK: - Bytes from the peer (event loop)

    func receive(_ bytes: [UInt8]) {
        var handOver: (CheckedContinuation<WebSocketMessage?, Never>, WebSocketMessage?)?
        var replies: [WebSocketFrame] = []
        var closeAfterReplies = false
        var pause = false
        state.withLock { s in
            // After the peer's close frame nothing more is read (§5.5.1); after a violation neither.
            guard !s.closed, s.peerClose == nil, s.violation == nil else { return }
            s.decoder.append(bytes)
            do throws(WebSocketProtocolViolation) {
                while let frame = try s.decoder.next() {
                    guard let event = try s.assembler.add(frame) else { continue }
                    switch event {
                    case .message(let message):
                        if let reader = s.reader {
                            s.reader = nil
                            handOver = (reader, message)
                        } else {
                            s.inbox.append(message)
                            s.buffered += message.data.count
                        }
                    case .ping(let payload):
                        if !s.sentClose { replies.append(WebSocketFrame(opcode: .pong, payload: payload)) }
                    case .pong:
                        break
                    case .close(let code, let reason):
                        s.peerClose = (code, reason)
                        if !s.sentClose {
                            // Echo the code (§5.5.1); a close without a code is answered without one.
                            s.sentClose = true
                            replies.append(code == .noStatus ? WebSocketFrame(opcode: .close) : .close(code))
                        }
                        closeAfterReplies = true
                        if let reader = s.reader {
                            s.reader = nil
                            handOver = (reader, nil)
                        }
                        return
                    }
                }
            } catch {
                s.violation = error
                if !s.sentClose {
                    s.sentClose = true
                    replies.append(.close(error.code, reason: error.reason))
                }
                closeAfterReplies = true
                if let reader = s.reader {
                    s.reader = nil
                    handOver = (reader, nil)
                }
                return
            }
            if s.buffered > Self.pauseReadingAbove && !s.readingPaused {
                s.readingPaused = true
                pause = true
            }
        }
        if pause { channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
        var last: EventLoopFuture<Void>?
        for frame in replies { last = write(frame) }
        if closeAfterReplies {
            let channel = self.channel
            if let last {
                last.whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
        }
        if let (reader, message) = handOver { reader.resume(returning: message) }
    }

    /// The TCP connection is gone: a waiting reader gets nil (after the queued messages), waiters return.
    func connectionClosed() {
        let (reader, waiters) = state.withLock { s in
            s.closed = true
            let reader = s.reader
            s.reader = nil
            let waiters = s.closeWaiters
            s.closeWaiters = []
            return (reader, waiters)
        }
        reader?.resume(returning: nil)
        waiters.forEach { $0.resume() }
    }

    // MARK: - Helpers

    /// Writes one frame, masked with a fresh key when this end is the client (§5.3).
    private func write(_ frame: WebSocketFrame) -> EventLoopFuture<Void> {
        var mask: [UInt8]?
        if role == .client {
            var generator = SystemRandomNumberGenerator()
            let key = generator.next() as UInt32
            mask = [UInt8(key >> 24), UInt8(truncatingIfNeeded: key >> 16), UInt8(truncatingIfNeeded: key >> 8), UInt8(truncatingIfNeeded: key)]
        }
        return channel.writeAndFlush(ByteBuffer(bytes: frame.encoded(mask: mask)))
    }
}
