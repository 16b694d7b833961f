/// SPDY/3.1 framing (draft 3 and its 3.1 revision): the frames a Kubernetes streaming connection uses.
/// Control frames: `1 | version(15) | type(16) | flags(8) | length(24) | payload`; data frames:
/// `0 | stream-id(31) | flags(8) | length(24) | payload`. All integers are big-endian.
public enum SPDYFrame: Equatable, Sendable {
    case data(streamID: UInt32, fin: Bool, payload: [UInt8])
    case synStream(streamID: UInt32, associatedTo: UInt32, priority: UInt8, fin: Bool, unidirectional: Bool, headers: SPDYHeaders)
    case synReply(streamID: UInt32, fin: Bool, headers: SPDYHeaders)
    case rstStream(streamID: UInt32, status: SPDYResetStatus)
    case settings(clearPrevious: Bool, [SPDYSetting])
    case ping(id: UInt32)
    case goAway(lastGoodStreamID: UInt32, status: UInt32)
    case headers(streamID: UInt32, fin: Bool, headers: SPDYHeaders)
    case windowUpdate(streamID: UInt32, delta: UInt32)

    public static let version: UInt16 = 3

    enum ControlType: UInt16 {
        case synStream = 1, synReply = 2, rstStream = 3, settings = 4, ping = 6, goAway = 7, headers = 8, windowUpdate = 9
    }

    static let flagFin: UInt8 = 0x01
    static let flagUnidirectional: UInt8 = 0x02
    static let flagClearSettings: UInt8 = 0x01
    /// Largest payload the 24-bit length field can carry.
    public static let maxPayload = 0xFF_FFFF
}

/// RST_STREAM status codes (draft 3, 2.6.3).
public struct SPDYResetStatus: RawRepresentable, Equatable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let protocolError = SPDYResetStatus(rawValue: 1)
    public static let invalidStream = SPDYResetStatus(rawValue: 2)
    public static let refusedStream = SPDYResetStatus(rawValue: 3)
    public static let unsupportedVersion = SPDYResetStatus(rawValue: 4)
    public static let cancel = SPDYResetStatus(rawValue: 5)
    public static let internalError = SPDYResetStatus(rawValue: 6)
    public static let flowControlError = SPDYResetStatus(rawValue: 7)
    public static let streamInUse = SPDYResetStatus(rawValue: 8)
    public static let streamAlreadyClosed = SPDYResetStatus(rawValue: 9)
    public static let frameTooLarge = SPDYResetStatus(rawValue: 11)

    public var description: String {
        let names: [UInt32: String] = [
            1: "PROTOCOL_ERROR", 2: "INVALID_STREAM", 3: "REFUSED_STREAM", 4: "UNSUPPORTED_VERSION", 5: "CANCEL",
            6: "INTERNAL_ERROR", 7: "FLOW_CONTROL_ERROR", 8: "STREAM_IN_USE", 9: "STREAM_ALREADY_CLOSED", 11: "FRAME_TOO_LARGE",
        ]
        return names[rawValue] ?? "status \(rawValue)"
    }
}

/// One SETTINGS entry: `flags(8) | id(24) | value(32)`.
public struct SPDYSetting: Equatable, Sendable {
    public var flags: UInt8
    public var id: UInt32
    public var value: UInt32

    public init(flags: UInt8 = 0, id: UInt32, value: UInt32) {
        self.flags = flags
        self.id = id
        self.value = value
    }

    /// SETTINGS_INITIAL_WINDOW_SIZE: the sender's receive window for every new stream.
    public static let initialWindowSizeID: UInt32 = 7
}

/// A header block: name/value pairs, names in lower case (SPDY requires it; Go's framer rejects
/// anything else). Several values of one name travel as one value joined by NUL bytes.
public struct SPDYHeaders: Equatable, Sendable, ExpressibleByDictionaryLiteral {
    public struct Field: Equatable, Sendable {
        public var name: String
        public var value: String
    }

    public var fields: [Field]

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { Field(name: $0.0.lowercased(), value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// The first value of `name` (case-insensitive, as Go's http.Header.Get).
    public subscript(_ name: String) -> String? {
        let key = name.lowercased()
        guard let field = fields.first(where: { $0.name == key }) else { return nil }
        return field.value.split(separator: "\0", omittingEmptySubsequences: false).first.map(String.init)
    }

    /// The uncompressed block: `count(32) | (len(32) name len(32) value)*`.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.appendUInt32(UInt32(fields.count))
        for field in fields {
            out.appendUInt32(UInt32(field.name.utf8.count))
            out += field.name.utf8
            out.appendUInt32(UInt32(field.value.utf8.count))
            out += field.value.utf8
        }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(SPDYError) -> SPDYHeaders {
        var reader = ByteReader(bytes)
        guard let count = reader.uint32() else { throw .protocolError("header block shorter than its count") }
        var fields: [Field] = []
        for _ in 0..<count {
            guard let nameLength = reader.uint32(), let name = reader.bytes(Int(nameLength)),
                  let valueLength = reader.uint32(), let value = reader.bytes(Int(valueLength))
            else { throw .protocolError("header block truncated") }
            guard !name.isEmpty else { throw .protocolError("header block has an empty name") }
            let text = String(decoding: name, as: UTF8.self)
            guard text == text.lowercased() else { throw .protocolError("header name \"\(text)\" is not lower case") }
            fields.append(Field(name: text, value: String(decoding: value, as: UTF8.self)))
        }
        guard reader.remaining == 0 else { throw .protocolError("\(reader.remaining) bytes after the header block") }
        return SPDYHeaders(fields.map { ($0.name, $0.value) })
    }
}

/// Protocol-level failures, named after the SPDY error they amount to.
public enum SPDYError: Error, Equatable, CustomStringConvertible {
    case protocolError(String)
    case unsupportedVersion(UInt16)
    case frameTooLarge(Int)
    case compression(String)
    case streamReset(SPDYResetStatus)
    case connectionClosed
    case timedOut(String)

    public var description: String {
        switch self {
        case .protocolError(let what): "SPDY protocol error: \(what)"
        case .unsupportedVersion(let v): "SPDY version \(v) is not supported (only 3)"
        case .frameTooLarge(let n): "SPDY frame of \(n) bytes exceeds the limit"
        case .compression(let what): "SPDY header compression: \(what)"
        case .streamReset(let status): "stream reset by the peer (\(status))"
        case .connectionClosed: "streaming connection closed"
        case .timedOut(let what): "timed out \(what)"
        }
    }
}

/// Turns frames into bytes. Holds the connection's outgoing header compression context, so frames
/// must be written to the wire in the order they were encoded.
public final class SPDYFrameEncoder {
    private let deflater: ZlibDeflater

    public init() throws(SPDYError) {
        do {
            deflater = try ZlibDeflater(dictionary: SPDYDictionary.bytes)
        } catch {
            throw .compression("\(error)")
        }
    }

    public func encode(_ frame: SPDYFrame) throws(SPDYError) -> [UInt8] {
        var out: [UInt8] = []
        switch frame {
        case let .data(streamID, fin, payload):
            guard payload.count <= SPDYFrame.maxPayload else { throw .frameTooLarge(payload.count) }
            out.appendUInt32(streamID & 0x7FFF_FFFF)
            out.appendUInt32(UInt32(fin ? SPDYFrame.flagFin : 0) << 24 | UInt32(payload.count))
            out += payload
        case let .synStream(streamID, associatedTo, priority, fin, unidirectional, headers):
            let block = try compress(headers)
            var body: [UInt8] = []
            body.appendUInt32(streamID & 0x7FFF_FFFF)
            body.appendUInt32(associatedTo & 0x7FFF_FFFF)
            body += [(priority & 0x07) << 5, 0]
            body += block
            let flags = (fin ? SPDYFrame.flagFin : 0) | (unidirectional ? SPDYFrame.flagUnidirectional : 0)
            try appendControl(&out, .synStream, flags: flags, body: body)
        case let .synReply(streamID, fin, headers):
            var body: [UInt8] = []
            body.appendUInt32(streamID & 0x7FFF_FFFF)
            body += try compress(headers)
            try appendControl(&out, .synReply, flags: fin ? SPDYFrame.flagFin : 0, body: body)
        case let .rstStream(streamID, status):
            var body: [UInt8] = []
            body.appendUInt32(streamID & 0x7FFF_FFFF)
            body.appendUInt32(status.rawValue)
            try appendControl(&out, .rstStream, flags: 0, body: body)
        case let .settings(clear, entries):
            var body: [UInt8] = []
            body.appendUInt32(UInt32(entries.count))
            for entry in entries {
                body.appendUInt32(UInt32(entry.flags) << 24 | (entry.id & 0xFF_FFFF))
                body.appendUInt32(entry.value)
            }
            try appendControl(&out, .settings, flags: clear ? SPDYFrame.flagClearSettings : 0, body: body)
        case let .ping(id):
            var body: [UInt8] = []
            body.appendUInt32(id)
            try appendControl(&out, .ping, flags: 0, body: body)
        case let .goAway(last, status):
            var body: [UInt8] = []
            body.appendUInt32(last & 0x7FFF_FFFF)
            body.appendUInt32(status)
            try appendControl(&out, .goAway, flags: 0, body: body)
        case let .headers(streamID, fin, headers):
            var body: [UInt8] = []
            body.appendUInt32(streamID & 0x7FFF_FFFF)
            body += try compress(headers)
            try appendControl(&out, .headers, flags: fin ? SPDYFrame.flagFin : 0, body: body)
        case let .windowUpdate(streamID, delta):
            var body: [UInt8] = []
            body.appendUInt32(streamID & 0x7FFF_FFFF)
            body.appendUInt32(delta & 0x7FFF_FFFF)
            try appendControl(&out, .windowUpdate, flags: 0, body: body)
        }
        return out
    }

    private func compress(_ headers: SPDYHeaders) throws(SPDYError) -> [UInt8] {
        do {
            return try deflater.compress(headers.encoded())
        } catch {
            throw .compression("\(error)")
        }
    }

    private func appendControl(_ out: inout [UInt8], _ type: SPDYFrame.ControlType, flags: UInt8, body: [UInt8]) throws(SPDYError) {
        guard body.count <= SPDYFrame.maxPayload else { throw .frameTooLarge(body.count) }
        out.appendUInt16(0x8000 | SPDYFrame.version)
        out.appendUInt16(type.rawValue)
        out.appendUInt32(UInt32(flags) << 24 | UInt32(body.count))
        out += body
    }
}

/// Turns bytes into frames, however the bytes arrive. Holds the connection's incoming header
/// decompression context. Unknown control frame types are skipped, as the spec asks.
public final class SPDYFrameDecoder {
    private let inflater: ZlibInflater
    private var buffer: [UInt8] = []
    private var start = 0
    /// Frames larger than this are a protocol violation here (Kubernetes frames are small).
    public let maxFrameSize: Int

    public init(maxFrameSize: Int = 1 << 20) throws(SPDYError) {
        self.maxFrameSize = maxFrameSize
        do {
            inflater = try ZlibInflater(dictionary: SPDYDictionary.bytes)
        } catch {
            throw .compression("\(error)")
        }
    }

    public func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 64 * 1024 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil when more bytes are needed.
    public func next() throws(SPDYError) -> SPDYFrame? {
        while true {
            let available = buffer.count - start
            guard available >= 8 else { return nil }
            let b = buffer
            let s = start
            let length = Int(b[s + 5]) << 16 | Int(b[s + 6]) << 8 | Int(b[s + 7])
            guard length <= maxFrameSize else { throw .frameTooLarge(length) }
            guard available >= 8 + length else { return nil }
            let flags = b[s + 4]
            let payload = Array(b[(s + 8)..<(s + 8 + length)])
            start += 8 + length
            if b[s] & 0x80 == 0 {
                let streamID = (UInt32(b[s]) << 24 | UInt32(b[s + 1]) << 16 | UInt32(b[s + 2]) << 8 | UInt32(b[s + 3])) & 0x7FFF_FFFF
                return .data(streamID: streamID, fin: flags & SPDYFrame.flagFin != 0, payload: payload)
            }
            let version = (UInt16(b[s]) << 8 | UInt16(b[s + 1])) & 0x7FFF
            guard version == SPDYFrame.version else { throw .unsupportedVersion(version) }
            let rawType = UInt16(b[s + 2]) << 8 | UInt16(b[s + 3])
            guard let type = SPDYFrame.ControlType(rawValue: rawType) else { continue }
            return try control(type, flags: flags, payload: payload)
        }
    }

    private func control(_ type: SPDYFrame.ControlType, flags: UInt8, payload: [UInt8]) throws(SPDYError) -> SPDYFrame {
        var r = ByteReader(payload)
        let fin = flags & SPDYFrame.flagFin != 0
        func need(_ n: Int) throws(SPDYError) {
            guard payload.count >= n else { throw .protocolError("\(type) frame of \(payload.count) bytes, at least \(n) expected") }
        }
        switch type {
        case .synStream:
            try need(10)
            let id = r.uint32()! & 0x7FFF_FFFF
            let associated = r.uint32()! & 0x7FFF_FFFF
            let priority = r.bytes(1)![0] >> 5
            _ = r.bytes(1)
            guard id != 0 else { throw .protocolError("SYN_STREAM with stream id 0") }
            return .synStream(
                streamID: id, associatedTo: associated, priority: priority, fin: fin,
                unidirectional: flags & SPDYFrame.flagUnidirectional != 0, headers: try decompress(r.rest()))
        case .synReply:
            try need(4)
            let id = r.uint32()! & 0x7FFF_FFFF
            return .synReply(streamID: id, fin: fin, headers: try decompress(r.rest()))
        case .headers:
            try need(4)
            let id = r.uint32()! & 0x7FFF_FFFF
            return .headers(streamID: id, fin: fin, headers: try decompress(r.rest()))
        case .rstStream:
            guard payload.count == 8 else { throw .protocolError("RST_STREAM of \(payload.count) bytes, 8 expected") }
            return .rstStream(streamID: r.uint32()! & 0x7FFF_FFFF, status: SPDYResetStatus(rawValue: r.uint32()!))
        case .settings:
            try need(4)
            let count = Int(r.uint32()!)
            guard payload.count == 4 + 8 * count else { throw .protocolError("SETTINGS with \(count) entries in \(payload.count) bytes") }
            var entries: [SPDYSetting] = []
            for _ in 0..<count {
                let flagsAndID = r.uint32()!
                entries.append(SPDYSetting(flags: UInt8(flagsAndID >> 24), id: flagsAndID & 0xFF_FFFF, value: r.uint32()!))
            }
            return .settings(clearPrevious: flags & SPDYFrame.flagClearSettings != 0, entries)
        case .ping:
            guard payload.count == 4 else { throw .protocolError("PING of \(payload.count) bytes, 4 expected") }
            return .ping(id: r.uint32()!)
        case .goAway:
            // SPDY/3 adds a status code; accept the 4-byte SPDY/2 form too.
            guard payload.count == 8 || payload.count == 4 else { throw .protocolError("GOAWAY of \(payload.count) bytes") }
            let last = r.uint32()! & 0x7FFF_FFFF
            return .goAway(lastGoodStreamID: last, status: r.uint32() ?? 0)
        case .windowUpdate:
            guard payload.count == 8 else { throw .protocolError("WINDOW_UPDATE of \(payload.count) bytes, 8 expected") }
            return .windowUpdate(streamID: r.uint32()! & 0x7FFF_FFFF, delta: r.uint32()! & 0x7FFF_FFFF)
        }
    }

    private func decompress(_ block: [UInt8]) throws(SPDYError) -> SPDYHeaders {
        let plain: [UInt8]
        do {
            plain = try inflater.decompress(block)
        } catch {
            throw .compression("\(error)")
        }
        return try SPDYHeaders.decode(plain)
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func uint32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    mutating func bytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, remaining >= n else { return nil }
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }
}

extension Array where Element == UInt8 {
    mutating func appendUInt32(_ v: UInt32) {
        append(contentsOf: [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)])
    }

    mutating func appendUInt16(_ v: UInt16) {
        append(contentsOf: [UInt8(v >> 8), UInt8(v & 0xff)])
    }
}
