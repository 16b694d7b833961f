/// WebSocket framing (RFC 6455 §5): frames, their byte layout, masking, and the rules a receiver
/// enforces. No extensions are negotiated, so every RSV bit must be zero.
///
///      0               1               2               3
///     +-+-+-+-+-------+-+-------------+-------------------------------+
///     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
///     |I|S|S|S|  (4)  |A|     (7)     |          (16/64 bits)         |
///     |N|V|V|V|       |S|             |  (if payload len == 126/127)  |
///     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
///     |     Masking-key (32 bits), if MASK set    |  Payload data ... |
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    public var isControl: Bool { rawValue & 0x8 != 0 }
}

public struct WebSocketFrame: Equatable, Sendable {
    public var fin: Bool
    public var opcode: WebSocketOpcode
    /// Unmasked payload.
    public var payload: [UInt8]

    public init(fin: Bool = true, opcode: WebSocketOpcode, payload: [UInt8] = []) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
    }

    /// The frame's bytes; with `mask` (clients must mask, servers must not) the payload is XORed
    /// with the key (§5.3).
    public func encoded(mask: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 14)
        out.append((fin ? 0x80 : 0) | opcode.rawValue)
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        // The minimal length encoding (§5.2: "the minimal number of bytes MUST be used").
        switch payload.count {
        case 0...125:
            out.append(maskBit | UInt8(payload.count))
        case 126...0xFFFF:
            out.append(maskBit | 126)
            out += [UInt8(payload.count >> 8), UInt8(truncatingIfNeeded: payload.count)]
        default:
            out.append(maskBit | 127)
            let n = UInt64(payload.count)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: n >> UInt64(shift))) }
        }
        if let mask {
            precondition(mask.count == 4, "a WebSocket masking key has 4 bytes")
            out += mask
            let start = out.count
            out += payload
            Self.applyMask(mask, to: &out, from: start)
        } else {
            out += payload
        }
        return out
    }

    /// XORs `bytes[from...]` with the 4-byte key (masking and unmasking are the same operation).
    static func applyMask(_ mask: [UInt8], to bytes: inout [UInt8], from start: Int) {
        bytes.withUnsafeMutableBufferPointer { buffer in
            var i = start
            var k = 0
            while i < buffer.count {
                buffer[i] ^= mask[k]
                k = (k + 1) & 3
                i += 1
            }
        }
    }

    /// A close frame's payload: the status code and a UTF-8 reason (together at most 125 bytes).
    public static func close(_ code: WebSocketCloseCode, reason: String = "") -> WebSocketFrame {
        var payload = [UInt8(code.rawValue >> 8), UInt8(truncatingIfNeeded: code.rawValue)]
        payload += Array(reason.utf8.prefix(123))
        return WebSocketFrame(opcode: .close, payload: payload)
    }
}

/// Status codes of a close frame (§7.4.1) this implementation sends or names.
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let normal = WebSocketCloseCode(1000)
    public static let goingAway = WebSocketCloseCode(1001)
    public static let protocolError = WebSocketCloseCode(1002)
    public static let unsupportedData = WebSocketCloseCode(1003)
    /// Never on the wire: a close frame that carried no code.
    public static let noStatus = WebSocketCloseCode(1005)
    /// Never on the wire: the connection ended without a close frame.
    public static let abnormal = WebSocketCloseCode(1006)
    public static let invalidPayload = WebSocketCloseCode(1007)
    public static let policyViolation = WebSocketCloseCode(1008)
    public static let messageTooBig = WebSocketCloseCode(1009)
    public static let internalError = WebSocketCloseCode(1011)

    /// Whether a peer may send this code in a close frame: the defined codes except the ones reserved
    /// for local use (1004, 1005, 1006, 1015), and the registered/private ranges 3000–4999.
    public var isValidOnTheWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014: true
        case 3000...4999: true
        default: false
        }
    }

    public var description: String { String(rawValue) }
}

/// Why a received byte stream is not acceptable WebSocket, with the close code to answer it with.
public struct WebSocketProtocolViolation: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: WebSocketCloseCode
    public let reason: String

    public init(_ code: WebSocketCloseCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "WebSocket protocol violation (\(code)): \(reason)" }
}

/// Splits received bytes into frames and checks each frame's header rules (§5.2, §5.5). Message-level
/// rules (fragment order, message size, UTF-8) are `WebSocketMessageAssembler`'s.
public struct WebSocketFrameDecoder: Sendable {
    /// Whether frames must be masked (a server decoding a client's frames) or must not be (a client).
    public let expectMasked: Bool
    /// Largest payload accepted for one frame (answered with 1009).
    public let maxFramePayload: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(expectMasked: Bool, maxFramePayload: Int) {
        self.expectMasked = expectMasked
        self.maxFramePayload = maxFramePayload
    }

    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 64 * 1024 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received but not yet part of a returned frame.
    public var bufferedCount: Int { buffer.count - start }

    /// The next complete frame; nil when more bytes are needed.
    public mutating func next() throws(WebSocketProtocolViolation) -> WebSocketFrame? {
        let available = buffer.count - start
        guard available >= 2 else { return nil }
        let b0 = buffer[start]
        let b1 = buffer[start + 1]
        guard b0 & 0x70 == 0 else { throw WebSocketProtocolViolation(.protocolError, "reserved bits set without a negotiated extension") }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else {
            throw WebSocketProtocolViolation(.protocolError, "reserved opcode \(b0 & 0x0F)")
        }
        let fin = b0 & 0x80 != 0
        let masked = b1 & 0x80 != 0
        if masked != expectMasked {
            throw WebSocketProtocolViolation(
                .protocolError, expectMasked ? "a client frame was not masked" : "a server frame was masked")
        }
        var headerLength = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            guard available >= 4 else { return nil }
            length = UInt64(buffer[start + 2]) << 8 | UInt64(buffer[start + 3])
            headerLength = 4
        } else if length == 127 {
            guard available >= 10 else { return nil }
            length = 0
            for i in 0..<8 { length = length << 8 | UInt64(buffer[start + 2 + i]) }
            guard length >> 63 == 0 else { throw WebSocketProtocolViolation(.protocolError, "payload length with the most significant bit set") }
            headerLength = 10
        }
        if opcode.isControl {
            guard fin else { throw WebSocketProtocolViolation(.protocolError, "fragmented control frame") }
            guard length <= 125 else { throw WebSocketProtocolViolation(.protocolError, "control frame payload of \(length) bytes (at most 125)") }
        }
        guard length <= UInt64(maxFramePayload) else {
            throw WebSocketProtocolViolation(.messageTooBig, "frame payload of \(length) bytes exceeds \(maxFramePayload)")
        }
        let maskOffset = start + headerLength
        if masked { headerLength += 4 }
        let total = headerLength + Int(length)
        guard available >= total else { return nil }
        let payloadStart = start + headerLength
        var payload = Array(buffer[payloadStart..<(payloadStart + Int(length))])
        if masked {
            WebSocketFrame.applyMask(Array(buffer[maskOffset..<(maskOffset + 4)]), to: &payload, from: 0)
        }
        start += total
        return WebSocketFrame(fin: fin, opcode: opcode, payload: payload)
    }
}

/// A complete data message, or a control frame, in the order they arrived.
public enum WebSocketEvent: Equatable, Sendable {
    case message(WebSocketMessage)
    case ping([UInt8])
    case pong([UInt8])
    /// The peer's close frame: its code (`.noStatus` if it gave none) and reason.
    case close(WebSocketCloseCode, String)
}

public struct WebSocketMessage: Equatable, Sendable {
    public enum Kind: Sendable { case text, binary }
    public var kind: Kind
    public var data: [UInt8]

    public init(_ kind: Kind, _ data: [UInt8]) {
        self.kind = kind
        self.data = data
    }

    public static func binary(_ data: [UInt8]) -> WebSocketMessage { WebSocketMessage(.binary, data) }
    public static func text(_ string: String) -> WebSocketMessage { WebSocketMessage(.text, Array(string.utf8)) }
}

/// Joins fragmented data frames into messages (§5.4): a message is a text or binary frame followed by
/// continuation frames until FIN; control frames may come between fragments and are passed on at
/// once. Enforces the message size limit (1009), fragment order (1002), UTF-8 text (1007) and the
/// close frame's payload rules (§5.5.1, §7.4).
public struct WebSocketMessageAssembler: Sendable {
    public let maxMessageSize: Int
    private var kind: WebSocketMessage.Kind?
    private var data: [UInt8] = []

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// What `frame` completes, if anything.
    public mutating func add(_ frame: WebSocketFrame) throws(WebSocketProtocolViolation) -> WebSocketEvent? {
        switch frame.opcode {
        case .ping:
            return .ping(frame.payload)
        case .pong:
            return .pong(frame.payload)
        case .close:
            return try Self.closeEvent(frame.payload)
        case .text, .binary:
            guard kind == nil else { throw WebSocketProtocolViolation(.protocolError, "a new data frame inside a fragmented message") }
            kind = frame.opcode == .text ? .text : .binary
            data = []
        case .continuation:
            guard kind != nil else { throw WebSocketProtocolViolation(.protocolError, "a continuation frame outside a fragmented message") }
        }
        guard data.count + frame.payload.count <= maxMessageSize else {
            throw WebSocketProtocolViolation(.messageTooBig, "message exceeds \(maxMessageSize) bytes")
        }
        data += frame.payload
        guard frame.fin, let complete = kind else { return nil }
        kind = nil
        let message = WebSocketMessage(complete, data)
        data = []
        if complete == .text && String(validating: message.data, as: UTF8.self) == nil {
            throw WebSocketProtocolViolation(.invalidPayload, "text message is not valid UTF-8")
        }
        return .message(message)
    }

    static func closeEvent(_ payload: [UInt8]) throws(WebSocketProtocolViolation) -> WebSocketEvent {
        if payload.isEmpty { return .close(.noStatus, "") }
        guard payload.count >= 2 else { throw WebSocketProtocolViolation(.protocolError, "close frame with a 1-byte payload") }
        let code = WebSocketCloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
        guard code.isValidOnTheWire else { throw WebSocketProtocolViolation(.protocolError, "invalid close code \(code)") }
        guard let reason = String(validating: payload[2...], as: UTF8.self) else {
            throw WebSocketProtocolViolation(.invalidPayload, "close reason is not valid UTF-8")
        }
        return .close(code, reason)
    }
}
