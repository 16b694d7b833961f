import CRI
import Foundation
import Testing

/// The golden vectors shipped as a test resource: NAME.bin and NAME.json for runtime.v1.NAME.
struct Vector: Sendable, CustomStringConvertible {
    let name: String
    let bin: [UInt8]
    let json: String

    var description: String { name }

    static let all: [Vector] = {
        guard let dir = Bundle.module.url(forResource: "Vectors", withExtension: nil) else {
            fatalError("Vectors resource missing from the test bundle")
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return files.filter { $0.hasSuffix(".bin") }.sorted().map { file in
            let name = String(file.dropLast(4))
            let bin = try! Data(contentsOf: dir.appendingPathComponent(file))
            let json = try! String(contentsOf: dir.appendingPathComponent(name + ".json"), encoding: .utf8)
            return Vector(name: name, bin: [UInt8](bin), json: json)
        }
    }()

    static func named(_ name: String) -> Vector {
        all.first { $0.name == name }!
    }
}

/// CRIMessageTypes.all by proto name.
let messageTypesByName: [String: any CRIMessage.Type] = Dictionary(
    uniqueKeysWithValues: CRIMessageTypes.all.map { ($0.protoName, $0) })

/// Deterministic pseudo-random numbers (SplitMix64), so a failing fuzz case can be replayed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Protobuf wire-format writer for building test inputs by hand.
struct Wire {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wireType: Int) {
        varint(UInt64(field << 3 | wireType))
    }

    mutating func varintField(_ field: Int, _ v: UInt64) {
        key(field, 0)
        varint(v)
    }

    mutating func lengthDelimited(_ field: Int, _ payload: [UInt8]) {
        key(field, 2)
        varint(UInt64(payload.count))
        bytes += payload
    }

    mutating func fixed64(_ field: Int, _ v: UInt64) {
        key(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    mutating func fixed32(_ field: Int, _ v: UInt32) {
        key(field, 5)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }
}
