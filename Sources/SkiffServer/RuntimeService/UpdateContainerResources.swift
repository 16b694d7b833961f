import CRI
import Foundation
import SkiffLauncher
import SkiffRuntime
import SkiffSupport

/// UpdateContainerResources changes a container's cgroup limits live and records them for ContainerStatus.
extension CRIServer {
    func updateContainerResources(_ request: UpdateContainerResourcesRequest) async throws -> UpdateContainerResourcesResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("UpdateContainerResources: container_id is required") }
        guard let found = try context.containers.resolve(request.containerId) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        guard let resources = request.linux else { return UpdateContainerResourcesResponse() }
        try await context.locks.withLock(found.id) {
            guard let record = context.refresh(found.id) else { throw SkiffError.notFound("container \(found.id) not found") }
            guard record.state == .running || record.state == .created else {
                throw SkiffError.failedPrecondition("container \(record.id) is \(record.state.rawValue): its resources cannot be updated")
            }
            var oci = ContainerSpecBuilder.resources(resources, devices: [])
            oci.devices = []
            do {
                let cgroup = try Cgroup(path: record.cgroup)
                try cgroup.update(oci)
            } catch {
                throw SkiffError.internal("update cgroup \(record.cgroup) of container \(record.id): \(error)")
            }
            if let updated = context.containers.update(record.id, { $0.resources = Data(resources.serializedBytes()) }) {
                try context.persist(updated)
            }
        }
        return UpdateContainerResourcesResponse()
    }
}
