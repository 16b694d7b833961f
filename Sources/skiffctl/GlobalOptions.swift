import ArgumentParser
import CRI
import Foundation
import GRPCCore
import SkiffClient

/// crictl's global flags. As with crictl they stand before the verb (`skiffctl -r unix:///x.sock pods`):
/// verbs have flags of the same letters (`runp -r HANDLER`, `stop -t N`, `logs -t`), so after the verb a
/// letter always means the verb's flag. `Main` takes them off the command line before ArgumentParser runs.
struct GlobalOptions: Sendable {
    var runtimeEndpoint: String?
    var imageEndpoint: String?
    var timeout: String?
    var debug = false

    static let defaultEndpoint = "unix:///run/skiff/skiff.sock"

    /// Set once by `Main` before any command runs.
    nonisolated(unsafe) static var current = GlobalOptions()

    static let help = """
        Global options (before the verb, as with crictl):
          -r, --runtime-endpoint <endpoint>
                CRI endpoint (env CONTAINER_RUNTIME_ENDPOINT;
                default \(defaultEndpoint))
          -i, --image-endpoint <endpoint>
                Image service endpoint (env IMAGE_SERVICE_ENDPOINT;
                default: the runtime endpoint)
          -t, --timeout <duration>
                Timeout of quick calls (lists, status): 2s, 500ms, 1m
                (default 2s). Calls that do work (runp, create, start, stop,
                rm, pull) may take minutes; see -T on those verbs.
          -D, --debug
                Print each request and response as JSON on stderr.
        """

    /// Splits `arguments` into the global options before the verb and the rest. Unknown leading options
    /// (`--help`, `--version`) end the global part and are left for ArgumentParser.
    static func split(_ arguments: [String]) throws -> (GlobalOptions, [String]) {
        var options = GlobalOptions()
        var i = 0
        func value(_ name: String, inline: String?) throws -> String {
            if let inline { return inline }
            i += 1
            guard i < arguments.count else { throw CtlError("flag needs an argument: \(name)") }
            return arguments[i]
        }
        while i < arguments.count {
            let arg = arguments[i]
            guard arg.hasPrefix("-"), arg != "-", arg != "--" else { break }
            var name = arg
            var inline: String?
            if let eq = arg.firstIndex(of: "=") {
                name = String(arg[..<eq])
                inline = String(arg[arg.index(after: eq)...])
            }
            switch name {
            case "-r", "--runtime-endpoint": options.runtimeEndpoint = try value(name, inline: inline)
            case "-i", "--image-endpoint": options.imageEndpoint = try value(name, inline: inline)
            case "-t", "--timeout": options.timeout = try value(name, inline: inline)
            case "-D", "--debug": options.debug = true
            default: return (options, Array(arguments[i...]))
            }
            i += 1
        }
        return (options, Array(arguments[i...]))
    }

    var runtimeEndpointValue: String {
        runtimeEndpoint ?? environment("CONTAINER_RUNTIME_ENDPOINT") ?? Self.defaultEndpoint
    }

    var imageEndpointValue: String {
        imageEndpoint ?? environment("IMAGE_SERVICE_ENDPOINT") ?? runtimeEndpointValue
    }

    /// crictl's `--timeout`: 0 or less means the default, 2 s.
    func timeoutValue() throws -> Duration {
        guard let timeout, !timeout.isEmpty else { return .seconds(2) }
        guard let duration = parseDuration(timeout) else {
            throw CtlError("invalid value \"\(timeout)\" for flag -timeout: use e.g. 2s, 500ms, 1m")
        }
        return duration > .zero ? duration : .seconds(2)
    }

    /// Runs `body` with a client of the runtime service.
    func withRuntime<T: Sendable>(_ body: (Client) async throws -> T) async throws -> T {
        try await Self.with(endpoint: runtimeEndpointValue, timeout: try timeoutValue(), debug: debug, body)
    }

    /// Runs `body` with a client of the image service.
    func withImages<T: Sendable>(_ body: (Client) async throws -> T) async throws -> T {
        try await Self.with(endpoint: imageEndpointValue, timeout: try timeoutValue(), debug: debug, body)
    }

    private static func with<T: Sendable>(
        endpoint: String, timeout: Duration, debug: Bool, _ body: (Client) async throws -> T
    ) async throws -> T {
        // gRPC would wait for a socket that is not there until the deadline; say so at once instead.
        let path = try CRIClient.socketPath(of: endpoint)
        var st = stat()
        if stat(path, &st) != 0 {
            let reason = String(cString: strerror(errno))
            throw RPCError(
                code: .unavailable,
                message: "connect to \(endpoint): \(reason) (is the runtime running? set -r or CONTAINER_RUNTIME_ENDPOINT)"
            )
        }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw RPCError(code: .unavailable, message: "connect to \(endpoint): \(path) is not a socket")
        }
        return try await CRIClient.withClient(endpoint: endpoint, timeout: timeout) { client in
            try await body(Client(cri: client, debug: debug))
        }
    }
}

/// How long a call may take. Quick calls use `--timeout`; calls that do real work (namespaces, cgroups,
/// processes) get minutes, as kubelet gives them (its runtime-request-timeout is 2 min, doubled for
/// RunPodSandbox by the CRI client library).
enum CallBudget {
    case quick
    case work(Duration?)
    /// Image pulls: no deadline unless the user gives one.
    case unbounded(Duration?)

    static let workDefault: Duration = .seconds(240)
    static let forever: Duration = .seconds(365 * 24 * 3600)
}

/// A CRI client with `--debug` logging and per-call budgets.
struct Client: Sendable {
    let cri: CRIClient
    let debug: Bool

    func call<Request: CRIMessage, Response: CRIMessage>(
        _ method: CRIMethod<Request, Response>,
        _ request: Request,
        _ budget: CallBudget = .quick,
        extra: Duration = .zero
    ) async throws -> Response {
        let timeout: Duration? =
            switch budget {
            case .quick: nil
            case .work(let given): (given ?? CallBudget.workDefault) + extra
            case .unbounded(let given): (given ?? CallBudget.forever) + extra
            }
        let name = "\(Request.protoName)".replacingOccurrences(of: "runtime.v1.", with: "")
        if debug {
            // Credentials stay out of logs.
            var shown = request.protoJSON(useProtoNames: false)
            if var pull = request as? PullImageRequest, pull.auth != nil {
                pull.auth = AuthConfig()
                shown = pull.protoJSON(useProtoNames: false)
            }
            debugLog("\(name): \(shown.serialized())")
        }
        let response = try await cri.call(method, request, timeout: timeout)
        if debug { debugLog("\(Response.protoName.replacingOccurrences(of: "runtime.v1.", with: "")): \(response.jsonText())") }
        return response
    }
}

func debugLog(_ line: String) {
    FileHandle.standardError.write(Data("DEBU \(line)\n".utf8))
}

func warnLog(_ line: String) {
    FileHandle.standardError.write(Data("WARN \(line)\n".utf8))
}

func infoLog(_ line: String) {
    FileHandle.standardError.write(Data("INFO \(line)\n".utf8))
}

func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let s = String(cString: value)
    return s.isEmpty ? nil : s
}

/// Go durations as crictl takes them: "2s", "1.5s", "500ms", "1m30s", "1h"; a bare number is seconds.
func parseDuration(_ text: String) -> Duration? {
    if let seconds = Double(text) { return .nanoseconds(Int64(seconds * 1e9)) }
    let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
    var rest = Substring(text)
    var negative = false
    if rest.hasPrefix("-") {
        negative = true
        rest = rest.dropFirst()
    }
    var total = 0.0
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
        let number = rest.prefix { $0.isNumber || $0 == "." }
        guard !number.isEmpty, let value = Double(number) else { return nil }
        rest = rest.dropFirst(number.count)
        // Longest unit first: "ms" before "m", "ns"/"us" before "s".
        guard let unit = units.sorted(by: { $0.0.count > $1.0.count }).first(where: { rest.hasPrefix($0.0) }) else {
            return nil
        }
        rest = rest.dropFirst(unit.0.count)
        total += value * unit.1
    }
    return .nanoseconds(Int64((negative ? -total : total) * 1e9))
}
