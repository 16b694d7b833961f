import CRI
import SkiffRuntime
import SkiffSupport

/// ListPodSandboxStats reports the stats of every ready pod matching the filter (id: exact or prefix;
/// label_selector: every pair must match). Pods that are not ready are left out, as containerd does.
extension CRIServer {
    func listPodSandboxStats(_ request: ListPodSandboxStatsRequest) async throws -> ListPodSandboxStatsResponse {
        var records = context.sandboxes.all()
        if let filter = request.filter {
            if !filter.id.isEmpty { records = records.filter { $0.id.hasPrefix(filter.id) } }
            if !filter.labelSelector.isEmpty {
                records = records.filter { r in filter.labelSelector.allSatisfy { r.labels[$0.key] == $0.value } }
            }
        }
        var response = ListPodSandboxStatsResponse()
        for record in records.sorted(by: { $0.createdAt > $1.createdAt }) where sandboxState(record) == .sandboxReady {
            response.stats.append(await podStats(of: record))
        }
        return response
    }
}
