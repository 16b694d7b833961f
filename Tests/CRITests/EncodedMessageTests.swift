import CRI
import GRPCCore
import Testing

@Suite("Responses composed from encoded items")
struct EncodedMessageTests {
    func container(_ i: Int) -> Container {
        var c = Container()
        c.id = String(repeating: String(i % 10), count: 64)
        c.podSandboxId = "pod-\(i)"
        var metadata = ContainerMetadata()
        metadata.name = "c\(i)"
        metadata.attempt = UInt32(i)
        c.metadata = metadata
        var image = ImageSpec()
        image.image = "busybox:\(i)"
        c.image = image
        c.state = i.isMultiple(of: 2) ? .containerRunning : .containerExited
        c.createdAt = 1_700_000_000_000_000_000 + Int64(i)
        // Long enough that lengths need two-byte varints.
        c.labels = ["io.kubernetes.container.name": "c\(i)", "skiff": String(repeating: "x", count: 200)]
        c.annotations = i.isMultiple(of: 3) ? [:] : ["a": "b"]
        return c
    }

    @Test func aListResponseIsTheConcatenationOfItsItems() throws {
        for count in [0, 1, 3, 200] {
            let items = (0..<count).map(container)
            var writer = RepeatedMessageWriter(fieldNumber: 1)
            for item in items { writer.append(encoded: item.serializedBytes()) }
            var whole = ListContainersResponse()
            whole.containers = items
            #expect(writer.bytes == whole.serializedBytes(), "\(count) items")
            #expect(try ListContainersResponse(serializedBytes: writer.bytes) == whole)
        }
    }

    @Test func fieldKeysAndLengthsAreVarints() {
        var writer = RepeatedMessageWriter(fieldNumber: 16)  // key 16<<3|2 = 130: two bytes
        writer.append(encoded: [UInt8](repeating: 7, count: 300))  // length 300: two bytes
        #expect(Array(writer.bytes.prefix(4)) == [0x82, 0x01, 0xac, 0x02])
        #expect(writer.bytes.count == 4 + 300)
        var empty = RepeatedMessageWriter(fieldNumber: 1)
        empty.append(encoded: [])
        #expect(empty.bytes == [0x0a, 0x00])
    }

    @Test func theSerializerSendsTheBytesAsTheyAre() throws {
        var response = ListContainersResponse()
        response.containers = [container(1)]
        let encoded = EncodedMessage(response)
        let out: [UInt8] = try EncodedMessageSerializer<ListContainersResponse>().serialize(encoded)
        #expect(out == response.serializedBytes())
        #expect(try encoded.decoded == response)
    }
}
