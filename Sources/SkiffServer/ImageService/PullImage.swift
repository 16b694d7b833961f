import CRI
import SkiffImages
import SkiffSupport

/// PullImage pulls an image (tag or digest) for linux/amd64 and returns its id. Credentials in the
/// request override the configured ones for the image's registry.
extension CRIServer {
    func pullImage(_ request: PullImageRequest) async throws -> PullImageResponse {
        guard let reference = request.image?.image, !reference.isEmpty else {
            throw SkiffError.invalidArgument("PullImage: image.image is required")
        }
        var auth: RegistryAuth?
        if let a = request.auth, !(a.username.isEmpty && a.password.isEmpty && a.auth.isEmpty && a.identityToken.isEmpty && a.registryToken.isEmpty) {
            auth = RegistryAuth(
                username: a.username.isEmpty ? nil : a.username, password: a.password.isEmpty ? nil : a.password,
                auth: a.auth.isEmpty ? nil : a.auth, identityToken: a.identityToken.isEmpty ? nil : a.identityToken,
                registryToken: a.registryToken.isEmpty ? nil : a.registryToken)
        }
        let image = try await images.pull(reference, auth: auth)
        logger.info("image pulled", metadata: ["image": "\(reference)", "id": "\(image.id)"])
        var response = PullImageResponse()
        response.imageRef = image.id
        return response
    }
}
