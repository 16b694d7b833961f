import CRI
import SkiffRuntime
import SkiffSupport

/// StopPodSandbox stops every container of the pod (SIGKILL: kubelet has already stopped them gracefully)
/// and the infra process, and releases what the running pod held. Idempotent: stopping a stopped or
/// unknown sandbox succeeds. The sandbox and its containers stay listed until RemovePodSandbox.
extension CRIServer {
    func stopPodSandbox(_ request: StopPodSandboxRequest) async throws -> StopPodSandboxResponse {
        guard !request.podSandboxId.isEmpty else { throw SkiffError.invalidArgument("StopPodSandbox: pod_sandbox_id is required") }
        guard let found = try context.sandboxes.resolve(request.podSandboxId) else { return StopPodSandboxResponse() }
        try await context.locks.withLock(found.id) {
            guard var record = context.sandboxes.get(found.id) else { return }
            for container in context.containers.inSandbox(record.id) {
                try await stopContainerNow(container.id)
            }
            try await context.stopInfra(record)
            if record.state != .notReady {
                record.state = .notReady
                try RecordFile.write(record, to: context.paths.sandboxRecordDirectory(record.id) + "/sandbox.json")
                context.sandboxes.put(record)
            }
            logger.info("sandbox stopped", metadata: ["sandbox": "\(record.id)"])
        }
        return StopPodSandboxResponse()
    }
}
