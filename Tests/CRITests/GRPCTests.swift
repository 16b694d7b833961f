import CRI
import GRPCCore
import Testing

@Suite("gRPC method table and coders")
struct GRPCTests {
    @Test("method table covers both services")
    func table() {
        #expect(CRIMethods.version.descriptor == MethodDescriptor(fullyQualifiedService: "runtime.v1.RuntimeService", method: "Version"))
        #expect(CRIMethods.version.descriptor.fullyQualifiedMethod == "runtime.v1.RuntimeService/Version")
        #expect(CRIMethods.imageFsInfo.descriptor.fullyQualifiedMethod == "runtime.v1.ImageService/ImageFsInfo")
        #expect(CRIMethods.runPodSandbox.descriptor.method == "RunPodSandbox")
        #expect(CRIMethods.getContainerEvents.isServerStreaming)
        #expect(CRIMethods.streamImages.isServerStreaming)
        #expect(!CRIMethods.listContainers.isServerStreaming)
        let all = CRIMethods.all
        #expect(all.count == 43)
        #expect(Set(all.map(\.descriptor)).count == all.count)
        #expect(all.filter { $0.descriptor.service.fullyQualifiedService == "runtime.v1.ImageService" }.count == 6)
        #expect(all.filter(\.isServerStreaming).count == 7)
    }

    @Test("serializer and deserializer round trip")
    func coders() throws {
        var req = VersionResponse()
        req.runtimeName = "skiff"
        let bytes: [UInt8] = try CRISerializer<VersionResponse>().serialize(req)
        #expect(bytes == req.serializedBytes())
        #expect(try CRIDeserializer<VersionResponse>().deserialize(bytes) == req)
        #expect(try CRIMethods.version.responseDeserializer.deserialize(bytes) == req)
    }

    @Test("malformed bytes are INVALID_ARGUMENT naming the message")
    func malformed() {
        do {
            _ = try CRIDeserializer<VersionRequest>().deserialize([0x0A, 0x05, 0x61] as [UInt8])
            Issue.record("truncated input was accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("malformed runtime.v1.VersionRequest: "))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
