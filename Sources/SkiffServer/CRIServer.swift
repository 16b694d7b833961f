import CRI
import GRPCCore
import Logging
import SkiffSupport

/// The CRI server: the state every handler shares. Each CRI method lives in its own file under
/// RuntimeService/ or ImageService/ as an extension of this type, as containerd and CRI-O do.
public final class CRIServer: Sendable {
    let config: SkiffConfig
    let logger: Logger

    public init(config: SkiffConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }
}

/// Method table: which CRI methods skiffd serves. Anything not registered here is answered with
/// UNIMPLEMENTED by the router itself, which is what a client should see for work not done yet.
extension CRIServer: RegistrableRPCService {
    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let log = logger
        // RuntimeService
        router.unary(CRIMethods.version, logger: log) { request, _ in self.version(request) }
        router.unary(CRIMethods.status, logger: log) { request, _ in self.status(request) }
        router.unary(CRIMethods.runtimeConfig, logger: log) { request, _ in self.runtimeConfig(request) }
        // ImageService
        router.unary(CRIMethods.imageFsInfo, logger: log) { request, _ in self.imageFsInfo(request) }
    }
}
