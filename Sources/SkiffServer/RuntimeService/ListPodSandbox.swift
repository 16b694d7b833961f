import CRI
import SkiffRuntime
import SkiffSupport

/// ListPodSandbox lists sandboxes from the in-memory index (never the disk), filtered by id (exact or
/// unique prefix), state and label selector (every pair must match), newest first.
extension CRIServer {
    func listPodSandbox(_ request: ListPodSandboxRequest) async throws -> ListPodSandboxResponse {
        var records = context.sandboxes.all()
        if let filter = request.filter {
            if !filter.id.isEmpty {
                let match = try? context.sandboxes.resolve(filter.id)
                records = match.flatMap { $0 }.map { [$0] } ?? []
            }
            if !filter.labelSelector.isEmpty {
                records = records.filter { record in filter.labelSelector.allSatisfy { record.labels[$0.key] == $0.value } }
            }
        }
        var items: [PodSandbox] = []
        items.reserveCapacity(records.count)
        for record in records.sorted(by: { $0.createdAt > $1.createdAt }) {
            let state = sandboxState(record)
            if let wanted = request.filter?.state, wanted.state != state { continue }
            var item = PodSandbox()
            item.id = record.id
            item.metadata = sandboxMetadata(record)
            item.state = state
            item.createdAt = record.createdAt
            item.labels = record.labels
            item.annotations = record.annotations
            item.runtimeHandler = record.runtimeHandler
            items.append(item)
        }
        var response = ListPodSandboxResponse()
        response.items = items
        return response
    }
}
