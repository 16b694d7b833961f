import CRI

/// Version: who is serving. kubelet and crictl call it first; crictl even sends an empty request as a
/// connection check. `version` is the kubelet runtime API version every CRI runtime reports as "0.1.0".
extension CRIServer {
    func version(_ request: VersionRequest) -> VersionResponse {
        var response = VersionResponse()
        response.version = "0.1.0"
        response.runtimeName = "skiff"
        response.runtimeVersion = SkiffVersion.current
        response.runtimeApiVersion = "v1"
        return response
    }
}

public enum SkiffVersion {
    /// The package version; bumped with releases.
    public static let current = "0.1.0"
}
