/// What remote command and port forwarding need from a transport, so that one implementation of
/// each serves SPDY streams and WebSocket channels alike.

/// One logical byte stream of a session: a SPDY stream, or one channel of a WebSocket channel protocol.
public protocol DuplexStream: AnyObject, Sendable {
    /// The next chunk from the peer; nil once the peer ended this stream or the connection ended.
    func read() async -> [UInt8]?
    /// Sends `bytes`; returns when they are handed to the socket. Throws once the stream or the
    /// connection is gone.
    func write(_ bytes: [UInt8]) async throws
    /// Ends this side of the stream: SPDY sends FIN; a WebSocket channel sends the v5 CLOSE signal
    /// where the protocol and role have one, and nothing otherwise (the end then comes with the
    /// connection's).
    func closeWrite() async
    /// Whether the peer aborted this stream or the whole connection is gone (nothing more will come).
    var isAborted: Bool { get }
    /// This end is done reading: a pending and every later `read` return nil. For streams the peer
    /// cannot end on its own (WebSocket channels before v5); others end by the peer's FIN or reset
    /// and ignore it.
    func stopReading()
}

extension DuplexStream {
    public func stopReading() {}

    /// Everything until the peer's end, at most `limit` bytes.
    public func readAll(limit: Int = 1 << 20) async -> [UInt8] {
        var out: [UInt8] = []
        while let chunk = await read() {
            out += chunk
            if out.count >= limit { break }
        }
        return out
    }
}

/// One upgraded connection carrying streams.
public protocol StreamingSession: AnyObject, Sendable {
    /// Returns when the connection is closed (by either side, or a failure).
    func waitClosed() async
    var isClosed: Bool { get }
    /// Ends the connection now.
    func close()
    /// The server's end of a finished session: lets the client read what was written, then closes.
    /// SPDY waits for the client to close (it does once it read the status), at most `timeout`;
    /// WebSocket starts the closing handshake, which is how its clients learn that the streams ended.
    func closeGracefully(timeout: Duration) async
}
