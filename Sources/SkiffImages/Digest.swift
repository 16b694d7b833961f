import Crypto
import Foundation

/// A content digest `algorithm:encoded`. Only sha256 can be verified; sha512 parses (the OCI spec
/// registers it) so that a reference using it fails with a clear `unsupported` error at pull time.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let algorithm: String
    public let encoded: String

    public init(parsing s: String) throws(ImageError) {
        guard let colon = s.firstIndex(of: ":") else {
            throw ImageError(.invalidReference, "digest \"\(s)\" has no algorithm (want sha256:<64 hex>)")
        }
        let alg = String(s[..<colon])
        let enc = String(s[s.index(after: colon)...])
        let hexLength: Int
        switch alg {
        case "sha256": hexLength = 64
        case "sha512": hexLength = 128
        default:
            throw ImageError(.invalidReference, "digest \"\(s)\": unknown algorithm \"\(alg)\"")
        }
        guard enc.utf8.count == hexLength, enc.utf8.allSatisfy(Digest.isLowerHex) else {
            throw ImageError(.invalidReference, "digest \"\(s)\": want \(hexLength) lowercase hex digits")
        }
        self.algorithm = alg
        self.encoded = enc
    }

    init(sha256Hex hex: String) {
        self.algorithm = "sha256"
        self.encoded = hex
    }

    public static func sha256(of data: some DataProtocol) -> Digest {
        Digest(sha256Hex: SHA256.hash(data: data).hexString)
    }

    public var description: String { "\(algorithm):\(encoded)" }

    public static func < (a: Digest, b: Digest) -> Bool { a.description < b.description }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        do { self = try Digest(parsing: s) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    static func isLowerHex(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) }

    func requireSHA256(_ context: String) throws(ImageError) {
        guard algorithm == "sha256" else {
            throw ImageError(.unsupported, "\(context): digest algorithm \(algorithm) is not supported (only sha256)")
        }
    }
}

extension Sequence where Element == UInt8 {
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in self {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension SHA256.Digest {
    var hexString: String { Array(self).hexString }
}
