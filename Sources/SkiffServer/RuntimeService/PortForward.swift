import CRI
import SkiffSupport

/// PortForward returns a URL on skiffd's streaming server; each forwarded connection the client opens
/// there is connected to the named port on the pod's loopback, inside its network namespace. As
/// containerd: an unknown sandbox is NOT_FOUND, one that is not ready FAILED_PRECONDITION; the
/// request's port list is not checked (the client names a port per connection).
extension CRIServer {
    func portForward(_ request: PortForwardRequest) async throws -> PortForwardResponse {
        guard !request.podSandboxId.isEmpty else { throw SkiffError.invalidArgument("PortForward: missing required pod_sandbox_id") }
        guard let sandbox = try context.sandboxes.resolve(request.podSandboxId) else {
            throw SkiffError.notFound("pod sandbox \"\(request.podSandboxId)\" not found")
        }
        guard sandbox.state == .ready, context.isInfraAlive(sandbox) else {
            throw SkiffError.failedPrecondition("pod sandbox \(sandbox.id) is not ready: its sandbox container is not running")
        }
        var resolved = request
        resolved.podSandboxId = sandbox.id
        var response = PortForwardResponse()
        response.url = try streaming.url(for: .portForward(resolved))
        return response
    }
}
