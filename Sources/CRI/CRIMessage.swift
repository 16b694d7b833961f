/// An error from encoding or decoding a CRI message (protobuf binary or proto3 JSON).
public struct CRICodecError: Error, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A Kubernetes CRI `runtime.v1` message.
///
/// The binary encoding goes through libprotobuf-c (the generated `runtime__v1__*__pack/__unpack`
/// functions); the JSON mapping follows the proto3 JSON rules.
public protocol CRIMessage: Sendable, Hashable {
    init()
    /// The fully qualified proto name, e.g. "runtime.v1.VersionRequest".
    static var protoName: String { get }
    /// Decodes the protobuf binary encoding. Unknown fields are skipped.
    init(serializedBytes: [UInt8]) throws(CRICodecError)
    /// The protobuf binary encoding. Map entries are written sorted by key.
    func serializedBytes() -> [UInt8]
    /// The proto3 JSON form: lowerCamelCase keys (like Go's protojson) or, with `useProtoNames`,
    /// the schema's snake_case names. Fields at their default value are omitted.
    func protoJSON(useProtoNames: Bool) -> ProtoJSON
    /// Reads the proto3 JSON form; accepts both key spellings, enum names or numbers, and 64-bit
    /// integers as strings or numbers. Unknown keys are ignored.
    init(protoJSON: ProtoJSON) throws(CRICodecError)
}

extension CRIMessage {
    /// Parses JSON text into this message.
    public init(jsonText: String) throws(CRICodecError) {
        try self.init(protoJSON: ProtoJSON.parse(jsonText))
    }

    /// JSON text of this message (see `protoJSON(useProtoNames:)`).
    public func jsonText(useProtoNames: Bool = false, pretty: Bool = false) -> String {
        protoJSON(useProtoNames: useProtoNames).serialized(pretty: pretty)
    }
}

/// A CRI enum: an open set of `Int32` values, some of which have names in the schema.
public protocol CRIEnum: RawRepresentable, Sendable, Hashable, CustomStringConvertible where RawValue == Int32 {
    init(rawValue: Int32)
    /// The schema's value name, or the decimal number for a value the schema does not name.
    var name: String { get }
    /// The value with this schema name, if any.
    init?(name: String)
}

extension CRIEnum {
    public var description: String { name }
}
