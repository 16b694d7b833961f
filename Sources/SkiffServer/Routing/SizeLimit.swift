import CRI
import GRPCCore

/// Enforces `max_message_bytes` with a proper RESOURCE_EXHAUSTED status. The HTTP/2 transport's own limit
/// resets the stream instead of answering with a status, so the transport is given head-room
/// (`transportLimit`) and the configured limit is checked here, where an error becomes a status.
struct SizeLimitedDeserializer<Message: CRIMessage>: MessageDeserializer {
    let limit: Int

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        guard serializedMessageBytes.count <= limit else {
            throw RPCError(
                code: .resourceExhausted,
                message: "\(Message.protoName) of \(serializedMessageBytes.count) bytes exceeds the limit of \(limit) bytes (max_message_bytes)")
        }
        return try CRIDeserializer<Message>().deserialize(serializedMessageBytes)
    }

    /// What the transport accepts before it resets a stream: four times the configured limit.
    static func transportLimit(for limit: Int) -> Int {
        let (product, overflow) = limit.multipliedReportingOverflow(by: 4)
        return overflow ? Int(UInt32.max) : min(product, Int(UInt32.max))
    }
}
