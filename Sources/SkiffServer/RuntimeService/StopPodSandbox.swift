import CRI
import SkiffRuntime
import SkiffSupport

/// StopPodSandbox stops every container of the pod (SIGKILL: kubelet has already stopped them gracefully)
/// and the infra process, and releases what the running pod held (its CNI network: DEL in reverse plugin
/// order with the ADD's config, args and result). Idempotent: stopping a stopped or
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
            // CNI DEL runs while the infra still holds the pod's network namespace; a failure is logged and
            // the stop completes (the attachment stays recorded, so the next Stop or Remove tries again).
            let before = record.network
            record = await context.detachNetwork(record)
            try await context.stopInfra(record)
            if record.state != .notReady || record.network != before {
                record.state = .notReady
                try RecordFile.write(record, to: context.paths.sandboxRecordDirectory(record.id) + "/sandbox.json")
                context.sandboxes.put(record)
            }
            context.events.publishSandboxStopped(record.id)
            logger.info("sandbox stopped", metadata: ["sandbox": "\(record.id)"])
        }
        return StopPodSandboxResponse()
    }
}
