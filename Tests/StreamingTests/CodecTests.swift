import Testing
@testable import SkiffStreaming

@Suite("SPDY/3.1 codec")
struct CodecTests {
    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    @Test func dictionaryMatchesTheSpec() throws {
        // Draft 3 gives 1423 bytes; zlib's DICTID is its Adler-32, which every peer puts in the zlib header.
        #expect(SPDYDictionary.bytes.count == 1423)
        let deflater = try ZlibDeflater(dictionary: SPDYDictionary.bytes)
        let out = try deflater.compress(SPDYHeaders([("streamtype", "error")]).encoded())
        #expect(Array(out.prefix(6)) == [0x78, 0xBB, 0xE3, 0xC6, 0xA7, 0xC2])
        // A sync flush ends every block with the empty stored block 00 00 ff ff.
        #expect(Array(out.suffix(4)) == [0x00, 0x00, 0xFF, 0xFF])
    }

    @Test func inflatesHeaderBlocksFromAnotherImplementation() throws {
        // Two consecutive header blocks of one connection, compressed by CPython's zlib with the spec's
        // dictionary and Z_SYNC_FLUSH (the second block refers back to the first).
        let first = Self.hex("78bbe3c6a7c202e50e703a2b294a4dcc851625aca9a0808614cb45e01c6061606100000000ffff")
        let second = Self.hex("02d28c184a41a54e22000000ffff")
        let inflater = try ZlibInflater(dictionary: SPDYDictionary.bytes)
        let one = try SPDYHeaders.decode(try inflater.decompress(first))
        #expect(one == SPDYHeaders([("streamtype", "error"), ("port", "8080")]))
        let two = try SPDYHeaders.decode(try inflater.decompress(second))
        #expect(two == SPDYHeaders([("streamtype", "data")]))
    }

    @Test func inflaterWithoutDictionaryFails() throws {
        let inflater = try ZlibInflater()
        #expect(throws: ZlibError.self) { try inflater.decompress(Self.hex("78bbe3c6a7c202e50e703a2b294a4dcc851625aca9a0808614cb45e01c6061606100000000ffff")) }
    }

    @Test func fixedFramesHaveTheSpecLayout() throws {
        let encoder = try SPDYFrameEncoder()
        #expect(try encoder.encode(.rstStream(streamID: 1, status: .cancel)) == Self.hex("8003000300000008" + "00000001" + "00000005"))
        #expect(try encoder.encode(.ping(id: 2)) == Self.hex("8003000600000004" + "00000002"))
        #expect(try encoder.encode(.goAway(lastGoodStreamID: 5, status: 0)) == Self.hex("8003000700000008" + "00000005" + "00000000"))
        #expect(try encoder.encode(.windowUpdate(streamID: 3, delta: 0x10000)) == Self.hex("8003000900000008" + "00000003" + "00010000"))
        #expect(try encoder.encode(.settings(clearPrevious: false, [SPDYSetting(id: 7, value: 1 << 20)]))
            == Self.hex("800300040000000c" + "00000001" + "00000007" + "00100000"))
        #expect(try encoder.encode(.data(streamID: 3, fin: true, payload: Array("hi".utf8))) == Self.hex("00000003" + "01000002" + "6869"))
    }

    @Test(arguments: [
        SPDYFrame.data(streamID: 1, fin: false, payload: Array(repeating: 7, count: 70_000)),
        .data(streamID: 9, fin: true, payload: []),
        .synStream(streamID: 1, associatedTo: 0, priority: 3, fin: false, unidirectional: false, headers: SPDYHeaders([("streamtype", "stdout")])),
        .synStream(streamID: 3, associatedTo: 1, priority: 0, fin: true, unidirectional: true, headers: SPDYHeaders([("a", "1\u{0}2"), ("b", "")])),
        .synReply(streamID: 1, fin: false, headers: SPDYHeaders()),
        .headers(streamID: 5, fin: true, headers: SPDYHeaders([("x", "y")])),
        .rstStream(streamID: 7, status: .flowControlError),
        .settings(clearPrevious: true, [SPDYSetting(flags: 1, id: 4, value: 100), SPDYSetting(id: 7, value: 65536)]),
        .ping(id: 1),
        .goAway(lastGoodStreamID: 11, status: 1),
        .windowUpdate(streamID: 0, delta: 0x7FFF_FFFF),
    ])
    func roundTrips(_ frame: SPDYFrame) throws {
        let encoder = try SPDYFrameEncoder()
        let decoder = try SPDYFrameDecoder()
        // Twice through the same contexts: the second header block depends on the first.
        let bytes = try encoder.encode(frame) + encoder.encode(frame)
        // Byte by byte: frames may be split anywhere by TCP.
        var decoded: [SPDYFrame] = []
        for byte in bytes {
            decoder.append([byte])
            while let f = try decoder.next() { decoded.append(f) }
        }
        #expect(decoded == [frame, frame])
    }

    @Test func decoderRejectsOtherVersionsAndHugeFrames() throws {
        let v2 = try SPDYFrameDecoder()
        v2.append(Self.hex("8002000600000004" + "00000001"))
        #expect(throws: SPDYError.unsupportedVersion(2)) { try v2.next() }
        let small = try SPDYFrameDecoder(maxFrameSize: 16)
        small.append(Self.hex("0000000100000020"))
        #expect(throws: SPDYError.frameTooLarge(32)) { try small.next() }
    }

    @Test func decoderSkipsUnknownControlFrames() throws {
        let decoder = try SPDYFrameDecoder()
        // Type 10 (CREDENTIAL, unused here) then a PING.
        decoder.append(Self.hex("8003000a00000002" + "abcd" + "8003000600000004" + "00000003"))
        #expect(try decoder.next() == .ping(id: 3))
        #expect(try decoder.next() == nil)
    }

    @Test func headerBlocksRejectUpperCaseAndTruncation() throws {
        var upper = SPDYHeaders([("x", "1")]).encoded()
        upper[8] = UInt8(ascii: "X")
        #expect(throws: SPDYError.self) { try SPDYHeaders.decode(upper) }
        let block = SPDYHeaders([("name", "value")]).encoded()
        #expect(throws: SPDYError.self) { try SPDYHeaders.decode(Array(block.dropLast())) }
        #expect(SPDYHeaders([("Port", "80\u{0}81")])["PORT"] == "80")
    }
}
