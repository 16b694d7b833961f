import GRPCCore

/// One CRI RPC: its gRPC method descriptor and its request and response message types.
public struct CRIMethod<Request: CRIMessage, Response: CRIMessage>: Sendable {
    /// e.g. service "runtime.v1.RuntimeService", method "Version".
    public let descriptor: MethodDescriptor
    /// True for the RPCs that answer with a stream (GetContainerEvents and the Stream* calls).
    public let isServerStreaming: Bool

    init(service: String, method: String, isServerStreaming: Bool) {
        self.descriptor = MethodDescriptor(fullyQualifiedService: service, method: method)
        self.isServerStreaming = isServerStreaming
    }

    public var requestSerializer: CRISerializer<Request> { CRISerializer() }
    public var requestDeserializer: CRIDeserializer<Request> { CRIDeserializer() }
    public var responseSerializer: CRISerializer<Response> { CRISerializer() }
    public var responseDeserializer: CRIDeserializer<Response> { CRIDeserializer() }
}

/// gRPC serializer for any CRI message (protobuf binary via protobuf-c).
public struct CRISerializer<Message: CRIMessage>: MessageSerializer {
    public init() {}

    public func serialize<Bytes: GRPCContiguousBytes>(_ message: Message) throws -> Bytes {
        Bytes(message.serializedBytes())
    }
}

/// gRPC deserializer for any CRI message. Malformed input becomes an `invalidArgument` RPC error.
public struct CRIDeserializer<Message: CRIMessage>: MessageDeserializer {
    public init() {}

    public func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        let bytes = serializedMessageBytes.withUnsafeBytes { Array($0) }
        do {
            return try Message(serializedBytes: bytes)
        } catch {
            // The codec's message already reads "malformed runtime.v1.X: ...".
            throw RPCError(code: .invalidArgument, message: error.message)
        }
    }
}
