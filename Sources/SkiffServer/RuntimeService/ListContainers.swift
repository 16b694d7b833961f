import CRI
import SkiffRuntime
import SkiffSupport

/// ListContainers lists containers from the in-memory index, filtered by id (exact or unique prefix),
/// state, pod sandbox id (exact or unique prefix) and label selector (every pair must match).
///
/// Kubelet calls it every second with every container of the node, so it reads boxed records (one retain
/// each, no record copies), sorts the boxes, and answers with the items' encodings, cached per record
/// version (`EncodedItemCache`): the response is their concatenation, byte for byte what encoding the
/// whole response would give.
extension CRIServer {
    func listContainers(_ request: ListContainersRequest) async throws -> EncodedMessage<ListContainersResponse> {
        var refs: [RecordRef<ContainerRecord>]
        var all: [RecordRef<ContainerRecord>]? = nil
        let filter = request.filter
        if let filter, !filter.id.isEmpty {
            refs = (try? context.containers.resolve(filter.id)).flatMap { $0 }.flatMap { context.containers.ref($0.id) }.map { [$0] } ?? []
        } else {
            refs = context.containers.refs()
            all = refs
        }
        if let filter {
            if !filter.podSandboxId.isEmpty {
                let sandboxId = (try? context.sandboxes.resolve(filter.podSandboxId))??.id ?? filter.podSandboxId
                refs.removeAll { $0.record.sandboxId != sandboxId }
            }
            if !filter.labelSelector.isEmpty {
                refs.removeAll { ref in !filter.labelSelector.allSatisfy { ref.record.labels[$0.key] == $0.value } }
            }
        }
        // The exit file is read only once the process is known to have exited (or when that is not
        // known from memory): a list of running containers reads no files.
        for i in refs.indices {
            let state = refs[i].record.state
            guard state == .running || state == .created else { continue }
            let id = refs[i].record.id
            if context.containers.processExited(id) != false, let fresh = context.refresh(id) {
                refs[i] = context.containers.ref(id) ?? RecordRef(fresh)
            }
        }
        if let wanted = filter?.state {
            refs.removeAll { Self.criState($0.record.state) != wanted.state }
        }
        refs.sort { $0.record.createdAt > $1.record.createdAt }
        let items = containerListItems.items(refs, all: all, id: \.id) { record in
            listItem(record).serializedBytes()
        }
        // ListContainersResponse: `repeated Container containers = 1`.
        var response = RepeatedMessageWriter(fieldNumber: 1, reservingCapacity: items.reduce(0) { $0 + $1.count + 4 })
        for item in items { response.append(encoded: item) }
        return EncodedMessage(bytes: response.bytes)
    }

    private func listItem(_ record: ContainerRecord) -> Container {
        var item = Container()
        item.id = record.id
        item.podSandboxId = record.sandboxId
        item.metadata = containerMetadata(record)
        item.image = imageSpec(record)
        item.imageRef = record.imageRef
        item.imageId = record.imageId
        item.state = Self.criState(record.state)
        item.createdAt = record.createdAt
        item.labels = record.labels
        item.annotations = record.annotations
        return item
    }
}
