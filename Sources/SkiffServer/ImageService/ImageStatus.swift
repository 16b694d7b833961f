import CRI
import Foundation
import SkiffImages
import SkiffSupport

/// ImageStatus finds an image by tag, id, digest or unique id prefix. An unknown image is an empty
/// response, not an error (as the CRI says). `verbose` adds the image config as JSON under "info".
extension CRIServer {
    func imageStatus(_ request: ImageStatusRequest) async throws -> ImageStatusResponse {
        guard let query = request.image?.image, !query.isEmpty else {
            throw SkiffError.invalidArgument("ImageStatus: image.image is required")
        }
        var response = ImageStatusResponse()
        guard let record = await images.resolve(query) else { return response }
        response.image = Self.criImage(record)
        if request.verbose {
            let config = (try? await images.configJSON(of: record)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            response.info = ["info": #"{"imageSpec":"# + config + #","chainID":""# + (record.layers.last?.diffID ?? "") + #""}"#]
        }
        return response
    }
}
