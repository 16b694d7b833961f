// A small JSON value type with a strict parser and a deterministic writer.
//
// Foundation-free on purpose: skiff-runc parses config.json before it forks into namespaces, and
// Foundation would start threads. Objects keep their key order so that what we write is stable.

/// One JSON value. Integers keep full 64-bit precision (memory limits, uids); numbers with a
/// fraction or exponent become `.double`.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// Only for integers above `Int64.max`.
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)
}

/// An ordered JSON object. Duplicate keys: the last value wins, at the first key's position.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var keys: [String] = []
    private var storage: [String: JSON] = [:]

    public init() {}

    public init(dictionaryLiteral elements: (String, JSON)...) {
        for (k, v) in elements { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public subscript(key: String) -> JSON? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Pairs in insertion order.
    public var pairs: [(key: String, value: JSON)] { keys.map { ($0, storage[$0]!) } }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.keys == b.keys && a.storage == b.storage
    }
}

/// Where and why JSON text or a decoded document was rejected.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// JSON path of the offending value (`process.user.uid`), or `offset N` for syntax errors.
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

// MARK: - Parsing

extension JSON {
    /// Parses a complete JSON document (RFC 8259). Nesting is limited to 512 levels.
    public init(parsing text: String) throws(JSONError) {
        try self.init(parsing: Array(text.utf8))
    }

    public init(parsing bytes: [UInt8]) throws(JSONError) {
        var result: Result<JSON, JSONError> = .success(.null)
        bytes.withUnsafeBufferPointer { buf in
            do throws(JSONError) { result = .success(try JSON(parsingUTF8: buf)) } catch { result = .failure(error) }
        }
        self = try result.get()
    }

    public init(parsingUTF8 buffer: UnsafeBufferPointer<UInt8>) throws(JSONError) {
        var parser = JSONParser(buffer)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.pos != buffer.count { throw parser.error("unexpected data after the JSON value") }
        self = value
    }
}

private struct JSONParser {
    let b: UnsafeBufferPointer<UInt8>
    var pos = 0

    init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

    func error(_ message: String) -> JSONError { JSONError(path: "offset \(pos)", message: message) }

    mutating func skipWhitespace() {
        while pos < b.count {
            switch b[pos] {
            case 0x20, 0x0A, 0x0D, 0x09: pos += 1
            default: return
            }
        }
    }

    mutating func expect(_ literal: StaticString, _ value: JSON) throws(JSONError) -> JSON {
        let n = literal.utf8CodeUnitCount
        guard pos + n <= b.count else { throw error("truncated literal") }
        let lp = literal.utf8Start
        for i in 0..<n where b[pos + i] != lp[i] { throw error("invalid literal") }
        pos += n
        return value
    }

    mutating func parseValue(depth: Int) throws(JSONError) -> JSON {
        guard depth < 512 else { throw error("nesting deeper than 512 levels") }
        guard pos < b.count else { throw error("unexpected end of input") }
        switch b[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character '\(Character(Unicode.Scalar(b[pos])))'")
        }
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSON {
        pos += 1
        var obj = JSONObject()
        skipWhitespace()
        if pos < b.count, b[pos] == UInt8(ascii: "}") { pos += 1; return .object(obj) }
        while true {
            skipWhitespace()
            guard pos < b.count, b[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard pos < b.count, b[pos] == UInt8(ascii: ":") else { throw error("expected ':'") }
            pos += 1
            skipWhitespace()
            obj[key] = try parseValue(depth: depth + 1)
            skipWhitespace()
            guard pos < b.count else { throw error("unterminated object") }
            if b[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if b[pos] == UInt8(ascii: "}") { pos += 1; return .object(obj) }
            throw error("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSON {
        pos += 1
        var arr: [JSON] = []
        skipWhitespace()
        if pos < b.count, b[pos] == UInt8(ascii: "]") { pos += 1; return .array(arr) }
        while true {
            skipWhitespace()
            arr.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard pos < b.count else { throw error("unterminated array") }
            if b[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if b[pos] == UInt8(ascii: "]") { pos += 1; return .array(arr) }
            throw error("expected ',' or ']'")
        }
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard pos + 4 <= b.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    mutating func parseString() throws(JSONError) -> String {
        pos += 1
        let start = pos
        // Fast path: no escapes.
        while pos < b.count {
            let c = b[pos]
            if c == UInt8(ascii: "\"") {
                let s = String(validating: UnsafeBufferPointer(rebasing: b[start..<pos]), as: UTF8.self)
                guard let s else { throw error("invalid UTF-8 in string") }
                pos += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in string") }
            pos += 1
        }
        var bytes = Array(b[start..<pos])
        while pos < b.count {
            let c = b[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                guard let s = String(validating: bytes, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                return s
            }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") { bytes.append(c); pos += 1; continue }
            pos += 1
            guard pos < b.count else { break }
            let e = b[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "/"): bytes.append(0x2F)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard pos + 2 <= b.count, b[pos] == UInt8(ascii: "\\"), b[pos + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired UTF-16 surrogate")
                    }
                    pos += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired UTF-16 surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("unpaired UTF-16 surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                bytes.append(contentsOf: UTF8.encode(u)!)
            default: throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }

    mutating func parseNumber() throws(JSONError) -> JSON {
        let start = pos
        var negative = false
        if b[pos] == UInt8(ascii: "-") { negative = true; pos += 1 }
        guard pos < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[pos]) else {
            throw error("invalid number")
        }
        if b[pos] == UInt8(ascii: "0") {
            pos += 1
        } else {
            while pos < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[pos]) { pos += 1 }
        }
        var integral = true
        if pos < b.count, b[pos] == UInt8(ascii: ".") {
            integral = false
            pos += 1
            let digits = pos
            while pos < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[pos]) { pos += 1 }
            if pos == digits { throw error("invalid number: no digits after '.'") }
        }
        if pos < b.count, b[pos] == UInt8(ascii: "e") || b[pos] == UInt8(ascii: "E") {
            integral = false
            pos += 1
            if pos < b.count, b[pos] == UInt8(ascii: "+") || b[pos] == UInt8(ascii: "-") { pos += 1 }
            let digits = pos
            while pos < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[pos]) { pos += 1 }
            if pos == digits { throw error("invalid number: empty exponent") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<pos]), as: UTF8.self)
        if integral {
            if let v = Int64(text) { return .int(v) }
            if !negative, let v = UInt64(text) { return .uint(v) }
        }
        guard let d = Double(text) else { throw error("invalid number") }
        return .double(d)
    }
}

// MARK: - Writing

extension JSON {
    /// Compact text (no whitespace).
    public var compactText: String {
        var out = ""
        write(to: &out, indent: nil, level: 0)
        return out
    }

    /// Indented text (two spaces per level) with a trailing newline, like `runc state`.
    public var prettyText: String {
        var out = ""
        write(to: &out, indent: "  ", level: 0)
        out.append("\n")
        return out
    }

    private func write(to out: inout String, indent: String?, level: Int) {
        switch self {
        case .null: out.append("null")
        case .bool(let v): out.append(v ? "true" : "false")
        case .int(let v): out.append(String(v))
        case .uint(let v): out.append(String(v))
        case .double(let v):
            if v.isFinite {
                if v == v.rounded(.towardZero), abs(v) < 1e15 { out.append(String(Int64(v))) } else { out.append(v.description) }
            } else {
                out.append("null")
            }
        case .string(let s): JSON.writeString(s, to: &out)
        case .array(let a):
            if a.isEmpty { out.append("[]"); return }
            out.append("[")
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(",") }
                JSON.newline(&out, indent, level + 1)
                v.write(to: &out, indent: indent, level: level + 1)
            }
            JSON.newline(&out, indent, level)
            out.append("]")
        case .object(let o):
            if o.isEmpty { out.append("{}"); return }
            out.append("{")
            for (i, (k, v)) in o.pairs.enumerated() {
                if i > 0 { out.append(",") }
                JSON.newline(&out, indent, level + 1)
                JSON.writeString(k, to: &out)
                out.append(indent == nil ? ":" : ": ")
                v.write(to: &out, indent: indent, level: level + 1)
            }
            JSON.newline(&out, indent, level)
            out.append("}")
        }
    }

    private static func newline(_ out: inout String, _ indent: String?, _ level: Int) {
        guard let indent else { return }
        out.append("\n")
        for _ in 0..<level { out.append(indent) }
    }

    private static let hexDigits: [Character] = Array("0123456789abcdef")

    /// Appends `s` as a quoted JSON string.
    public static func writeString(_ s: String, to out: inout String) {
        out.append("\"")
        for u in s.unicodeScalars {
            switch u {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            case "\u{08}": out.append("\\b")
            case "\u{0C}": out.append("\\f")
            default:
                if u.value < 0x20 {
                    out.append("\\u00")
                    out.append(hexDigits[Int(u.value >> 4)])
                    out.append(hexDigits[Int(u.value & 0xF)])
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append("\"")
    }
}

// MARK: - Convenience accessors

extension JSON {
    public subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }

    /// The value as Int64 when it is an integer that fits.
    public var int64Value: Int64? {
        switch self {
        case .int(let v): return v
        case .double(let d) where d == d.rounded(.towardZero) && abs(d) < 9.2e18: return Int64(d)
        default: return nil
        }
    }

    /// The value as UInt64 when it is a non-negative integer.
    public var uint64Value: UInt64? {
        switch self {
        case .int(let v) where v >= 0: return UInt64(v)
        case .uint(let v): return v
        case .double(let d) where d >= 0 && d == d.rounded(.towardZero) && d < 1.8e19: return UInt64(d)
        default: return nil
        }
    }

    public init(_ s: String) { self = .string(s) }
    public init(_ v: Int) { self = .int(Int64(v)) }
    public init(_ v: Int64) { self = .int(v) }
    public init(_ v: UInt64) { self = v <= UInt64(Int64.max) ? .int(Int64(v)) : .uint(v) }
    public init(_ v: UInt32) { self = .int(Int64(v)) }
    public init(_ v: Bool) { self = .bool(v) }
    public init(_ strings: [String]) { self = .array(strings.map { .string($0) }) }
}
