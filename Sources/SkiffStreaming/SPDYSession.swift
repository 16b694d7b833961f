import NIOCore
import Synchronization

/// One SPDY/3.1 connection after the HTTP upgrade, either end. Streams are created by the client
/// (odd ids; Kubernetes servers never open streams) and accepted or reset by the server.
///
/// Flow control. Receiving: this end announces a large initial stream window (SETTINGS) and raises
/// the session window once, then sends WINDOW_UPDATE as the application consumes data. Sending:
/// stream and session windows are honoured as soon as the peer shows it does flow control (it sent
/// SETTINGS_INITIAL_WINDOW_SIZE or any WINDOW_UPDATE). spdystream, the SPDY library of client-go and
/// kubelet, does neither and ignores windows; waiting for its window updates would stall every stream
/// at 64 KiB, so with such a peer data is sent unthrottled, as kubelet itself does. In every case a
/// write completes only when the bytes are handed to the socket, so a slow reader slows the writer.
public final class SPDYSession: StreamingSession {
    public enum Role: Sendable { case client, server }

    /// Window this end grants per stream and (after the first update) to the session.
    public static let receiveWindow: Int64 = 1 << 20
    static let defaultWindow: Int64 = 65_536
    static let maxChunk = 32 * 1024
    /// Buffered incoming bytes above which the socket is no longer read (for peers ignoring windows).
    static let pauseReadingAbove = 4 << 20
    static let resumeReadingBelow = 1 << 20

    public let role: Role
    let transport: any SPDYTransport
    private let state: Mutex<State>
    /// Streams the peer opens (server role), in arrival order. Finishes when the connection closes.
    public let incomingStreams: AsyncStream<SPDYStream>
    private let incomingContinuation: AsyncStream<SPDYStream>.Continuation

    struct StreamState {
        var headers: SPDYHeaders
        var chunks: [[UInt8]] = []
        var remoteClosed = false
        var resetStatus: SPDYResetStatus?
        var localClosed = false
        var replied = false
        var readWaiter: CheckedContinuation<[UInt8]?, Never>?
        var replyWaiter: CheckedContinuation<Void, any Error>?
        var sendWindow: Int64
        var consumed: Int64 = 0
    }

    struct State {
        var encoder: SPDYFrameEncoder
        var streams: [UInt32: StreamState] = [:]
        var nextStreamID: UInt32
        var lastRemoteStreamID: UInt32 = 0
        var peerInitialWindow = SPDYSession.defaultWindow
        var sessionSendWindow = SPDYSession.defaultWindow
        var sessionConsumed: Int64 = 0
        var flowControlActive = false
        var windowWaiters: [CheckedContinuation<Void, Never>] = []
        var buffered = 0
        var readingPaused = false
        var goneAway = false
        var closed = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    convenience init(channel: any Channel, role: Role) throws(SPDYError) {
        try self.init(transport: ChannelTransport(channel: channel), role: role)
    }

    init(transport: any SPDYTransport, role: Role) throws(SPDYError) {
        self.transport = transport
        self.role = role
        state = Mutex(State(encoder: try SPDYFrameEncoder(), nextStreamID: role == .client ? 1 : 2))
        (incomingStreams, incomingContinuation) = AsyncStream.makeStream(of: SPDYStream.self)
    }

    /// First frames of a session: the large receive window (see the type's comment).
    func start() {
        send([
            .settings(clearPrevious: false, [SPDYSetting(id: SPDYSetting.initialWindowSizeID, value: UInt32(Self.receiveWindow))]),
            .windowUpdate(streamID: 0, delta: UInt32(Self.receiveWindow - Self.defaultWindow)),
        ])
    }

    // MARK: - Application side

    /// Opens a stream (client role) and waits for the peer's SYN_REPLY.
    public func openStream(headers: SPDYHeaders, timeout: Duration = .seconds(30)) async throws(SPDYError) -> SPDYStream {
        let id: UInt32 = try state.withLock { s throws(SPDYError) in
            guard !s.closed, !s.goneAway else { throw .connectionClosed }
            let id = s.nextStreamID
            s.nextStreamID += 2
            s.streams[id] = StreamState(headers: headers, sendWindow: s.peerInitialWindow)
            try write(&s, [.synStream(streamID: id, associatedTo: 0, priority: 0, fin: false, unidirectional: false, headers: headers)])
            return id
        }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.failReply(id, .timedOut("waiting for the reply to stream \(id)"))
        }
        defer { timer.cancel() }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: (any Error)?? = state.withLock { s in
                    guard var stream = s.streams[id] else { return .some(SPDYError.connectionClosed) }
                    if stream.replied { return .some(nil) }
                    if let status = stream.resetStatus { return .some(SPDYError.streamReset(status)) }
                    if s.closed { return .some(SPDYError.connectionClosed) }
                    stream.replyWaiter = continuation
                    s.streams[id] = stream
                    return .none
                }
                if case .some(let error) = resumeNow {
                    if let error { continuation.resume(throwing: error) } else { continuation.resume() }
                }
            }
        } catch let error as SPDYError {
            throw error
        } catch {
            throw .connectionClosed
        }
        return SPDYStream(id: id, headers: headers, session: self)
    }

    /// Sends GOAWAY and closes the connection once everything written so far is on the wire.
    public func close() {
        let last: UInt32? = state.withLock { s in
            if s.closed || s.goneAway { return nil }
            s.goneAway = true
            _ = try? write(&s, [.goAway(lastGoodStreamID: s.lastRemoteStreamID, status: 0)])
            return s.lastRemoteStreamID
        }
        _ = last
        transport.close()
    }

    /// Returns when the connection is closed (by either side, or a failure).
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

    /// The client closes the connection once it has read the status; give it a moment to, so that
    /// closing a socket with unread input (a TCP reset) cannot cut off what was just written.
    public func closeGracefully(timeout: Duration) async {
        let closer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { self?.close() }
        }
        await waitClosed()
        closer.cancel()
    }

    /// Received bytes the application has not read yet.
    var bufferedBytes: Int { state.withLock { $0.buffered } }

    // MARK: - Stream operations (called through SPDYStream)

    func accept(_ id: UInt32) {
        state.withLock { s in
            guard var stream = s.streams[id], !stream.replied else { return }
            stream.replied = true
            s.streams[id] = stream
            _ = try? write(&s, [.synReply(streamID: id, fin: false, headers: SPDYHeaders())])
        }
    }

    func read(_ id: UInt32) async -> [UInt8]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
            let answer: [UInt8]?? = state.withLock { s in
                guard var stream = s.streams[id] else { return .some(nil) }
                if !stream.chunks.isEmpty {
                    let chunk = stream.chunks.removeFirst()
                    s.streams[id] = stream
                    consumed(&s, id, chunk.count)
                    return .some(chunk)
                }
                if stream.remoteClosed { return .some(nil) }
                stream.readWaiter = continuation
                s.streams[id] = stream
                return .none
            }
            if case .some(let chunk) = answer { continuation.resume(returning: chunk) }
        }
    }

    func write(_ id: UInt32, _ bytes: [UInt8], fin: Bool) async throws(SPDYError) {
        var offset = 0
        repeat {
            let wanted = min(Self.maxChunk, bytes.count - offset)
            let (future, sent) = try await waitForWindow(id, wanted: wanted, fin: fin && offset + wanted == bytes.count, bytes: bytes, offset: offset)
            offset += sent
            if let future {
                do {
                    try await future.get()
                } catch {
                    throw .connectionClosed
                }
            }
        } while offset < bytes.count
    }

    /// Sends as much of `bytes[offset...]` (up to `wanted`) as the windows allow, waiting for window
    /// updates if they are shut.
    private func waitForWindow(_ id: UInt32, wanted: Int, fin: Bool, bytes: [UInt8], offset: Int) async throws(SPDYError) -> (EventLoopFuture<Void>?, Int) {
        while true {
            let outcome: Result<(EventLoopFuture<Void>?, Int)?, SPDYError> = state.withLock { s in
                guard !s.closed, var stream = s.streams[id] else { return .failure(.connectionClosed) }
                if let status = stream.resetStatus { return .failure(.streamReset(status)) }
                guard !stream.localClosed else { return .failure(.protocolError("write after close on stream \(id)")) }
                var n = wanted
                if s.flowControlActive {
                    n = Int(min(Int64(wanted), stream.sendWindow, s.sessionSendWindow))
                    if n <= 0 && wanted > 0 { return .success(nil) }
                    stream.sendWindow -= Int64(n)
                    s.sessionSendWindow -= Int64(n)
                }
                let last = fin && n == wanted
                if last { stream.localClosed = true }
                s.streams[id] = stream
                do throws(SPDYError) {
                    let future = try write(&s, [.data(streamID: id, fin: last, payload: Array(bytes[offset..<(offset + n)]))])
                    if last { removeIfDone(&s, id) }
                    return .success((future, n))
                } catch {
                    return .failure(error)
                }
            }
            switch outcome {
            case .failure(let error): throw error
            case .success(.some(let result)): return result
            case .success(.none):
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let open = state.withLock { s in
                        let shut = s.streams[id].map { $0.sendWindow <= 0 } ?? false || s.sessionSendWindow <= 0
                        if !shut || s.closed { return false }
                        s.windowWaiters.append(continuation)
                        return true
                    }
                    if !open { continuation.resume() }
                }
            }
        }
    }

    func closeWrite(_ id: UInt32) async {
        let future: EventLoopFuture<Void>? = state.withLock { s in
            guard !s.closed, var stream = s.streams[id], !stream.localClosed, stream.resetStatus == nil else { return nil }
            stream.localClosed = true
            s.streams[id] = stream
            let future = try? write(&s, [.data(streamID: id, fin: true, payload: [])])
            removeIfDone(&s, id)
            return future
        }
        try? await future?.get()
    }

    func reset(_ id: UInt32, status: SPDYResetStatus) {
        let waiters: (CheckedContinuation<[UInt8]?, Never>?, CheckedContinuation<Void, any Error>?) = state.withLock { s in
            guard let stream = s.streams.removeValue(forKey: id) else { return (nil, nil) }
            s.buffered -= stream.chunks.reduce(0) { $0 + $1.count }
            if !s.closed { _ = try? write(&s, [.rstStream(streamID: id, status: status)]) }
            return (stream.readWaiter, stream.replyWaiter)
        }
        waiters.0?.resume(returning: nil)
        waiters.1?.resume(throwing: SPDYError.streamReset(status))
        resumeReading()
    }

    func resetStatus(_ id: UInt32) -> SPDYResetStatus? { state.withLock { $0.streams[id]?.resetStatus } }

    // MARK: - Frames from the peer (event loop)

    func receive(_ frame: SPDYFrame) {
        switch frame {
        case let .synStream(id, _, _, fin, unidirectional, headers):
            let stream: SPDYStream? = state.withLock { s in
                let fromPeer = role == .server ? id % 2 == 1 : id % 2 == 0
                guard fromPeer, id > s.lastRemoteStreamID, !s.goneAway else {
                    _ = try? write(&s, [.rstStream(streamID: id, status: .protocolError)])
                    return nil
                }
                s.lastRemoteStreamID = id
                var st = StreamState(headers: headers, sendWindow: s.peerInitialWindow)
                st.remoteClosed = fin
                st.localClosed = unidirectional
                s.streams[id] = st
                return SPDYStream(id: id, headers: headers, session: self)
            }
            if let stream { incomingContinuation.yield(stream) }
        case let .synReply(id, fin, _):
            let waiter: CheckedContinuation<Void, any Error>? = state.withLock { s in
                guard var stream = s.streams[id], !stream.replied else { return nil }
                stream.replied = true
                if fin { stream.remoteClosed = true }
                let waiter = stream.replyWaiter
                stream.replyWaiter = nil
                s.streams[id] = stream
                return waiter
            }
            waiter?.resume()
        case let .data(id, fin, payload):
            deliver(id, payload, fin: fin)
        case let .headers(id, fin, _):
            if fin { deliver(id, [], fin: true) }
        case let .rstStream(id, status):
            let waiters: (CheckedContinuation<[UInt8]?, Never>?, CheckedContinuation<Void, any Error>?) = state.withLock { s in
                guard var stream = s.streams[id] else { return (nil, nil) }
                stream.resetStatus = status
                stream.remoteClosed = true
                s.buffered -= stream.chunks.reduce(0) { $0 + $1.count }
                stream.chunks = []
                let w = (stream.readWaiter, stream.replyWaiter)
                stream.readWaiter = nil
                stream.replyWaiter = nil
                s.streams[id] = stream
                return w
            }
            waiters.0?.resume(returning: nil)
            waiters.1?.resume(throwing: SPDYError.streamReset(status))
            wakeWindowWaiters()
        case let .settings(_, entries):
            state.withLock { s in
                for entry in entries where entry.id == SPDYSetting.initialWindowSizeID {
                    let delta = Int64(entry.value) - s.peerInitialWindow
                    s.peerInitialWindow = Int64(entry.value)
                    s.flowControlActive = true
                    for id in s.streams.keys { s.streams[id]!.sendWindow += delta }
                }
            }
            wakeWindowWaiters()
        case let .windowUpdate(id, delta):
            state.withLock { s in
                s.flowControlActive = true
                if id == 0 {
                    s.sessionSendWindow += Int64(delta)
                } else if s.streams[id] != nil {
                    s.streams[id]!.sendWindow += Int64(delta)
                }
            }
            wakeWindowWaiters()
        case let .ping(id):
            // Answer the peer's pings (their ids have the peer's parity); ours coming back need nothing.
            let peerParity: UInt32 = role == .server ? 1 : 0
            if id % 2 == peerParity { send([.ping(id: id)]) }
        case .goAway:
            state.withLock { $0.goneAway = true }
        }
    }

    private func deliver(_ id: UInt32, _ payload: [UInt8], fin: Bool) {
        let (waiter, chunk): (CheckedContinuation<[UInt8]?, Never>?, [UInt8]?) = state.withLock { s in
            guard var stream = s.streams[id], !stream.remoteClosed else { return (nil, nil) }
            if fin { stream.remoteClosed = true }
            // A reader is waiting only when nothing is buffered: hand the bytes (or the end) straight over.
            if let waiter = stream.readWaiter, !payload.isEmpty || fin {
                stream.readWaiter = nil
                s.streams[id] = stream
                if payload.isEmpty {
                    removeIfDone(&s, id)
                    return (waiter, nil)
                }
                s.buffered += payload.count
                consumed(&s, id, payload.count)
                return (waiter, payload)
            }
            if !payload.isEmpty {
                stream.chunks.append(payload)
                s.buffered += payload.count
            }
            s.streams[id] = stream
            if s.buffered > Self.pauseReadingAbove && !s.readingPaused {
                s.readingPaused = true
                transport.setReading(false)
            }
            return (nil, nil)
        }
        waiter?.resume(returning: chunk)
    }

    /// The peer's connection went away: everything waiting is released.
    func connectionClosed() {
        let (readers, repliers, closers, windowWaiters) = state.withLock { s in
            s.closed = true
            var readers: [CheckedContinuation<[UInt8]?, Never>] = []
            var repliers: [CheckedContinuation<Void, any Error>] = []
            for id in s.streams.keys {
                s.streams[id]!.remoteClosed = true
                if let r = s.streams[id]!.readWaiter { readers.append(r) }
                if let r = s.streams[id]!.replyWaiter { repliers.append(r) }
                s.streams[id]!.readWaiter = nil
                s.streams[id]!.replyWaiter = nil
            }
            let closers = s.closeWaiters
            s.closeWaiters = []
            let windowWaiters = s.windowWaiters
            s.windowWaiters = []
            return (readers, repliers, closers, windowWaiters)
        }
        readers.forEach { $0.resume(returning: nil) }
        repliers.forEach { $0.resume(throwing: SPDYError.connectionClosed) }
        windowWaiters.forEach { $0.resume() }
        closers.forEach { $0.resume() }
        incomingContinuation.finish()
    }

    // MARK: - Helpers

    private func failReply(_ id: UInt32, _ error: SPDYError) {
        let waiter: CheckedContinuation<Void, any Error>? = state.withLock { s in
            guard var stream = s.streams[id], !stream.replied else { return nil }
            let waiter = stream.replyWaiter
            stream.replyWaiter = nil
            stream.resetStatus = .cancel
            s.streams[id] = stream
            return waiter
        }
        waiter?.resume(throwing: error)
    }

    private func consumed(_ s: inout State, _ id: UInt32, _ count: Int) {
        s.buffered -= count
        guard var stream = s.streams[id] else { return }
        stream.consumed += Int64(count)
        var updates: [SPDYFrame] = []
        if stream.consumed >= Self.receiveWindow / 2 && !stream.remoteClosed {
            updates.append(.windowUpdate(streamID: id, delta: UInt32(stream.consumed)))
            stream.consumed = 0
        }
        s.streams[id] = stream
        s.sessionConsumed += Int64(count)
        if s.sessionConsumed >= Self.receiveWindow / 2 {
            updates.append(.windowUpdate(streamID: 0, delta: UInt32(s.sessionConsumed)))
            s.sessionConsumed = 0
        }
        if !updates.isEmpty && !s.closed { _ = try? write(&s, updates) }
        if s.readingPaused && s.buffered < Self.resumeReadingBelow {
            s.readingPaused = false
            transport.setReading(true)
        }
        removeIfDone(&s, id)
    }

    private func resumeReading() {
        state.withLock { s in
            if s.readingPaused && s.buffered < Self.resumeReadingBelow {
                s.readingPaused = false
                transport.setReading(true)
            }
        }
    }

    /// A stream closed both ways with nothing left to read is forgotten.
    private func removeIfDone(_ s: inout State, _ id: UInt32) {
        guard let stream = s.streams[id] else { return }
        if stream.localClosed && stream.remoteClosed && stream.chunks.isEmpty && stream.readWaiter == nil {
            s.streams.removeValue(forKey: id)
        }
    }

    private func wakeWindowWaiters() {
        let waiters = state.withLock { s in
            let w = s.windowWaiters
            s.windowWaiters = []
            return w
        }
        waiters.forEach { $0.resume() }
    }

    /// Encodes and writes under the lock: header compression state requires wire order = encode order.
    @discardableResult
    private func write(_ s: inout State, _ frames: [SPDYFrame]) throws(SPDYError) -> EventLoopFuture<Void> {
        var bytes: [UInt8] = []
        for frame in frames { bytes += try s.encoder.encode(frame) }
        return transport.write(bytes)
    }

    private func send(_ frames: [SPDYFrame]) {
        state.withLock { s in
            if !s.closed { _ = try? write(&s, frames) }
        }
    }
}

/// One SPDY stream: read what the peer sends until its FIN, write with flow control, half-close with
/// `closeWrite`, abort with `reset`.
public final class SPDYStream: DuplexStream {
    public let id: UInt32
    public let headers: SPDYHeaders
    let session: SPDYSession

    init(id: UInt32, headers: SPDYHeaders, session: SPDYSession) {
        self.id = id
        self.headers = headers
        self.session = session
    }

    /// Server side: accept the peer's stream (SYN_REPLY).
    public func accept() { session.accept(id) }

    /// The next chunk from the peer; nil once it half-closed (FIN), reset the stream, or the connection ended.
    public func read() async -> [UInt8]? { await session.read(id) }

    public func write(_ bytes: [UInt8]) async throws(SPDYError) {
        guard !bytes.isEmpty else { return }
        try await session.write(id, bytes, fin: false)
    }

    /// Half-closes this end (an empty DATA frame with FIN).
    public func closeWrite() async { await session.closeWrite(id) }

    public func reset(_ status: SPDYResetStatus = .cancel) { session.reset(id, status: status) }

    /// Set when the peer reset the stream.
    public var resetStatus: SPDYResetStatus? { session.resetStatus(id) }

    /// Whether the whole connection is gone.
    public var isConnectionClosed: Bool { session.isClosed }

    public var isAborted: Bool { resetStatus != nil || isConnectionClosed }
}
