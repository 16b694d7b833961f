import CRI
import SkiffImages
import SkiffSupport

/// RemoveImage untags or deletes an image (by tag, id or digest). Idempotent: unknown images succeed.
/// An image a container still uses cannot be deleted (FAILED_PRECONDITION).
extension CRIServer {
    func removeImage(_ request: RemoveImageRequest) async throws -> RemoveImageResponse {
        guard let query = request.image?.image, !query.isEmpty else {
            throw SkiffError.invalidArgument("RemoveImage: image.image is required")
        }
        try await images.remove(query)
        return RemoveImageResponse()
    }
}
