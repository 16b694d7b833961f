import CRI
import SkiffRuntime
import SkiffSupport

/// StartContainer releases a created container's init into the user's program.
extension CRIServer {
    func startContainer(_ request: StartContainerRequest) async throws -> StartContainerResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("StartContainer: container_id is required") }
        guard let found = try context.containers.resolve(request.containerId) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        try await context.locks.withLock(found.id) {
            guard let record = context.refresh(found.id) else { throw SkiffError.notFound("container \(found.id) not found") }
            guard record.state == .created else {
                throw SkiffError.failedPrecondition("container \(record.id) is \(record.state.rawValue), not created: it cannot be started")
            }
            let runtime = try context.runtime(forHandler: context.sandboxes.get(record.sandboxId)?.runtimeHandler ?? "")
            // Taken before `start`: a program that exits at once must not finish before it started.
            let started = unixNanos()
            try await runtime.start(record.id)
            if let updated = context.containers.update(record.id, { r in
                r.state = .running
                r.startedAt = started
            }) {
                try context.persist(updated)
                context.events.publish(.containerStartedEvent, containerId: updated.id, sandboxId: updated.sandboxId)
            }
            // A program that exits at once may already have an exit recorded.
            context.refresh(record.id)
        }
        return StartContainerResponse()
    }
}
