import CRI

/// Status: the runtime's conditions. kubelet marks the node NotReady unless RuntimeReady is true, and
/// keeps pods off pod networks until NetworkReady is true, which it is once a CNI config is loaded from
/// `cni_conf_dir` (looked for again on every Status until one is found). `verbose` adds the effective config as JSON
/// under "config", as containerd does.
extension CRIServer {
    func status(_ request: StatusRequest) -> StatusResponse {
        var runtimeReady = RuntimeCondition()
        runtimeReady.type = "RuntimeReady"
        runtimeReady.status = true

        var networkReady = RuntimeCondition()
        networkReady.type = "NetworkReady"
        let network = context.network.readiness()
        networkReady.status = network.ready
        if !network.ready {
            networkReady.reason = "NetworkPluginNotReady"
            networkReady.message = "skiff: \(network.message)"
        }

        var status = RuntimeStatus()
        status.conditions = [runtimeReady, networkReady]

        var response = StatusResponse()
        response.status = status
        response.runtimeHandlers = runtimeHandlerNames().map { name in
            var handler = RuntimeHandler()
            handler.name = name
            return handler
        }
        if request.verbose {
            response.info = ["config": config.json()]
        }
        return response
    }

    /// The handler names a sandbox may ask for; "" means the default runtime.
    func runtimeHandlerNames() -> [String] {
        [""] + Set(config.runtimes.keys).union([config.defaultRuntime]).sorted()
    }
}
