// Helpers for the generated proto3 JSON mapping (Generated/JSON.swift).

// MARK: - Writing

func jsonEnum<E: CRIEnum>(_ e: E) -> ProtoJSON {
    // Known values by name; an unknown number stays a number (Go's protojson does the same).
    E(name: e.name) != nil ? .string(e.name) : .int(Int64(e.rawValue))
}

func jsonDouble(_ d: Double) -> ProtoJSON {
    if d.isNaN { return .string("NaN") }
    if d.isInfinite { return .string(d < 0 ? "-Infinity" : "Infinity") }
    return .number(d)
}

func jsonMap(_ m: [String: String]) -> ProtoJSON {
    // Sorted keys: stable output, as protojson does.
    .object(m.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
}

// MARK: - Reading

func kindName(_ v: ProtoJSON) -> String {
    switch v {
    case .null: "null"
    case .bool: "a boolean"
    case .int, .uint, .number: "a number"
    case .string: "a string"
    case .array: "an array"
    case .object: "an object"
    }
}

func mismatch(_ field: String, _ expected: String, _ v: ProtoJSON) -> CRICodecError {
    CRICodecError("\(field): expected \(expected), got \(kindName(v))")
}

func jsonMembers(_ v: ProtoJSON, _ message: String) throws(CRICodecError) -> [(String, ProtoJSON)] {
    guard case .object(let members) = v else { throw mismatch(message, "an object", v) }
    return members
}

func readString(_ v: ProtoJSON, _ field: String) throws(CRICodecError) -> String {
    guard case .string(let s) = v else { throw mismatch(field, "a string", v) }
    return s
}

func readBool(_ v: ProtoJSON, _ field: String) throws(CRICodecError) -> Bool {
    guard case .bool(let b) = v else { throw mismatch(field, "true or false", v) }
    return b
}

func readBytes(_ v: ProtoJSON, _ field: String) throws(CRICodecError) -> [UInt8] {
    guard case .string(let s) = v else { throw mismatch(field, "a base64 string", v) }
    guard let bytes = base64Decode(s) else { throw CRICodecError("\(field): invalid base64") }
    return bytes
}

/// Integers: a JSON number without a fraction (or one that is integral, like 1.0 or 1e3) or a
/// decimal string; out-of-range values are errors.
func readInteger<T: FixedWidthInteger>(_ v: ProtoJSON, _ field: String, as: T.Type) throws(CRICodecError) -> T {
    let result: T?
    switch v {
    case .int(let i): result = T(exactly: i)
    case .uint(let u): result = T(exactly: u)
    case .number(let d): result = d.rounded() == d ? T(exactly: d) : nil
    case .string(let s):
        if let i = T(s) {
            result = i
        } else if let d = Double(s), d.rounded() == d, !s.isEmpty {
            result = T(exactly: d)
        } else {
            result = nil
        }
    default:
        throw mismatch(field, "an integer", v)
    }
    guard let result else { throw CRICodecError("\(field): not a valid \(T.self)") }
    return result
}

func readDouble(_ v: ProtoJSON, _ field: String) throws(CRICodecError) -> Double {
    switch v {
    case .int(let i): return Double(i)
    case .uint(let u): return Double(u)
    case .number(let d): return d
    case .string(let s):
        switch s {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard let d = Double(s), d.isFinite else { throw CRICodecError("\(field): not a number") }
            return d
        }
    default:
        throw mismatch(field, "a number", v)
    }
}

func readEnum<E: CRIEnum>(_ v: ProtoJSON, _ field: String) throws(CRICodecError) -> E {
    switch v {
    case .string(let s):
        guard let e = E(name: s) else { throw CRICodecError("\(field): unknown enum value \"\(s)\"") }
        return e
    case .int, .uint, .number:
        return E(rawValue: try readInteger(v, field, as: Int32.self))
    default:
        throw mismatch(field, "an enum name or number", v)
    }
}

func readArray<T>(
    _ v: ProtoJSON, _ field: String, _ element: (ProtoJSON) throws(CRICodecError) -> T
) throws(CRICodecError) -> [T] {
    guard case .array(let items) = v else { throw mismatch(field, "an array", v) }
    var out: [T] = []
    out.reserveCapacity(items.count)
    for item in items {
        out.append(try element(item))
    }
    return out
}

func readMap(_ v: ProtoJSON, _ field: String) throws(CRICodecError) -> [String: String] {
    guard case .object(let members) = v else { throw mismatch(field, "an object", v) }
    var out: [String: String] = [:]
    for (k, value) in members {
        out[k] = try readString(value, "\(field)[\"\(k)\"]")
    }
    return out
}

// MARK: - base64 (RFC 4648): standard alphabet on output; standard or URL-safe, padded or not, on input

private let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

func base64Encode(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i + 3 <= bytes.count {
        let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
        for shift in [18, 12, 6, 0] {
            out.append(base64Alphabet[Int(n >> UInt32(shift) & 63)])
        }
        i += 3
    }
    let rest = bytes.count - i
    if rest > 0 {
        var n = UInt32(bytes[i]) << 16
        if rest == 2 { n |= UInt32(bytes[i + 1]) << 8 }
        out.append(base64Alphabet[Int(n >> 18 & 63)])
        out.append(base64Alphabet[Int(n >> 12 & 63)])
        out.append(rest == 2 ? base64Alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
        out.append(UInt8(ascii: "="))
    }
    return String(decoding: out, as: UTF8.self)
}

func base64Decode(_ s: String) -> [UInt8]? {
    var values: [UInt8] = []
    values.reserveCapacity(s.utf8.count)
    var padding = 0
    for c in s.utf8 {
        let v: UInt8
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): v = c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"), UInt8(ascii: "-"): v = 62
        case UInt8(ascii: "/"), UInt8(ascii: "_"): v = 63
        case UInt8(ascii: "="):
            padding += 1
            continue
        default: return nil
        }
        guard padding == 0 else { return nil }  // data after padding
        values.append(v)
    }
    if padding > 0, (values.count + padding) % 4 != 0 || padding > 2 { return nil }
    if values.count % 4 == 1 { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(values.count * 3 / 4)
    var i = 0
    while i < values.count {
        let chunk = values[i..<min(i + 4, values.count)]
        var n: UInt32 = 0
        for (j, v) in chunk.enumerated() {
            n |= UInt32(v) << UInt32(18 - 6 * j)
        }
        out.append(UInt8(n >> 16 & 0xFF))
        if chunk.count > 2 { out.append(UInt8(n >> 8 & 0xFF)) }
        if chunk.count > 3 { out.append(UInt8(n & 0xFF)) }
        i += 4
    }
    return out
}
