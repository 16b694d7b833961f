import CRI
import SkiffRuntime
import SkiffSupport

/// ListContainers lists containers from the in-memory index, filtered by id (exact or unique prefix),
/// state, pod sandbox id (exact or unique prefix) and label selector (every pair must match).
extension CRIServer {
    func listContainers(_ request: ListContainersRequest) async throws -> ListContainersResponse {
        var records = context.containers.all()
        if let filter = request.filter {
            if !filter.id.isEmpty {
                records = (try? context.containers.resolve(filter.id)).flatMap { $0 }.map { [$0] } ?? []
            }
            if !filter.podSandboxId.isEmpty {
                let sandboxId = (try? context.sandboxes.resolve(filter.podSandboxId))??.id ?? filter.podSandboxId
                records = records.filter { $0.sandboxId == sandboxId }
            }
            if !filter.labelSelector.isEmpty {
                records = records.filter { record in filter.labelSelector.allSatisfy { record.labels[$0.key] == $0.value } }
            }
        }
        var items: [Container] = []
        items.reserveCapacity(records.count)
        for var record in records {
            // The exit file is read only once the process is known to have exited (or when that is
            // not known from memory): a list of running containers reads no files.
            if record.state == .running || record.state == .created, context.containers.processExited(record.id) != false,
               let fresh = context.refresh(record.id) {
                record = fresh
            }
            let state = Self.criState(record.state)
            if let wanted = request.filter?.state, wanted.state != state { continue }
            var item = Container()
            item.id = record.id
            item.podSandboxId = record.sandboxId
            item.metadata = containerMetadata(record)
            item.image = imageSpec(record)
            item.imageRef = record.imageRef
            item.imageId = record.imageId
            item.state = state
            item.createdAt = record.createdAt
            item.labels = record.labels
            item.annotations = record.annotations
            items.append(item)
        }
        items.sort { $0.createdAt > $1.createdAt }
        var response = ListContainersResponse()
        response.containers = items
        return response
    }
}
