import CRI
import Glibc
import SkiffRuntime
import SkiffSupport

/// Helpers the sandbox RPCs use to act on a pod's containers without going through the container RPCs'
/// request validation.
extension CRIServer {
    /// Kills a container at once (StopPodSandbox: kubelet already gave it its grace period).
    func stopContainerNow(_ id: String) async throws {
        try await context.stopContainer(id, signal: SIGKILL, timeout: .zero)
    }

    /// Kills and removes a container with its writable layer.
    func removeContainerNow(_ id: String) async throws {
        try await context.removeContainer(id) { id throws(SkiffError) in try await self.releaseRootfs(containerId: id) }
    }

    /// Unmounts and deletes a container's root filesystem (its writable layer).
    func releaseRootfs(containerId: String) async throws(SkiffError) {
        do {
            try await images.releaseRootfs(containerID: containerId)
        } catch {
            throw .internal("release rootfs of container \(containerId): \(error)")
        }
    }
}
