import CRI
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Glibc
import Logging
import ServiceLifecycle
import SkiffImages
import SkiffRuntime
import SkiffSupport

/// skiffd's life: take the state lock and the socket, serve CRI over gRPC until SIGTERM/SIGINT, then stop
/// accepting, let in-flight calls finish, and remove the socket.
public struct Daemon {
    public let config: SkiffConfig
    public let logger: Logger

    public init(config: SkiffConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public func run() async throws {
        try config.validate()
        for dir in [config.root, config.state, AtomicFile.parentDirectory(of: config.socket)] {
            try FileSystem.makeDirectories(dir, mode: 0o711)
        }
        let guardian = try SocketGuard.acquire(stateDir: config.state, socketPath: config.socket)
        defer {
            unlink(config.socket)
            guardian.release()
        }

        let maxBytes = SizeLimitedDeserializer<CRI.VersionRequest>.transportLimit(for: config.maxMessageBytes)
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: config.socket),
            transportSecurity: .plaintext,
            config: .defaults { $0.rpc.maxRequestPayloadSize = maxBytes }
        )
        raiseOpenFileLimit()
        let context = makeRuntimeContext()
        // Once per start, not per pod: comparing the pause binary costs tens of ms (bench profile).
        try InfraContainer.prepareRootfs(at: context.paths.infraRootfs, pauseBinary: context.pauseBinary)
        await context.recover()
        let images = try ImageStore(root: config.root + "/images", config: config.registry, logger: logger)
        let streaming: StreamingService
        do {
            streaming = try await StreamingService.start(address: config.streamAddress, port: config.streamPort, context: context, logger: logger)
        } catch {
            throw ConfigError("streaming server: cannot listen on \(config.streamAddress):\(config.streamPort) (stream_address/stream_port): \(error)")
        }
        let cri = CRIServer(config: config, context: context, images: images, streaming: streaming, logger: logger)
        let server = GRPCServer(transport: transport, services: [cri])

        let serverService = GRPCServerService(server: server, transport: transport, socket: config.socket, logger: logger)
        var lifecycle = ServiceGroupConfiguration(
            services: [.init(service: serverService)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // SIGTERM lets running calls finish, but a client that never reads its answer must not keep
        // skiffd alive: after this long the remaining calls are cancelled and skiffd exits.
        lifecycle.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: lifecycle)
        do {
            try await group.run()
        } catch {
            await streaming.stop()
            throw error
        }
        // Open sessions end with the daemon (their clients see the connection close).
        await streaming.stop()
        logger.info("skiffd stopped", metadata: ["socket": "\(config.socket)"])
    }
}

extension Daemon {
    /// skiffd holds a pidfd per running container and pod (ProcessWatch) besides its sockets: lift the
    /// soft open-file limit to the hard one, as containerd's unit file does with LimitNOFILE. As under
    /// containerd, containers inherit it (CRI sets no rlimits in their spec).
    func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let before = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.info("raised the open file limit", metadata: ["from": "\(before)", "to": "\(limit.rlim_max)"])
        } else {
            logger.warning("cannot raise the open file limit", metadata: ["limit": "\(before)", "errno": "\(errno)"])
        }
    }

    /// The launchers by handler name: skiff-runc beside skiffd, plus those named in the config.
    func makeRuntimeContext() -> RuntimeContext {
        let binDirectory = config.binDirectory ?? RuntimeContext.executableDirectory
        let paths = RuntimePaths(root: config.root, state: config.state)
        var runtimes = ["skiff-runc": OCIRuntime(name: "skiff-runc", path: binDirectory + "/skiff-runc", root: paths.runtimeRoot("skiff-runc"))]
        for (name, handler) in config.runtimes {
            runtimes[name] = OCIRuntime(name: name, path: handler.path, root: handler.root ?? paths.runtimeRoot(name))
        }
        return RuntimeContext(
            paths: paths, runtimes: runtimes, defaultRuntime: config.defaultRuntime, binDirectory: binDirectory,
            cniPluginDirectories: config.cniPluginDirectories, cniConfigDirectory: config.cniConfigDirectory,
            defaultCgroupParent: config.cgroupParent,
            logger: logger)
    }
}

/// Runs the gRPC server as a lifecycle service: graceful shutdown stops accepting new connections and
/// lets running calls complete.
struct GRPCServerService: Service, CustomStringConvertible {
    var description: String { "GRPCServer(\(socket))" }

    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let socket: String
    let logger: Logger

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                group.addTask {
                    // The socket is root-equivalent: restrict it as soon as it exists.
                    if (try? await transport.listeningAddress) != nil {
                        chmod(socket, 0o660)
                        logger.info("skiffd serving CRI", metadata: ["socket": "\(socket)", "pid": "\(getpid())"])
                    }
                }
            }
        } onGracefulShutdown: {
            logger.info("shutting down: no new calls, finishing in-flight ones")
            server.beginGracefulShutdown()
        }
    }
}
