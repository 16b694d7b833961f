import ArgumentParser
import CRI
import Yams

/// Output formats crictl offers: json (protojson with lowerCamelCase keys, 2-space indent), yaml, table.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case json, yaml, table
}

enum Output {
    /// Prints a JSON document as JSON or YAML.
    static func print(_ document: ProtoJSON, as format: OutputFormat) throws {
        let json = document.serialized(pretty: true)
        switch format {
        case .json, .table:
            Swift.print(json)
        case .yaml:
            let value = try Yams.load(yaml: json)
            Swift.print(try Yams.dump(object: value, sortKeys: false), terminator: "")
        }
    }

    /// Left-aligned columns separated by three spaces, as crictl's tabwriter prints them.
    static func table(header: [String], rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                if i == cells.count - 1 {
                    out += cell
                } else {
                    out += cell + String(repeating: " ", count: widths[i] - cell.count + 3)
                }
            }
            return out
        }
        Swift.print(line(header))
        for row in rows { Swift.print(line(row)) }
    }
}
