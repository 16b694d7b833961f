import CRI
import SkiffImages

/// ListImages lists stored images; a filter image (tag, digest or id) narrows it to that image.
extension CRIServer {
    func listImages(_ request: ListImagesRequest) async throws -> ListImagesResponse {
        var records: [ImageRecord]
        if let wanted = request.filter?.image?.image, !wanted.isEmpty {
            records = await images.resolve(wanted).map { [$0] } ?? []
        } else {
            records = await images.list()
        }
        records.sort { $0.pulledAt > $1.pulledAt }
        var response = ListImagesResponse()
        response.images = records.map(Self.criImage)
        return response
    }

    /// The CRI view of an image; `uid` or `username` come from the config's USER.
    static func criImage(_ record: ImageRecord) -> CRI.Image {
        var image = CRI.Image()
        image.id = record.id
        image.repoTags = record.repoTags
        image.repoDigests = record.repoDigests
        image.size = record.size
        let user = record.user.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        if let uid = Int64(user) {
            var value = Int64Value()
            value.value = uid
            image.uid = value
        } else {
            image.username = user
        }
        var spec = ImageSpec()
        spec.image = record.id
        image.spec = spec
        return image
    }
}
