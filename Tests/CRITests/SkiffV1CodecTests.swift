import CRI
import Testing

/// Skiff's own schema (proto/skiff/v1/pulls.proto) through the same generator and protobuf-c codec.
@Suite struct SkiffV1CodecTests {
    static func filled() -> SkiffV1.PullStatus {
        var layer = SkiffV1.LayerProgress()
        layer.digest = "sha256:" + String(repeating: "ab", count: 32)
        layer.size = 3_000_000_000
        layer.downloaded = 1_500_000
        layer.state = .layerDownloading
        var s = SkiffV1.PullStatus()
        s.id = 7
        s.reference = "docker.io/library/busybox:latest"
        s.phase = .pullFetchingLayers
        s.startedAt = 1_763_900_000_123_456_789
        s.layers = [layer, SkiffV1.LayerProgress()]
        s.error = "naïve"
        return s
    }

    @Test func wireBytesAreProtobufs() throws {
        var request = SkiffV1.ListPullsRequest()
        request.image = "busybox"
        #expect(request.serializedBytes() == [0x0A, 7] + Array("busybox".utf8))
        var status = SkiffV1.PullStatus()
        status.id = 1
        status.phase = .pullComplete
        // field 1 varint 1; field 3 varint 2.
        #expect(status.serializedBytes() == [0x08, 0x01, 0x18, 0x02])
        #expect(try SkiffV1.PullStatus(serializedBytes: [0x08, 0x01, 0x18, 0x02]) == status)
    }

    @Test func filledMessageRoundTripsThroughBinaryAndJSON() throws {
        var response = SkiffV1.ListPullsResponse()
        response.pulls = [Self.filled(), SkiffV1.PullStatus()]
        #expect(try SkiffV1.ListPullsResponse(serializedBytes: response.serializedBytes()) == response)
        let json = response.jsonText(useProtoNames: false)
        #expect(json.contains(#""phase":"PULL_FETCHING_LAYERS""#) && json.contains(#""startedAt":"1763900000123456789""#))
        #expect(json.contains(#""state":"LAYER_DOWNLOADING""#) && json.contains(#""id":"7""#))
        #expect(try SkiffV1.ListPullsResponse(jsonText: json) == response)
        #expect(try SkiffV1.ListPullsResponse(jsonText: response.jsonText(useProtoNames: true)) == response)
    }

    @Test func everyTypeHasEmptyDefaultsAndSurvivesGarbage() {
        #expect(SkiffV1MessageTypes.all.count == 4)
        #expect(SkiffV1Methods.all.map(\.descriptor.fullyQualifiedMethod) == ["skiff.v1.PullProgressService/ListPulls"])
        var rng = SeededRandom(seed: 0x5C1FF)
        for type in SkiffV1MessageTypes.all { check(type, &rng) }
    }

    private func check<M: CRIMessage>(_: M.Type, _ rng: inout SeededRandom) {
        #expect(M.protoName.hasPrefix("skiff.v1."))
        #expect(M().serializedBytes().isEmpty)
        #expect((try? M(serializedBytes: [])) == M())
        var thrown = 0
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 1...48, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            do {
                let m = try M(serializedBytes: bytes)
                #expect(try M(serializedBytes: m.serializedBytes()) == m, "\(M.protoName)")
            } catch {
                thrown += 1
                #expect(error.message.hasPrefix("malformed \(M.protoName)"))
            }
        }
        #expect(thrown > 100)
    }
}
