import CRI
import SkiffSupport

/// Attach returns a URL on skiffd's streaming server through which the client joins a running
/// container's stdio (its monitor's attach socket, docs/attach.md). As containerd: an unknown container
/// is NOT_FOUND, one that is not running FAILED_PRECONDITION, and so is asking for stdin of a container
/// created without stdin; as kubelet's streaming server: tty with stderr, or none of stdin/stdout/
/// stderr, is INVALID_ARGUMENT.
extension CRIServer {
    func attach(_ request: AttachRequest) async throws -> AttachResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("Attach: missing required container_id") }
        guard let found = try context.containers.resolve(request.containerId), let record = context.refresh(found.id) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        guard record.state == .running else {
            throw SkiffError.failedPrecondition("container \(record.id) is in \(record.state.rawValue) state, not running: cannot attach to it")
        }
        if request.tty && request.stderr {
            throw SkiffError.invalidArgument("Attach: tty and stderr cannot both be true")
        }
        guard request.stdin || request.stdout || request.stderr else {
            throw SkiffError.invalidArgument("Attach: one of stdin, stdout, and stderr must be set")
        }
        if request.stdin && record.stdin != true {
            throw SkiffError.failedPrecondition("container \(record.id) was created without stdin: cannot attach to its stdin")
        }
        var resolved = request
        resolved.containerId = record.id
        var response = AttachResponse()
        response.url = try streaming.url(for: .attach(resolved))
        return response
    }
}
