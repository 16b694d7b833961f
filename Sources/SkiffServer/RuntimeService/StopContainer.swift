import CRI
import Glibc
import SkiffRuntime
import SkiffSupport

/// StopContainer sends the stop signal (the config's or image's STOPSIGNAL, else SIGTERM), waits `timeout`
/// seconds, then SIGKILL; timeout 0 kills at once. Returns only when the process has exited. Idempotent on
/// exited and unknown containers; concurrent calls queue on the container's lock, so a retry never cuts
/// the first call's grace period short.
extension CRIServer {
    func stopContainer(_ request: StopContainerRequest) async throws -> StopContainerResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("StopContainer: container_id is required") }
        guard let found = try context.containers.resolve(request.containerId) else { return StopContainerResponse() }
        try await context.locks.withLock(found.id) {
            guard let record = context.refresh(found.id) else { return }
            let timeout = Duration.seconds(max(0, request.timeout))
            try await context.stopContainer(record.id, signal: record.stopSignal, timeout: timeout)
            logger.info("container stopped", metadata: ["container": "\(record.id)"])
        }
        return StopContainerResponse()
    }
}
