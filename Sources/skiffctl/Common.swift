import ArgumentParser
import CRI
import GRPCCore

/// Several failures, one line each (crictl joins the errors of `rm`, `rmp`, `rmi` over many ids).
struct MultiError: Error, CustomStringConvertible {
    let errors: [any Error]
    var description: String { errors.map(errorLine).joined(separator: "\n") }
}

/// Runs `body` for every id, keeps going after a failure and reports all failures at the end.
func forEach(_ ids: [String], _ body: (String) async throws -> Void) async throws {
    var failures: [any Error] = []
    for id in ids {
        do {
            try await body(id)
        } catch {
            failures.append(error)
        }
    }
    if failures.count == 1 { throw failures[0] }
    if !failures.isEmpty { throw MultiError(errors: failures) }
}

/// `--label k=v` values (crictl: exactly one `=`).
func parseLabels(_ values: [String]) throws -> [String: String] {
    var labels: [String: String] = [:]
    for value in values {
        let pair = value.split(separator: "=", omittingEmptySubsequences: false)
        guard pair.count == 2 else { throw CtlError("incorrectly specified label: \(value)") }
        labels[String(pair[0])] = String(pair[1])
    }
    return labels
}

/// A `--name`/`--namespace` pattern; matches anywhere in the value, as Go's `MatchString`.
struct Pattern {
    let regex: Regex<AnyRegexOutput>?

    init(_ pattern: String?) throws {
        guard let pattern, !pattern.isEmpty else {
            regex = nil
            return
        }
        do {
            regex = try Regex(pattern)
        } catch {
            throw CtlError("invalid regular expression \"\(pattern)\": \(error)")
        }
    }

    func matches(_ value: String) -> Bool {
        guard let regex else { return true }
        return (try? regex.firstMatch(in: value)) != nil
    }
}

/// crictl's `--latest` / `--last N` cut of a list sorted newest first.
func truncateCount(_ total: Int, latest: Bool, last: Int) -> Int {
    var n = total
    if latest { n = 1 }
    if last > 0 { n = last }
    return min(n, total)
}

/// Thrown when nothing was asked for; ArgumentParser prints the verb's usage with it.
func missing(_ what: String) -> ValidationError { ValidationError(what) }

/// `Labels:` / `Annotations:` blocks of crictl's verbose and table outputs.
func printMap(_ title: String, _ map: [String: String]) {
    guard !map.isEmpty else { return }
    print("\(title):")
    for key in map.keys.sorted() { print("\t\(key) -> \(map[key]!)") }
}

extension RPCError {
    var isNotFound: Bool { code == .notFound }
}
