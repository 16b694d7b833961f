import Foundation
import Synchronization

/// Kubernetes' channel subprotocols for WebSocket (apimachinery's wsstream): every message carries one
/// channel's data, its first byte naming the channel (exec/attach: 0 stdin, 1 stdout, 2 stderr,
/// 3 error, 4 resize; port forwarding: 2n data and 2n+1 error of the n-th requested port). The base64
/// variants send text messages whose first character is the channel as an ASCII digit and whose rest
/// is the data in standard base64. v5 adds a CLOSE signal: a binary message `[255, channel]` ends that
/// channel's direction, so stdin can end without the connection (v1–v4 have no way to).
public struct WebSocketChannelProtocol: Hashable, Sendable, CustomStringConvertible {
    public enum Encoding: Sendable { case binary, base64 }

    /// The subprotocol name ("" when the client offered none: kubelet then speaks v1, binary).
    public let name: String
    public let encoding: Encoding
    /// The remotecommand semantics it carries: 4 and up report the exit as a JSON `metav1.Status`,
    /// 5 adds the CLOSE signal.
    public let version: Int

    public var hasCloseSignal: Bool { version >= 5 }
    public var description: String { name.isEmpty ? "(none)" : name }

    public static let v5 = WebSocketChannelProtocol(name: RemoteCommand.v5, encoding: .binary, version: 5)
    public static let v4 = WebSocketChannelProtocol(name: RemoteCommand.v4, encoding: .binary, version: 4)
    public static let v4Base64 = WebSocketChannelProtocol(name: "v4.base64.channel.k8s.io", encoding: .base64, version: 4)
    public static let v3 = WebSocketChannelProtocol(name: RemoteCommand.v3, encoding: .binary, version: 3)
    public static let v2 = WebSocketChannelProtocol(name: RemoteCommand.v2, encoding: .binary, version: 2)
    public static let v1 = WebSocketChannelProtocol(name: RemoteCommand.v1, encoding: .binary, version: 1)
    public static let v1Base64 = WebSocketChannelProtocol(name: "base64.channel.k8s.io", encoding: .base64, version: 1)
    public static let unnamed = WebSocketChannelProtocol(name: "", encoding: .binary, version: 1)

    /// Exec and attach, newest first (the order negotiation prefers).
    public static let remoteCommand: [WebSocketChannelProtocol] = [.v5, .v4, .v4Base64, .v3, .v2, .v1, .v1Base64]
    /// Port forwarding over channels, as kubelet serves it.
    public static let portForward: [WebSocketChannelProtocol] = [.v4, .v4Base64]

    /// The channel protocol a negotiated subprotocol name stands for.
    public static func named(_ name: String, among known: [WebSocketChannelProtocol]) -> WebSocketChannelProtocol? {
        name.isEmpty ? .unnamed : known.first { $0.name == name }
    }

    /// The v5 CLOSE signal's first byte.
    public static let closeSignal: UInt8 = 255
}

/// A WebSocket connection split into channels. A reader task takes the connection's messages and
/// queues each channel's data for its reader; data for channels not opened for reading is dropped
/// (kubelet's ignored channels). A channel holding more than 1 MiB unread stops the reader task until
/// it is read (head-of-line blocking, as kubelet's and client-go's pipes do), and with it the socket.
public final class WebSocketChannelSession: StreamingSession {
    public let connection: WebSocketConnection
    public let proto: WebSocketChannelProtocol
    static let channelBufferLimit = 1 << 20

    struct ChannelState {
        var chunks: [[UInt8]] = []
        var buffered = 0
        /// The peer sent the CLOSE signal for it, or the connection ended.
        var ended = false
        var reader: CheckedContinuation<[UInt8]?, Never>?
    }

    struct State {
        var channels: [UInt8: ChannelState] = [:]
        /// The reader task waits here while this channel is over its buffer limit.
        var drained: (channel: UInt8, continuation: CheckedContinuation<Void, Never>)?
        /// The connection is gone: the reader task no longer waits for slow channel readers.
        var gone = false
    }

    private let state = Mutex(State())
    private let readable: Set<UInt8>

    /// Starts reading `connection`; `readable` are the channels whose incoming data is kept.
    public init(connection: WebSocketConnection, protocol proto: WebSocketChannelProtocol, readable: Set<UInt8>) {
        self.connection = connection
        self.proto = proto
        self.readable = readable
        state.withLock { s in
            for n in readable { s.channels[n] = ChannelState() }
        }
        Task { await self.demultiplex() }
        // A reader task held up by a channel nobody reads any more must not outlive the connection:
        // once it is gone the reader task queues without waiting, drains what arrived, and ends.
        Task { [connection] in
            await connection.waitClosed()
            let drained = self.state.withLock { s in
                s.gone = true
                defer { s.drained = nil }
                return s.drained
            }
            drained?.continuation.resume()
        }
    }

    /// Channel `n` (reading only if it was opened readable).
    public func channel(_ n: UInt8) -> WebSocketChannel { WebSocketChannel(number: n, session: self) }

    // MARK: - StreamingSession

    public func waitClosed() async { await connection.waitClosed() }
    public var isClosed: Bool { connection.isClosed }
    public func close() { Task { await connection.close() } }
    public func closeGracefully(timeout: Duration) async { await connection.close(.normal, timeout: timeout) }

    // MARK: - Channels

    func read(_ n: UInt8) async -> [UInt8]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
            var drained: CheckedContinuation<Void, Never>?
            let answer: [UInt8]?? = state.withLock { s in
                guard var channel = s.channels[n] else { return .some(nil) }
                if !channel.chunks.isEmpty {
                    let chunk = channel.chunks.removeFirst()
                    channel.buffered -= chunk.count
                    s.channels[n] = channel
                    if channel.buffered <= Self.channelBufferLimit, s.drained?.channel == n {
                        drained = s.drained?.continuation
                        s.drained = nil
                    }
                    return .some(chunk)
                }
                if channel.ended { return .some(nil) }
                precondition(channel.reader == nil, "one reader per channel")
                channel.reader = continuation
                s.channels[n] = channel
                return .none
            }
            drained?.resume()
            if case .some(let chunk) = answer { continuation.resume(returning: chunk) }
        }
    }

    func write(_ n: UInt8, _ bytes: [UInt8]) async throws(WebSocketError) {
        // Messages stay small: the peer's reader buffers a message at a time.
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + 32 * 1024)
            try await connection.send(message(n, bytes[offset..<end]))
            offset = end
        } while offset < bytes.count
    }

    /// A message with the channel's prefix and no data: kubelet's "connection established" notice.
    func announce(_ n: UInt8) async throws(WebSocketError) {
        try await connection.send(message(n, []))
    }

    func closeWrite(_ n: UInt8) async {
        // Only v5 can end a channel, and only clients do (client-go logs a server's CLOSE as an
        // unknown stream; kubelet never sends one).
        guard proto.hasCloseSignal, connection.role == .client else { return }
        try? await connection.send(.binary([WebSocketChannelProtocol.closeSignal, n]))
    }

    /// Bytes received for channel `n` and not read yet.
    func queuedBytes(_ n: UInt8) -> Int { state.withLock { $0.channels[n]?.buffered ?? 0 } }

    private func message(_ n: UInt8, _ data: ArraySlice<UInt8>) -> WebSocketMessage {
        switch proto.encoding {
        case .binary:
            var bytes = [n]
            bytes += data
            return .binary(bytes)
        case .base64:
            return WebSocketMessage(.text, [UInt8(ascii: "0") &+ n] + Array(Data(data).base64EncodedString().utf8))
        }
    }

    // MARK: - Reader task

    private func demultiplex() async {
        receiving: while let message = await connection.next() {
            guard let first = message.data.first else { continue }
            if proto.hasCloseSignal && first == WebSocketChannelProtocol.closeSignal {
                guard message.data.count == 2 else {
                    await connection.close(.protocolError, reason: "a CLOSE signal names exactly one channel")
                    break receiving
                }
                end(message.data[1])
                continue
            }
            var payload = Array(message.data.dropFirst())
            let n: UInt8
            switch proto.encoding {
            case .binary:
                n = first
            case .base64:
                n = first &- UInt8(ascii: "0")
                guard let decoded = Data(base64Encoded: Data(payload)) else {
                    await connection.close(.invalidPayload, reason: "channel \(n): invalid base64")
                    break receiving
                }
                payload = Array(decoded)
            }
            guard readable.contains(n), !payload.isEmpty else { continue }
            await deliver(n, payload)
        }
        endAll()
    }

    /// The reader task is done (the connection ended): every channel's reader gets what is queued, then nil.
    private func endAll() {
        let (readers, drained) = state.withLock { s in
            s.gone = true
            var readers: [CheckedContinuation<[UInt8]?, Never>] = []
            for n in s.channels.keys {
                s.channels[n]!.ended = true
                if let r = s.channels[n]!.reader { readers.append(r) }
                s.channels[n]!.reader = nil
            }
            let drained = s.drained?.continuation
            s.drained = nil
            return (readers, drained)
        }
        readers.forEach { $0.resume(returning: nil) }
        drained?.resume()
    }

    private func deliver(_ n: UInt8, _ payload: [UInt8]) async {
        let reader: CheckedContinuation<[UInt8]?, Never>? = state.withLock { s in
            guard var channel = s.channels[n], !channel.ended else { return nil }
            if let reader = channel.reader {
                channel.reader = nil
                s.channels[n] = channel
                return reader
            }
            channel.chunks.append(payload)
            channel.buffered += payload.count
            s.channels[n] = channel
            return nil
        }
        if let reader {
            reader.resume(returning: payload)
            return
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let wait = state.withLock { s in
                guard let channel = s.channels[n], channel.buffered > Self.channelBufferLimit, !s.gone else { return false }
                s.drained = (n, continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// Ends channel `n`'s incoming side: after what is queued (the peer's CLOSE signal), or at once,
    /// dropping it (this end stopped reading).
    func end(_ n: UInt8, discarding: Bool = false) {
        let (reader, drained): (CheckedContinuation<[UInt8]?, Never>?, CheckedContinuation<Void, Never>?) = state.withLock { s in
            guard var channel = s.channels[n] else { return (nil, nil) }
            channel.ended = true
            if discarding {
                channel.chunks = []
                channel.buffered = 0
            }
            let reader = channel.reader
            channel.reader = nil
            s.channels[n] = channel
            // Dropping the queue unblocks the reader task if it waits for this channel.
            let drained = discarding && s.drained?.channel == n ? s.drained?.continuation : nil
            if drained != nil { s.drained = nil }
            return (reader, drained)
        }
        reader?.resume(returning: nil)
        drained?.resume()
    }
}

/// One channel of a `WebSocketChannelSession`.
public final class WebSocketChannel: DuplexStream {
    public let number: UInt8
    public let session: WebSocketChannelSession

    init(number: UInt8, session: WebSocketChannelSession) {
        self.number = number
        self.session = session
    }

    public func read() async -> [UInt8]? { await session.read(number) }

    public func write(_ bytes: [UInt8]) async throws {
        guard !bytes.isEmpty else { return }
        try await session.write(number, bytes)
    }

    /// Sends the channel's prefix with no data (kubelet's notice that the streams are ready).
    public func announce() async throws { try await session.announce(number) }

    public func closeWrite() async { await session.closeWrite(number) }

    public func stopReading() { session.end(number, discarding: true) }

    /// Channels are never reset on their own: only the connection's end aborts them.
    public var isAborted: Bool { session.isClosed }
}
