import CRI
import GRPCCore
import Logging
import SkiffImages
import SkiffRuntime
import SkiffSupport

/// The CRI server: the state every handler shares. Each CRI method lives in its own file under
/// RuntimeService/ or ImageService/ as an extension of this type, as containerd and CRI-O do;
/// Skiff's own skiff.v1 methods (proto/skiff/v1) live under PullProgressService/.
public final class CRIServer: Sendable {
    let config: SkiffConfig
    let logger: Logger
    let context: RuntimeContext
    let images: ImageStore
    /// Serves the sessions Exec, Attach and PortForward hand out URLs for.
    let streaming: StreamingService
    /// ListContainers' items, encoded once per record version.
    let containerListItems = EncodedItemCache<ContainerRecord>()

    init(config: SkiffConfig, context: RuntimeContext, images: ImageStore, streaming: StreamingService, logger: Logger) {
        self.config = config
        self.context = context
        self.images = images
        self.streaming = streaming
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
        router.unary(CRIMethods.runPodSandbox, logger: log, limit: limit) { request, _ in try await self.runPodSandbox(request) }
        router.unary(CRIMethods.stopPodSandbox, logger: log, limit: limit) { request, _ in try await self.stopPodSandbox(request) }
        router.unary(CRIMethods.removePodSandbox, logger: log, limit: limit) { request, _ in try await self.removePodSandbox(request) }
        router.unary(CRIMethods.podSandboxStatus, logger: log, limit: limit) { request, _ in try await self.podSandboxStatus(request) }
        router.unary(CRIMethods.listPodSandbox, logger: log, limit: limit) { request, _ in try await self.listPodSandbox(request) }
        router.unary(CRIMethods.createContainer, logger: log, limit: limit) { request, _ in try await self.createContainer(request) }
        router.unary(CRIMethods.startContainer, logger: log, limit: limit) { request, _ in try await self.startContainer(request) }
        router.unary(CRIMethods.stopContainer, logger: log, limit: limit) { request, _ in try await self.stopContainer(request) }
        router.unary(CRIMethods.removeContainer, logger: log, limit: limit) { request, _ in try await self.removeContainer(request) }
        router.unary(CRIMethods.listContainers, logger: log, limit: limit) { request, _ in try await self.listContainers(request) }
        router.unary(CRIMethods.containerStatus, logger: log, limit: limit) { request, _ in try await self.containerStatus(request) }
        router.unary(CRIMethods.execSync, logger: log, limit: limit) { request, _ in try await self.execSync(request) }
        router.unary(CRIMethods.exec, logger: log, limit: limit) { request, _ in try await self.exec(request) }
        router.unary(CRIMethods.attach, logger: log, limit: limit) { request, _ in try await self.attach(request) }
        router.unary(CRIMethods.portForward, logger: log, limit: limit) { request, _ in try await self.portForward(request) }
        router.unary(CRIMethods.updateContainerResources, logger: log, limit: limit) { request, _ in try await self.updateContainerResources(request) }
        router.unary(CRIMethods.reopenContainerLog, logger: log, limit: limit) { request, _ in try await self.reopenContainerLog(request) }
        router.unary(CRIMethods.containerStats, logger: log, limit: limit) { request, _ in try await self.containerStats(request) }
        router.unary(CRIMethods.listContainerStats, logger: log, limit: limit) { request, _ in try await self.listContainerStats(request) }
        router.unary(CRIMethods.podSandboxStats, logger: log, limit: limit) { request, _ in try await self.podSandboxStats(request) }
        router.unary(CRIMethods.listPodSandboxStats, logger: log, limit: limit) { request, _ in try await self.listPodSandboxStats(request) }
        router.unary(CRIMethods.listMetricDescriptors, logger: log, limit: limit) { request, _ in self.listMetricDescriptors(request) }
        router.unary(CRIMethods.listPodSandboxMetrics, logger: log, limit: limit) { request, _ in await self.listPodSandboxMetrics(request) }
        router.serverStreaming(CRIMethods.getContainerEvents, logger: log, limit: limit) { request, _, writer in
            try await self.getContainerEvents(request, writer: writer)
        }
        // Events carry the statuses this server builds (weak: the context outlives no server, but owns the hub).
        context.events.setSnapshot { [weak self] sandboxId in self?.eventStatuses(sandboxId: sandboxId) ?? (nil, []) }
        // ImageService
        router.unary(CRIMethods.imageFsInfo, logger: log, limit: limit) { request, _ in await self.imageFsInfo(request) }
        router.unary(CRIMethods.pullImage, logger: log, limit: limit) { request, _ in try await self.pullImage(request) }
        router.unary(CRIMethods.listImages, logger: log, limit: limit) { request, _ in try await self.listImages(request) }
        router.unary(CRIMethods.imageStatus, logger: log, limit: limit) { request, _ in try await self.imageStatus(request) }
        router.unary(CRIMethods.removeImage, logger: log, limit: limit) { request, _ in try await self.removeImage(request) }
        // skiff.v1: Skiff's own services on the same socket
        router.unary(SkiffV1Methods.listPulls, logger: log, limit: limit) { request, _ in try self.listPulls(request) }
    }
}
