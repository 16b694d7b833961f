import CRI
import SkiffRuntime
import SkiffSupport

/// RemoveContainer kills the container if it runs, and removes its launcher state, writable layer, cgroup
/// and records. Idempotent: an unknown id succeeds.
extension CRIServer {
    func removeContainer(_ request: RemoveContainerRequest) async throws -> RemoveContainerResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("RemoveContainer: container_id is required") }
        guard let found = try context.containers.resolve(request.containerId) else { return RemoveContainerResponse() }
        try await context.locks.withLock(found.id) {
            try await removeContainerNow(found.id)
            logger.info("container removed", metadata: ["container": "\(found.id)"])
        }
        return RemoveContainerResponse()
    }
}
