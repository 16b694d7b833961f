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
        guard let found = try context.containers.resolve(request.containerId), let record = context.refresh(found.id) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        guard record.state == .running else {
            throw SkiffError.failedPrecondition("container \(record.id) is in \(record.state.rawValue) state, not running: cannot exec in it")
        }
        if request.tty && request.stderr {
            // A terminal merges stderr into stdout: there is nothing to multiplex.
            throw SkiffError.invalidArgument("Exec: tty and stderr cannot both be true")
        }
        guard request.stdin || request.stdout || request.stderr else {
            throw SkiffError.invalidArgument("Exec: one of stdin, stdout, or stderr must be set")
        }
        var resolved = request
        resolved.containerId = record.id
        var response = ExecResponse()
        response.url = try streaming.url(for: .exec(resolved))
        return response
    }
}
