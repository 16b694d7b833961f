import CRI
import SkiffImages

/// skiff.v1 ListPulls: running and recently ended pulls with per-layer byte counts, so a client can
/// draw progress while its unary PullImage call runs (skiffctl pull does).
extension CRIServer {
    func listPulls(_ request: SkiffV1.ListPullsRequest) throws -> SkiffV1.ListPullsResponse {
        // Normalise as PullImage does, so "busybox" finds the pull of docker.io/library/busybox:latest.
        let reference = request.image.isEmpty ? nil : try ImageReference(parsing: request.image).description
        var response = SkiffV1.ListPullsResponse()
        response.pulls = images.pulls.list(reference: reference).map(Self.wirePull)
        return response
    }

    static func wirePull(_ p: PullStatus) -> SkiffV1.PullStatus {
        var w = SkiffV1.PullStatus()
        w.id = p.id
        w.reference = p.reference
        w.phase = switch p.phase {
        case .resolving: .pullResolving
        case .fetchingLayers: .pullFetchingLayers
        case .complete: .pullComplete
        case .failed: .pullFailed
        }
        w.startedAt = p.startedAt
        w.finishedAt = p.finishedAt
        w.imageId = p.imageID
        w.error = p.error
        w.layers = p.layers.map { l in
            var wl = SkiffV1.LayerProgress()
            wl.digest = l.digest
            wl.size = Int64(clamping: l.size)
            wl.downloaded = Int64(clamping: l.downloaded)
            wl.state = switch l.state {
            case .waiting: .layerWaiting
            case .downloading: .layerDownloading
            case .extracting: .layerExtracting
            case .done: .layerDone
            case .exists: .layerExists
            }
            return wl
        }
        return w
    }
}
