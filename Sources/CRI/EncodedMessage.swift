import GRPCCore

/// A message already in its protobuf binary form, sent as is: for responses built from parts encoded
/// earlier (see `RepeatedMessageWriter`).
public struct EncodedMessage<Message: CRIMessage>: Sendable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init(_ message: Message) {
        self.bytes = message.serializedBytes()
    }

    public var decoded: Message {
        get throws(CRICodecError) { try Message(serializedBytes: bytes) }
    }
}

/// gRPC serializer for `EncodedMessage`: the bytes go out untouched.
public struct EncodedMessageSerializer<Message: CRIMessage>: MessageSerializer {
    public init() {}

    public func serialize<Bytes: GRPCContiguousBytes>(_ message: EncodedMessage<Message>) throws -> Bytes {
        Bytes(message.bytes)
    }
}

/// Builds the binary form of a message whose only set field is one `repeated` message field from the
/// elements' own binary forms. The wire format makes this exact: such a field is each element's key
/// (field number, wire type 2), length and bytes, in order — what protobuf-c writes for the whole message.
/// A List response is then a concatenation of per-item encodings that can be kept between calls.
public struct RepeatedMessageWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    private let key: [UInt8]

    public init(fieldNumber: Int, reservingCapacity capacity: Int = 0) {
        precondition(fieldNumber > 0 && fieldNumber < 1 << 29, "protobuf field numbers are 1...2^29-1")
        key = Self.varint(UInt64(fieldNumber) << 3 | 2)
        bytes.reserveCapacity(capacity)
    }

    public mutating func append(encoded element: [UInt8]) {
        bytes += key
        bytes += Self.varint(UInt64(element.count))
        bytes += element
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }
}
