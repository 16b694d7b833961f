import CRI
import Testing

/// Random and truncated input must decode or throw CRICodecError, never crash; whatever decodes
/// must re-encode and survive JSON both ways.
@Suite("Fuzz-style robustness")
struct FuzzTests {
    /// A random, mostly well-formed wire message: random field numbers (the schema uses 1...20)
    /// and wire types, nested messages in length-delimited fields.
    static func randomMessage(_ rng: inout SeededRandom, depth: Int = 0) -> [UInt8] {
        var w = Wire()
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            let field = Int.random(in: 1...20, using: &rng)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0, 1:
                let v: UInt64 = switch Int.random(in: 0..<4, using: &rng) {
                case 0: UInt64.random(in: 0...3, using: &rng)
                case 1: UInt64.random(in: 0...1000, using: &rng)
                case 2: UInt64.max  // -1 as int64
                default: rng.next()
                }
                w.varintField(field, v)
            case 2:
                w.fixed64(field, rng.next())
            case 3:
                w.fixed32(field, UInt32.random(in: 0...UInt32.max, using: &rng))
            default:
                if depth < 4, Bool.random(using: &rng) {
                    w.lengthDelimited(field, randomMessage(&rng, depth: depth + 1))
                } else {
                    let n = Int.random(in: 0...12, using: &rng)
                    w.lengthDelimited(field, (0..<n).map { _ in UInt8.random(in: 0x20...0x7E, using: &rng) })
                }
            }
        }
        return w.bytes
    }

    struct Stats {
        var decoded = 0
        var nonEmpty = 0
        var longest: [UInt8] = []
    }

    @Test("structured random messages: decode or throw; decoded ones round-trip (binary and JSON)")
    func structured() throws {
        var typesWithFields = 0
        var totalDecoded = 0
        for (i, type) in CRIMessageTypes.all.enumerated() {
            var rng = SeededRandom(seed: 0x5EED_0000 + UInt64(i))
            let stats = try structured(type, &rng)
            totalDecoded += stats.decoded
            if stats.nonEmpty > 0 { typesWithFields += 1 }
        }
        // 175 types, 18 of them without fields: every type with fields must have been exercised.
        #expect(typesWithFields == 175 - 18)
        #expect(totalDecoded > 175 * 100)
    }

    private func structured<M: CRIMessage>(_: M.Type, _ rng: inout SeededRandom) throws -> Stats {
        var stats = Stats()
        for _ in 0..<400 {
            let input = Self.randomMessage(&rng)
            guard let m = try? M(serializedBytes: input) else { continue }
            stats.decoded += 1
            let bytes = m.serializedBytes()
            if !bytes.isEmpty { stats.nonEmpty += 1 }
            if bytes.count > stats.longest.count { stats.longest = bytes }
            let again = try M(serializedBytes: bytes)
            #expect(again.serializedBytes() == bytes, "\(M.protoName) binary round trip")
            // JSON both ways; compare JSON text (NaN payloads make == and byte comparison unfit).
            for names in [false, true] {
                let text = m.jsonText(useProtoNames: names, pretty: names)
                let back = try M(jsonText: text)
                #expect(back.jsonText(useProtoNames: names, pretty: names) == text, "\(M.protoName) JSON round trip")
            }
        }
        // Truncations of the richest encoding.
        for n in 0..<stats.longest.count {
            _ = try? M(serializedBytes: Array(stats.longest.prefix(n)))
        }
        return stats
    }

    @Test("every prefix of every vector decodes or throws CRICodecError", arguments: Vector.all)
    func truncatedVectors(_ v: Vector) throws {
        let type = try #require(messageTypesByName["runtime.v1." + v.name])
        var rejected = 0
        for n in 0..<v.bin.count {
            if !decodes(type, Array(v.bin.prefix(n))) { rejected += 1 }
        }
        // A cut inside a field is always malformed; only cuts at field boundaries may decode.
        if v.bin.count > 2 { #expect(rejected > 0) }
    }

    private func decodes<M: CRIMessage>(_: M.Type, _ bytes: [UInt8]) -> Bool {
        do {
            _ = try M(serializedBytes: bytes)
            return true
        } catch {
            #expect(error.message.hasPrefix("malformed \(M.protoName): "))
            return false
        }
    }

    @Test("seeded random byte strings decode or throw, for every type")
    func randomBytes() {
        var rng = SeededRandom(seed: 42)
        var thrown = 0
        for type in CRIMessageTypes.all {
            for _ in 0..<300 {
                let n = Int.random(in: 0...64, using: &rng)
                let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if !decodes(type, bytes) { thrown += 1 }
            }
        }
        #expect(thrown > CRIMessageTypes.all.count * 200)
    }

    @Test("unknown fields (newer clients) are skipped", arguments: Vector.all)
    func unknownFields(_ v: Vector) throws {
        let type = try #require(messageTypesByName["runtime.v1." + v.name])
        try withUnknown(type, v.bin)
    }

    private func withUnknown<M: CRIMessage>(_: M.Type, _ bin: [UInt8]) throws {
        let plain = try M(serializedBytes: bin)
        var w = Wire()
        w.varintField(1000, 7)
        w.fixed64(1001, 0x0102_0304_0506_0708)
        w.lengthDelimited(1002, Array("from the future".utf8))
        w.fixed32(1003, 9)
        w.lengthDelimited(536_870_911, [0x08, 0x01])  // the largest field number
        #expect(try M(serializedBytes: bin + w.bytes) == plain)
        #expect(try M(serializedBytes: w.bytes + bin) == plain)
    }

    @Test("hostile lengths and wire types are rejected")
    func hostile() {
        // A length prefix far beyond the input.
        #expect(!decodes(PodSandboxConfig.self, [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))
        // Field 1 (a message) sent as a varint.
        #expect(!decodes(PodSandboxConfig.self, [0x08, 0x01]))
        // Wire types 3/4 (groups), 6 and 7 (invalid), and field number 0.
        #expect(!decodes(VersionRequest.self, [0x0B]))
        #expect(!decodes(VersionRequest.self, [0x0E, 0x00]))
        #expect(!decodes(VersionRequest.self, [0x0F, 0x00]))
        #expect(!decodes(VersionRequest.self, [0x02, 0x00]))
        // An over-long varint.
        #expect(!decodes(StopContainerRequest.self, [0x10] + [UInt8](repeating: 0xFF, count: 11) + [0x01]))
        // Deep nesting: a chain of PodSandboxConfig.linux.security_context... built by hand.
        var inner: [UInt8] = []
        for _ in 0..<10_000 {
            var w = Wire()
            w.lengthDelimited(1000, inner)
            inner = w.bytes
        }
        _ = decodes(PodSandboxConfig.self, inner)
    }
}
