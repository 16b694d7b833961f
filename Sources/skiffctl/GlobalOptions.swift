import ArgumentParser
import CRI
import Glibc
import SkiffClient

/// crictl's global flags. They may stand before or after the verb (`skiffctl -r unix:///x.sock version`).
struct GlobalOptions: ParsableArguments {
    @Option(name: [.customShort("r"), .long], help: "CRI endpoint (env CONTAINER_RUNTIME_ENDPOINT; default unix:///run/skiff/skiff.sock).")
    var runtimeEndpoint: String?

    @Option(name: [.customShort("i"), .long], help: "Image service endpoint (env IMAGE_SERVICE_ENDPOINT; default: the runtime endpoint).")
    var imageEndpoint: String?

    @Option(name: [.customShort("t"), .long], help: "Timeout of each call, e.g. 2s, 500ms, 1m (default 2s).")
    var timeout: String?

    static let defaultEndpoint = "unix:///run/skiff/skiff.sock"

    var runtimeEndpointValue: String {
        runtimeEndpoint ?? environment("CONTAINER_RUNTIME_ENDPOINT") ?? Self.defaultEndpoint
    }

    var imageEndpointValue: String {
        imageEndpoint ?? environment("IMAGE_SERVICE_ENDPOINT") ?? runtimeEndpointValue
    }

    func timeoutValue() throws -> Duration {
        guard let timeout, !timeout.isEmpty else { return .seconds(2) }
        guard let duration = parseDuration(timeout), duration > .zero else {
            throw ValidationError("invalid --timeout \"\(timeout)\": use e.g. 2s, 500ms, 1m")
        }
        return duration
    }

    /// Runs `body` with a client of the runtime service.
    func withRuntime<T: Sendable>(_ body: (CRIClient) async throws -> T) async throws -> T {
        try await CRIClient.withClient(endpoint: runtimeEndpointValue, timeout: try timeoutValue(), body)
    }

    /// Runs `body` with a client of the image service.
    func withImages<T: Sendable>(_ body: (CRIClient) async throws -> T) async throws -> T {
        try await CRIClient.withClient(endpoint: imageEndpointValue, timeout: try timeoutValue(), body)
    }
}

func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let s = String(cString: value)
    return s.isEmpty ? nil : s
}

/// Go-style durations as crictl takes them: "2s", "1.5s", "500ms", "1m", "1h"; a bare number is seconds.
func parseDuration(_ text: String) -> Duration? {
    if let seconds = Double(text) { return .milliseconds(Int64(seconds * 1000)) }
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        if let value = Double(text.dropLast(suffix.count)) { return .milliseconds(Int64(value * scale * 1000)) }
    }
    return nil
}
