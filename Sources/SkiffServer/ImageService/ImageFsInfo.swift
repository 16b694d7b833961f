import CRI
import SkiffSupport

/// ImageFsInfo: bytes and inodes used by the image store, and the file system it lives on. kubelet's image
/// garbage collection reads it; crictl calls it before `images` and `ps` and retries on UNIMPLEMENTED.
extension CRIServer {
    func imageFsInfo(_ request: ImageFsInfoRequest) -> ImageFsInfoResponse {
        let imageRoot = config.root + "/images"
        let usage = FileSystem.usage(of: imageRoot)
        var id = FilesystemIdentifier()
        id.mountpoint = imageRoot
        var used = UInt64Value()
        used.value = usage.bytes
        var inodes = UInt64Value()
        inodes.value = usage.inodes
        var fs = FilesystemUsage()
        fs.timestamp = unixNanos()
        fs.fsId = id
        fs.usedBytes = used
        fs.inodesUsed = inodes
        var response = ImageFsInfoResponse()
        response.imageFilesystems = [fs]
        return response
    }
}
