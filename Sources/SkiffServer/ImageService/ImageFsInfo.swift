import CRI
import SkiffSupport

/// ImageFsInfo: bytes and inodes used by the image store, and the file system it lives on. kubelet's image
/// garbage collection reads it; crictl calls it before `images` and `ps` and retries on UNIMPLEMENTED.
extension CRIServer {
    func imageFsInfo(_ request: ImageFsInfoRequest) async -> ImageFsInfoResponse {
        let usage = await images.fsUsage()
        var id = FilesystemIdentifier()
        id.mountpoint = usage.mountpoint
        var fs = FilesystemUsage()
        fs.timestamp = usage.timestamp
        fs.fsId = id
        fs.usedBytes = Self.value(usage.bytes)
        fs.inodesUsed = Self.value(usage.inodes)
        var response = ImageFsInfoResponse()
        response.imageFilesystems = [fs]
        return response
    }
}
