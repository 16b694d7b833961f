import ArgumentParser
import CRI
import Foundation
import Yams

/// Output formats crictl offers: json (protojson with lowerCamelCase keys, 2-space indent), yaml, table.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case json, yaml, table
}

enum Output {
    /// Prints a JSON document as JSON or YAML. YAML keys are sorted, as crictl's JSON-to-YAML conversion
    /// sorts them.
    static func print(_ document: ProtoJSON, as format: OutputFormat) throws {
        let json = document.serialized(pretty: true)
        switch format {
        case .json, .table:
            Swift.print(json)
        case .yaml:
            let value = try Yams.load(yaml: json)
            Swift.print(try Yams.dump(object: value, width: -1, sortKeys: true), terminator: "")
        }
    }

    /// crictl's status documents (`inspectp`, `inspect`, `inspecti`, `info`): one object per item with
    /// `status` and each verbose info entry; a single item prints as an object, several as an array.
    static func printStatuses(_ items: [ProtoJSON], as format: OutputFormat) throws {
        guard !items.isEmpty else { return }
        try print(items.count == 1 ? items[0] : .array(items), as: format)
    }

    /// `{"info": ..., "status": ...}` with keys sorted (crictl marshals a Go map). Info values that are JSON
    /// objects are parsed, others are kept as strings without surrounding quotes.
    static func statusDocument(status: ProtoJSON?, info: [String: String]) -> ProtoJSON {
        var members: [(String, ProtoJSON)] = []
        if let status { members.append(("status", status)) }
        for key in info.keys.sorted() {
            let raw = info[key]!
            if raw.hasPrefix("{"), let parsed = try? ProtoJSON.parse(raw) {
                members.append((key, sortedKeys(parsed)))
            } else {
                members.append((key, .string(raw.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))))
            }
        }
        return .object(members.sorted { $0.0 < $1.0 })
    }

    /// The object with its keys, and those of nested objects, in byte order (as Go's map marshalling).
    static func sortedKeys(_ json: ProtoJSON) -> ProtoJSON {
        switch json {
        case .object(let members): .object(members.map { ($0.0, sortedKeys($0.1)) }.sorted { $0.0 < $1.0 })
        case .array(let items): .array(items.map(sortedKeys))
        default: json
        }
    }

    /// The object with its top-level keys sorted (nested values untouched).
    static func sortedTopLevel(_ json: ProtoJSON) -> ProtoJSON {
        guard case .object(let members) = json else { return json }
        return .object(members.sorted { $0.0 < $1.0 })
    }

    /// Replaces the value of `key` in an object (or adds it at the end).
    static func setting(_ key: String, _ value: ProtoJSON, in json: ProtoJSON) -> ProtoJSON {
        guard case .object(var members) = json else { return json }
        if let i = members.firstIndex(where: { $0.0 == key }) {
            members[i].1 = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }
}

/// crictl's table: Go's tabwriter with minimum cell width 20 and padding 3; the last column is not padded.
struct Table {
    private var rows: [[String]] = []

    init(header: [String]? = nil) {
        if let header { rows.append(header) }
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths: [Int] = []
        for row in rows {
            for (i, cell) in row.enumerated().dropLast() {
                let width = max(20, cell.unicodeScalars.count + 3)
                if i < widths.count { widths[i] = max(widths[i], width) } else { widths.append(width) }
            }
        }
        var out = ""
        for row in rows {
            for (i, cell) in row.enumerated() {
                out += cell
                if i < row.count - 1 { out += String(repeating: " ", count: widths[i] - cell.unicodeScalars.count) }
            }
            out += "\n"
        }
        return out
    }

    func print() { Swift.print(render(), terminator: "") }
}

// MARK: - crictl's human-readable values

enum Human {
    /// go-units' HumanDuration: "Less than a second", "5 seconds", "About a minute", "3 hours", "2 weeks".
    static func duration(seconds d: Double) -> String {
        let seconds = Int(d)
        if seconds < 1 { return "Less than a second" }
        if seconds == 1 { return "1 second" }
        if seconds < 60 { return "\(seconds) seconds" }
        let minutes = Int(d / 60)
        if minutes == 1 { return "About a minute" }
        if minutes < 60 { return "\(minutes) minutes" }
        let hours = Int(d / 3600 + 0.5)
        if hours == 1 { return "About an hour" }
        if hours < 48 { return "\(hours) hours" }
        if hours < 24 * 7 * 2 { return "\(hours / 24) days" }
        if hours < 24 * 30 * 2 { return "\(hours / 24 / 7) weeks" }
        if hours < 24 * 365 * 2 { return "\(hours / 24 / 30) months" }
        return "\(Int(d / 3600) / 24 / 365) years"
    }

    /// "x ago" for a Unix time in nanoseconds.
    static func ago(unixNanos: Int64, now: Date = Date()) -> String {
        duration(seconds: now.timeIntervalSince1970 - Double(unixNanos) / 1e9) + " ago"
    }

    /// go-units' HumanSizeWithPrecision: decimal units, `%.*g` ("4.26MB", "742kB", "512B").
    static func size(_ bytes: Double, precision: Int = 4) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
        var value = bytes
        var i = 0
        while value >= 1000, i < units.count - 1 {
            value /= 1000
            i += 1
        }
        return String(format: "%.*g", precision, value) + units[i]
    }

    /// crictl's 13-character ids, after dropping `prefix` ("sha256:" for images).
    static func truncated(_ id: String, prefix: String = "") -> String {
        let bare = id.hasPrefix(prefix) ? String(id.dropFirst(prefix.count)) : id
        return bare.count > 13 ? String(bare.prefix(13)) : bare
    }
}

/// Times as Go prints them, in the local time zone.
enum GoTime {
    /// `time.Unix(0, ns).Format(time.RFC3339Nano)`: "2026-11-22T10:00:00.123456789Z", fraction without
    /// trailing zeros. Nanosecond 0 of year 1 (Go's zero time) prints as "0001-01-01T00:00:00Z".
    static func rfc3339Nano(unixNanos: Int64) -> String {
        let (tm, nanos) = local(unixNanos)
        let date = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
            Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
        return date + fraction(nanos) + offset(Int(tm.tm_gmtoff), colon: true, zulu: true)
    }

    /// Go's zero `time.Time` formatted as RFC 3339.
    static let zero = "0001-01-01T00:00:00Z"

    /// `time.Time.String()`: "2026-11-22 10:00:00.123456789 +0000 UTC".
    static func string(unixNanos: Int64) -> String {
        let (tm, nanos) = local(unixNanos)
        let date = String(
            format: "%04d-%02d-%02d %02d:%02d:%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
            Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
        let zone = tm.tm_zone.map { String(cString: $0) } ?? ""
        return date + fraction(nanos) + " " + offset(Int(tm.tm_gmtoff), colon: false, zulu: false) + " " + zone
    }

    private static func local(_ unixNanos: Int64) -> (tm, Int64) {
        var seconds = time_t(unixNanos / 1_000_000_000)
        var nanos = unixNanos % 1_000_000_000
        if nanos < 0 {
            nanos += 1_000_000_000
            seconds -= 1
        }
        var result = tm()
        localtime_r(&seconds, &result)
        return (result, nanos)
    }

    private static func fraction(_ nanos: Int64) -> String {
        guard nanos > 0 else { return "" }
        var digits = String(format: "%09lld", nanos)
        while digits.hasSuffix("0") { digits.removeLast() }
        return "." + digits
    }

    private static func offset(_ seconds: Int, colon: Bool, zulu: Bool) -> String {
        if seconds == 0, zulu { return "Z" }
        let sign = seconds < 0 ? "-" : "+"
        let minutes = abs(seconds) / 60
        return sign + String(format: colon ? "%02d:%02d" : "%02d%02d", minutes / 60, minutes % 60)
    }
}

/// Writes bytes to stdout or stderr as they are (flushing what `print` buffered first, to keep the order).
enum Stdio {
    static func out(_ bytes: [UInt8]) { write(bytes, to: 1) }
    static func err(_ bytes: [UInt8]) { write(bytes, to: 2) }

    static func write(_ bytes: [UInt8], to fd: Int32) {
        fflush(nil)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return  // a closed pipe: nothing more can be shown
            }
            offset += n
        }
    }
}
