import CRI
import SkiffSupport

/// Attach returns a URL on skiffd's streaming server through which the client joins a running
/// container's stdio (its monitor's attach socket, docs/attach.md). As containerd: an unknown container
/// is NOT_FOUND, one that is not running FAILED_PRECONDITION, and so is asking for stdin of a container
/// created without stdin; as kubelet's streaming server: tty with stderr, or none of stdin/stdout/
/// stderr, is INVALID_ARGUMENT.
extension CRIServer {
    func attach(_ request: AttachRequest) async throws -> AttachResponse {
        let record = try runningContainer(request.containerId, method: "Attach", action: "attach to it")
        try Self.checkStreams(method: "Attach", stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, tty: request.tty)
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
