import CRI
import SkiffRuntime
import SkiffSupport

/// RemovePodSandbox removes the sandbox: running containers are killed and removed, then the infra, the
/// pod cgroup (if skiffd made it), the pod's files and its record. Idempotent: an unknown id succeeds.
extension CRIServer {
    func removePodSandbox(_ request: RemovePodSandboxRequest) async throws -> RemovePodSandboxResponse {
        guard !request.podSandboxId.isEmpty else { throw SkiffError.invalidArgument("RemovePodSandbox: pod_sandbox_id is required") }
        guard let found = try context.sandboxes.resolve(request.podSandboxId) else { return RemovePodSandboxResponse() }
        try await context.locks.withLock(found.id) {
            guard let record = context.sandboxes.get(found.id) else { return }
            for container in context.containers.inSandbox(record.id) {
                try await removeContainerNow(container.id)
            }
            // A pod removed without a (successful) Stop still holds its CNI attachment: release it.
            _ = await context.detachNetwork(record)
            try await context.stopInfra(record)
            try context.removePodCgroup(record)
            do {
                try FileSystem.removeTree(context.paths.sandboxStateDirectory(record.id))
                try FileSystem.removeTree(context.paths.sandboxRecordDirectory(record.id))
            } catch {
                throw SkiffError.internal("remove sandbox \(record.id) files: \(error)")
            }
            context.events.publishSandboxStopped(record.id)
            // Published while the record is still indexed: kubelet needs the sandbox status in a DELETED event.
            context.events.publishSandboxDeleted(record.id)
            context.sandboxes.remove(record.id)
            logger.info("sandbox removed", metadata: ["sandbox": "\(record.id)"])
        }
        return RemovePodSandboxResponse()
    }
}
