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
        let limit = config.maxMessageBytes
        // RuntimeService
        router.unary(CRIMethods.version, logger: log, limit: limit) { request, _ in self.version(request) }
        router.unary(CRIMethods.status, logger: log, limit: limit) { request, _ in self.status(request) }
        router.unary(CRIMethods.runtimeConfig, logger: log, limit: limit) { request, _ in self.runtimeConfig(request) }
        // ImageService
        router.unary(CRIMethods.imageFsInfo, logger: log, limit: limit) { request, _ in self.imageFsInfo(request) }
    }
}
