import CRI
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// A CRI client over gRPC on a Unix socket, used by skiffctl, the integration tests and the benchmarks.
/// It speaks to any CRI runtime (skiffd, containerd, CRI-O), not only to Skiff.
public struct CRIClient: Sendable {
    let grpc: GRPCClient<HTTP2ClientTransport.Posix>
    public let timeout: Duration
    let maxResponseBytes: Int

    /// Connects to `endpoint` (`unix:///run/skiff/skiff.sock` or a plain path), runs `body`, then closes.
    public static func withClient<Result: Sendable>(
        endpoint: String,
        timeout: Duration = .seconds(10),
        maxResponseBytes: Int = 16 * 1024 * 1024,
        _ body: (CRIClient) async throws -> Result
    ) async throws -> Result {
        let path = try socketPath(of: endpoint)
        let transport = try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: path),
            transportSecurity: .plaintext,
            config: .defaults()
        )
        return try await withGRPCClient(transport: transport) { grpc in
            try await body(CRIClient(grpc: grpc, timeout: timeout, maxResponseBytes: maxResponseBytes))
        }
    }

    /// One unary call. Failures arrive as `RPCError` with the server's status code and message.
    public func call<Request, Response>(
        _ method: CRIMethod<Request, Response>,
        _ request: Request,
        timeout: Duration? = nil
    ) async throws -> Response {
        var options = CallOptions.defaults
        options.timeout = timeout ?? self.timeout
        options.maxResponseMessageBytes = maxResponseBytes
        // The NIO transport sizes its response deframer from this option (default 4 MiB), so it bounds
        // what we can receive, e.g. ExecSync output.
        options.maxRequestMessageBytes = maxResponseBytes
        return try await grpc.unary(
            request: ClientRequest(message: request),
            descriptor: method.descriptor,
            serializer: CRISerializer<Request>(),
            deserializer: CRIDeserializer<Response>(),
            options: options
        ) { response in try response.message }
    }

    /// Accepts what crictl accepts: `unix:///path`, `unix:/path` or a bare absolute path.
    public static func socketPath(of endpoint: String) throws -> String {
        if endpoint.hasPrefix("unix://") { return String(endpoint.dropFirst("unix://".count)) }
        if endpoint.hasPrefix("unix:") { return String(endpoint.dropFirst("unix:".count)) }
        if endpoint.hasPrefix("/") { return endpoint }
        throw RPCError(code: .invalidArgument, message: "endpoint \"\(endpoint)\" is not a unix socket (use unix:///path)")
    }
}
