import CRI
import SkiffSupport

/// Exec prepares a streaming exec and returns its URL on skiffd's streaming server; the command runs
/// when the client connects to it (SPDY/3.1, see Streaming/). As containerd: an unknown container is
/// NOT_FOUND, one that is not running FAILED_PRECONDITION; as kubelet's streaming server: tty with
/// stderr, or none of stdin/stdout/stderr, is INVALID_ARGUMENT.
extension CRIServer {
    func exec(_ request: ExecRequest) async throws -> ExecResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("Exec: missing required container_id") }
        guard !request.cmd.isEmpty else { throw SkiffError.invalidArgument("Exec: cmd must not be empty") }
        let record = try runningContainer(request.containerId, method: "Exec", action: "exec in it")
        try Self.checkStreams(method: "Exec", stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, tty: request.tty)
        var resolved = request
        resolved.containerId = record.id
        var response = ExecResponse()
        response.url = try streaming.url(for: .exec(resolved))
        return response
    }
}
