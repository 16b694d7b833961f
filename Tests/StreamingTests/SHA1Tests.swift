import Testing
@testable import SkiffStreaming

@Suite("SHA-1")
struct SHA1Tests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }

    /// FIPS 180-2 appendix A and RFC 3174 section 7.3 (TEST1, TEST2, TEST3, TEST4), plus the empty
    /// message and the 896-bit two-block message of FIPS 180-4's examples.
    @Test(arguments: [
        ("abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        ("a", 1_000_000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
        ("0123456701234567012345670123456701234567012345670123456701234567", 10, "dea356a2cddd90c7a7ecedc5ebb563934f460452"),
        ("", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", 1,
         "a49b2446a02c645bf419f995b67091253a04a259"),
    ])
    func knownVectors(text: String, repeat count: Int, digest: String) {
        var sha = SHA1()
        for _ in 0..<count { sha.update(Array(text.utf8)) }
        #expect(Self.hex(sha.finalize()) == digest)
    }

    /// Lengths around the padding boundary (55/56/63/64 bytes) agree with a one-shot hash of the same
    /// bytes fed in uneven pieces.
    @Test func paddingBoundariesAndSplitUpdates() {
        for length in [55, 56, 57, 63, 64, 65, 119, 120, 128] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var pieces = SHA1()
            var offset = 0
            var step = 1
            while offset < bytes.count {
                let end = min(bytes.count, offset + step)
                pieces.update(bytes[offset..<end])
                offset = end
                step += 3
            }
            #expect(pieces.finalize() == SHA1.hash(bytes), "length \(length)")
        }
        // 55 zero bytes still fit the length in the same block; 56 need a second one (CPython hashlib).
        #expect(Self.hex(SHA1.hash([UInt8](repeating: 0, count: 55))) == "8e8832c642a6a38c74c17fc92ccedc266c108e6c")
        #expect(Self.hex(SHA1.hash([UInt8](repeating: 0, count: 56))) == "9438e360f578e12c0e0e8ed28e2c125c1cefee16")
    }
}
