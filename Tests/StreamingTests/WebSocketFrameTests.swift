import Testing
@testable import SkiffStreaming

@Suite("WebSocket framing (RFC 6455 §5)")
struct WebSocketFrameTests {
    static let hello = Array("Hello".utf8)
    static let rfcMask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    /// Decodes everything in `bytes` as a server (client frames, masked) or a client would.
    static func decodeAll(_ bytes: [UInt8], asServer: Bool = true, max: Int = 1 << 20) throws(WebSocketProtocolViolation) -> [WebSocketEvent] {
        var decoder = WebSocketFrameDecoder(expectMasked: asServer, maxFramePayload: max)
        var assembler = WebSocketMessageAssembler(maxMessageSize: max)
        decoder.append(bytes)
        var events: [WebSocketEvent] = []
        while let frame = try decoder.next() {
            if let event = try assembler.add(frame) { events.append(event) }
        }
        return events
    }

    static func violation(_ bytes: [UInt8], asServer: Bool = true, max: Int = 1 << 20) -> WebSocketProtocolViolation? {
        do {
            _ = try decodeAll(bytes, asServer: asServer, max: max)
            return nil
        } catch {
            return error
        }
    }

    // MARK: - The RFC's examples (§5.7)

    @Test func rfcExamplesEncode() {
        #expect(WebSocketFrame(opcode: .text, payload: Self.hello).encoded() == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(WebSocketFrame(opcode: .text, payload: Self.hello).encoded(mask: Self.rfcMask)
            == [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        #expect(WebSocketFrame(fin: false, opcode: .text, payload: Array("Hel".utf8)).encoded() == [0x01, 0x03, 0x48, 0x65, 0x6C])
        #expect(WebSocketFrame(opcode: .continuation, payload: Array("lo".utf8)).encoded() == [0x80, 0x02, 0x6C, 0x6F])
        #expect(WebSocketFrame(opcode: .ping, payload: Self.hello).encoded() == [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(WebSocketFrame(opcode: .pong, payload: Self.hello).encoded(mask: Self.rfcMask)
            == [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        // 256 bytes: 16-bit length; 64 KiB: 64-bit length.
        #expect(Array(WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 1, count: 256)).encoded().prefix(4)) == [0x82, 0x7E, 0x01, 0x00])
        #expect(Array(WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 1, count: 65536)).encoded().prefix(10))
            == [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
        // Minimal length encoding at the edges.
        #expect(WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 0, count: 125)).encoded()[1] == 125)
        #expect(Array(WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 0, count: 126)).encoded()[1...3]) == [126, 0, 126])
        #expect(Array(WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 0, count: 65535)).encoded()[1...3]) == [126, 0xFF, 0xFF])
    }

    @Test func rfcExamplesDecode() throws {
        #expect(try Self.decodeAll([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]) == [.message(.text("Hello"))])
        #expect(try Self.decodeAll([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], asServer: false) == [.message(.text("Hello"))])
        #expect(try Self.decodeAll([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F], asServer: false) == [.message(.text("Hello"))])
        #expect(try Self.decodeAll([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]) == [.pong(Self.hello)])
    }

    /// Every split point of a stream of frames of all three length forms gives the same frames.
    @Test func roundTripsSplitAtEveryByte() throws {
        let frames = [
            WebSocketFrame(opcode: .binary, payload: [3, 1, 4]),
            WebSocketFrame(opcode: .binary, payload: (0..<300).map { UInt8(truncatingIfNeeded: $0) }),
            WebSocketFrame(opcode: .ping, payload: []),
            WebSocketFrame(opcode: .binary, payload: (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }),
        ]
        let masks: [[UInt8]] = [[1, 2, 3, 4], [0xFF, 0, 0xAA, 0x55], [9, 9, 9, 9], [0x80, 0x40, 0x20, 0x10]]
        let wire = zip(frames, masks).flatMap { $0.encoded(mask: $1) }
        for split in stride(from: 0, through: wire.count, by: 997) + [1, 2, 5, 6, 10, 11, 14, 15] {
            var decoder = WebSocketFrameDecoder(expectMasked: true, maxFramePayload: 1 << 20)
            var out: [WebSocketFrame] = []
            decoder.append(wire[..<split])
            while let f = try decoder.next() { out.append(f) }
            decoder.append(wire[split...])
            while let f = try decoder.next() { out.append(f) }
            #expect(out == frames, "split at \(split)")
            #expect(decoder.bufferedCount == 0)
        }
    }

    @Test func controlFramesBetweenFragments() throws {
        let mask: [UInt8] = [5, 6, 7, 8]
        let wire = WebSocketFrame(fin: false, opcode: .binary, payload: [1, 2]).encoded(mask: mask)
            + WebSocketFrame(opcode: .ping, payload: [9]).encoded(mask: mask)
            + WebSocketFrame(fin: false, opcode: .continuation, payload: [3]).encoded(mask: mask)
            + WebSocketFrame(opcode: .pong, payload: []).encoded(mask: mask)
            + WebSocketFrame(opcode: .continuation, payload: [4, 5]).encoded(mask: mask)
            + WebSocketFrame.close(.normal, reason: "bye").encoded(mask: mask)
        #expect(try Self.decodeAll(wire) == [.ping([9]), .pong([]), .message(.binary([1, 2, 3, 4, 5])), .close(.normal, "bye")])
    }

    @Test func badFramesGetTheirCloseCode() throws {
        let mask: [UInt8] = [1, 1, 1, 1]
        // Masking: a server refuses unmasked frames, a client refuses masked ones.
        #expect(Self.violation(WebSocketFrame(opcode: .binary, payload: [1]).encoded())?.code == .protocolError)
        #expect(Self.violation(WebSocketFrame(opcode: .binary, payload: [1]).encoded(mask: mask), asServer: false)?.code == .protocolError)
        // Reserved bits without an extension, reserved opcodes.
        #expect(Self.violation([0xC2, 0x80] + mask)?.code == .protocolError)
        #expect(Self.violation([0x83, 0x80] + mask)?.code == .protocolError)
        #expect(Self.violation([0x8B, 0x80] + mask)?.code == .protocolError)
        // Control frames: never fragmented, at most 125 bytes.
        #expect(Self.violation([0x09, 0x80] + mask)?.code == .protocolError)
        #expect(Self.violation([0x89, 0xFE, 0x00, 0x7E] + mask + [UInt8](repeating: 0, count: 126))?.code == .protocolError)
        // A 64-bit length with the top bit set.
        #expect(Self.violation([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1] + mask)?.code == .protocolError)
        // Fragment order: continuation without a start, a new message inside one.
        #expect(Self.violation(WebSocketFrame(opcode: .continuation, payload: [1]).encoded(mask: mask))?.code == .protocolError)
        #expect(Self.violation(
            WebSocketFrame(fin: false, opcode: .text, payload: [0x61]).encoded(mask: mask)
                + WebSocketFrame(opcode: .binary, payload: [1]).encoded(mask: mask))?.code == .protocolError)
        // Text must be UTF-8, and so must a close reason; close payloads of 1 byte or reserved codes are wrong.
        #expect(Self.violation(WebSocketFrame(opcode: .text, payload: [0xC3, 0x28]).encoded(mask: mask))?.code == .invalidPayload)
        #expect(Self.violation(WebSocketFrame(opcode: .close, payload: [0x03, 0xE8, 0xFF]).encoded(mask: mask))?.code == .invalidPayload)
        #expect(Self.violation(WebSocketFrame(opcode: .close, payload: [0x03]).encoded(mask: mask))?.code == .protocolError)
        for reserved: UInt16 in [999, 1004, 1005, 1006, 1015, 2000, 5000] {
            let payload = [UInt8(reserved >> 8), UInt8(truncatingIfNeeded: reserved)]
            #expect(Self.violation(WebSocketFrame(opcode: .close, payload: payload).encoded(mask: mask))?.code == .protocolError, "\(reserved)")
        }
        #expect(try Self.decodeAll(WebSocketFrame(opcode: .close, payload: [0x0B, 0xB8]).encoded(mask: mask)) == [.close(WebSocketCloseCode(3000), "")])
        #expect(try Self.decodeAll(WebSocketFrame(opcode: .close).encoded(mask: mask)) == [.close(.noStatus, "")])
    }

    @Test func oversizeFramesAndMessagesAreTooBig() {
        let mask: [UInt8] = [2, 2, 2, 2]
        // The frame header alone is enough to refuse a frame: no payload is buffered.
        #expect(Self.violation([0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0] + mask, max: 1 << 20)?.code == .messageTooBig)
        #expect(Self.violation(WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 0, count: 101)).encoded(mask: mask), max: 100)?.code == .messageTooBig)
        // Fragments within the frame limit that add up to more than the message limit.
        let fragments = WebSocketFrame(fin: false, opcode: .binary, payload: [UInt8](repeating: 0, count: 60)).encoded(mask: mask)
            + WebSocketFrame(opcode: .continuation, payload: [UInt8](repeating: 0, count: 60)).encoded(mask: mask)
        #expect(Self.violation(fragments, max: 100)?.code == .messageTooBig)
        #expect(Self.violation(fragments, max: 120) == nil)
    }
}
