import CRI

/// RuntimeConfig: kubelet (1.28+) asks which cgroup driver the runtime uses so that both agree. Skiff
/// manages cgroups directly through the file system (libcgroup), i.e. the cgroupfs driver.
extension CRIServer {
    func runtimeConfig(_ request: RuntimeConfigRequest) -> RuntimeConfigResponse {
        var linux = LinuxRuntimeConfiguration()
        linux.cgroupDriver = .cgroupfs
        var response = RuntimeConfigResponse()
        response.linux = linux
        return response
    }
}
