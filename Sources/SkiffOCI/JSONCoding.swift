// Small helpers that turn JSON objects into typed values (and back) with errors that name the
// JSON path of the bad field, e.g. `linux.resources.memory.limit: expected an integer`.

/// A type that can be read from and written to JSON.
public protocol JSONCodable: Sendable {
    init(json: JSON, path: String) throws(JSONError)
    var json: JSON { get }
}

extension JSONCodable {
    /// Decodes a value from JSON text.
    public init(jsonText: String) throws(JSONError) {
        try self.init(json: try JSON(parsing: jsonText), path: "")
    }
}

/// Reads the fields of one JSON object. Unknown fields are ignored, as the OCI spec requires.
public struct JSONReader {
    public let object: JSONObject
    public let path: String

    public init(_ json: JSON, path: String) throws(JSONError) {
        guard case .object(let o) = json else {
            throw JSONError(path: path, message: "expected an object")
        }
        self.object = o
        self.path = path
    }

    public func sub(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func has(_ key: String) -> Bool {
        if let v = object[key], v != .null { return true }
        return false
    }

    private func value(_ key: String) -> JSON? {
        guard let v = object[key], v != .null else { return nil }
        return v
    }

    public func string(_ key: String) throws(JSONError) -> String {
        guard let v = try optionalString(key) else { throw JSONError(path: sub(key), message: "required string is missing") }
        return v
    }

    public func optionalString(_ key: String) throws(JSONError) -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw JSONError(path: sub(key), message: "expected a string") }
        return s
    }

    public func bool(_ key: String, default def: Bool = false) throws(JSONError) -> Bool {
        try optionalBool(key) ?? def
    }

    public func optionalBool(_ key: String) throws(JSONError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw JSONError(path: sub(key), message: "expected true or false") }
        return b
    }

    public func optionalInt64(_ key: String) throws(JSONError) -> Int64? {
        guard let v = value(key) else { return nil }
        guard let i = v.int64Value else { throw JSONError(path: sub(key), message: "expected a 64-bit integer") }
        return i
    }

    public func optionalUInt64(_ key: String) throws(JSONError) -> UInt64? {
        guard let v = value(key) else { return nil }
        guard let i = v.uint64Value else { throw JSONError(path: sub(key), message: "expected an unsigned integer") }
        return i
    }

    public func optionalUInt32(_ key: String) throws(JSONError) -> UInt32? {
        guard let v = try optionalUInt64(key) else { return nil }
        guard v <= UInt64(UInt32.max) else { throw JSONError(path: sub(key), message: "value \(v) does not fit in 32 bits") }
        return UInt32(v)
    }

    public func optionalInt(_ key: String) throws(JSONError) -> Int? {
        guard let v = try optionalInt64(key) else { return nil }
        return Int(v)
    }

    public func uint32(_ key: String) throws(JSONError) -> UInt32 {
        guard let v = try optionalUInt32(key) else { throw JSONError(path: sub(key), message: "required integer is missing") }
        return v
    }

    public func int64(_ key: String) throws(JSONError) -> Int64 {
        guard let v = try optionalInt64(key) else { throw JSONError(path: sub(key), message: "required integer is missing") }
        return v
    }

    public func uint64(_ key: String) throws(JSONError) -> UInt64 {
        guard let v = try optionalUInt64(key) else { throw JSONError(path: sub(key), message: "required integer is missing") }
        return v
    }

    public func strings(_ key: String) throws(JSONError) -> [String] {
        guard let v = value(key) else { return [] }
        guard case .array(let a) = v else { throw JSONError(path: sub(key), message: "expected an array of strings") }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for (i, e) in a.enumerated() {
            guard case .string(let s) = e else { throw JSONError(path: "\(sub(key))[\(i)]", message: "expected a string") }
            out.append(s)
        }
        return out
    }

    public func uint32s(_ key: String) throws(JSONError) -> [UInt32] {
        guard let v = value(key) else { return [] }
        guard case .array(let a) = v else { throw JSONError(path: sub(key), message: "expected an array of integers") }
        var out: [UInt32] = []
        for (i, e) in a.enumerated() {
            guard let n = e.uint64Value, n <= UInt64(UInt32.max) else {
                throw JSONError(path: "\(sub(key))[\(i)]", message: "expected an unsigned 32-bit integer")
            }
            out.append(UInt32(n))
        }
        return out
    }

    public func stringMap(_ key: String) throws(JSONError) -> [String: String] {
        guard let v = value(key) else { return [:] }
        guard case .object(let o) = v else { throw JSONError(path: sub(key), message: "expected an object of strings") }
        var out: [String: String] = [:]
        for (k, e) in o.pairs {
            guard case .string(let s) = e else { throw JSONError(path: "\(sub(key)).\(k)", message: "expected a string") }
            out[k] = s
        }
        return out
    }

    public func decode<T: JSONCodable>(_ key: String, as: T.Type = T.self) throws(JSONError) -> T? {
        guard let v = value(key) else { return nil }
        return try T(json: v, path: sub(key))
    }

    public func decodeArray<T: JSONCodable>(_ key: String, of: T.Type = T.self) throws(JSONError) -> [T] {
        guard let v = value(key) else { return [] }
        guard case .array(let a) = v else { throw JSONError(path: sub(key), message: "expected an array") }
        var out: [T] = []
        out.reserveCapacity(a.count)
        for (i, e) in a.enumerated() { out.append(try T(json: e, path: "\(sub(key))[\(i)]")) }
        return out
    }

    public func decodeMap<T: JSONCodable>(_ key: String, of: T.Type = T.self) throws(JSONError) -> [String: T] {
        guard let v = value(key) else { return [:] }
        guard case .object(let o) = v else { throw JSONError(path: sub(key), message: "expected an object") }
        var out: [String: T] = [:]
        for (k, e) in o.pairs { out[k] = try T(json: e, path: "\(sub(key)).\(k)") }
        return out
    }
}

/// Builds a JSON object, leaving out absent optionals and empty collections (`omitempty`).
public struct JSONBuilder {
    public private(set) var object = JSONObject()

    public init() {}

    public var json: JSON { .object(object) }

    public mutating func set(_ key: String, _ v: JSON) { object[key] = v }
    public mutating func set(_ key: String, _ v: String?) { if let v { object[key] = .string(v) } }
    public mutating func setNonEmpty(_ key: String, _ v: String) { if !v.isEmpty { object[key] = .string(v) } }
    public mutating func set(_ key: String, _ v: Bool?) { if let v { object[key] = .bool(v) } }
    public mutating func setTrue(_ key: String, _ v: Bool) { if v { object[key] = .bool(true) } }
    public mutating func set(_ key: String, _ v: Int64?) { if let v { object[key] = .int(v) } }
    public mutating func set(_ key: String, _ v: Int?) { if let v { object[key] = .int(Int64(v)) } }
    public mutating func set(_ key: String, _ v: UInt64?) { if let v { object[key] = JSON(v) } }
    public mutating func set(_ key: String, _ v: UInt32?) { if let v { object[key] = .int(Int64(v)) } }
    public mutating func set(_ key: String, _ v: [String]) { if !v.isEmpty { object[key] = JSON(v) } }
    public mutating func set(_ key: String, _ v: [UInt32]) {
        if !v.isEmpty { object[key] = .array(v.map { .int(Int64($0)) }) }
    }
    public mutating func set(_ key: String, _ v: [String: String]) {
        guard !v.isEmpty else { return }
        var o = JSONObject()
        for k in v.keys.sorted() { o[k] = .string(v[k]!) }
        object[key] = .object(o)
    }
    public mutating func set<T: JSONCodable>(_ key: String, _ v: T?) { if let v { object[key] = v.json } }
    public mutating func set<T: JSONCodable>(_ key: String, _ v: [T]) {
        if !v.isEmpty { object[key] = .array(v.map(\.json)) }
    }
    public mutating func set<T: JSONCodable>(_ key: String, _ v: [String: T]) {
        guard !v.isEmpty else { return }
        var o = JSONObject()
        for k in v.keys.sorted() { o[k] = v[k]!.json }
        object[key] = .object(o)
    }
}
