import CRI
import Foundation
import Glibc
import SkiffImages
import SkiffLauncher
import SkiffOCI
import SkiffRuntime
import SkiffSupport

/// CreateContainer creates a container in a ready sandbox: the image's layers as an overlay rootfs, an OCI
/// bundle built from the CRI config and the image config, and a monitor that runs the launcher's `create`
/// and will copy the container's output into its CRI log. The container's init waits for StartContainer.
extension CRIServer {
    func createContainer(_ request: CreateContainerRequest) async throws -> CreateContainerResponse {
        guard !request.podSandboxId.isEmpty else { throw SkiffError.invalidArgument("CreateContainer: pod_sandbox_id is required") }
        guard let config = request.config else { throw SkiffError.invalidArgument("CreateContainer: config is required") }
        guard let metadata = config.metadata, !metadata.name.isEmpty else {
            throw SkiffError.invalidArgument("CreateContainer: config.metadata.name is required")
        }
        guard let imageName = config.image?.image, !imageName.isEmpty else {
            throw SkiffError.invalidArgument("CreateContainer: config.image.image is required")
        }
        guard let sandbox = try context.sandboxes.resolve(request.podSandboxId) else {
            throw SkiffError.notFound("pod sandbox \"\(request.podSandboxId)\" not found")
        }
        guard sandboxState(sandbox) == .sandboxReady else {
            throw SkiffError.failedPrecondition("pod sandbox \(sandbox.id) is not ready: its containers cannot be created")
        }
        guard let image = await images.resolve(imageName) else {
            throw SkiffError.notFound("image \"\(imageName)\" not found: pull it first")
        }

        let id = newIdentifier()
        let nameKey = ContainerStore.nameKey(sandboxId: sandbox.id, name: metadata.name, attempt: metadata.attempt)
        if let holder = context.containers.reserve(nameKey: nameKey, for: id) {
            throw SkiffError.alreadyExists("container name \"\(metadata.name)\" (attempt \(metadata.attempt)) is already in use by container \(holder) in sandbox \(sandbox.id)")
        }
        return try await context.locks.withLock(id) {
            do {
                let record = try await createContainer(id: id, config: config, metadata: metadata, sandbox: sandbox, image: image)
                context.containers.put(record)
                context.events.publish(.containerCreatedEvent, containerId: id, sandboxId: sandbox.id)
                logger.info("container created", metadata: ["container": "\(id)", "name": "\(metadata.name)", "sandbox": "\(sandbox.id)"])
                var response = CreateContainerResponse()
                response.containerId = id
                return response
            } catch {
                context.containers.releaseName(nameKey, heldBy: id)
                throw error
            }
        }
    }

    private func createContainer(
        id: String, config: ContainerConfig, metadata: ContainerMetadata, sandbox: SandboxRecord, image: ImageRecord
    ) async throws -> SkiffRuntime.ContainerRecord {
        let runtime = try context.runtime(forHandler: sandbox.runtimeHandler)
        let recordDir = context.paths.containerRecordDirectory(id)
        let stateDir = context.paths.containerStateDirectory(id)
        let bundle = stateDir + "/bundle"
        var monitorStarted = false
        do {
            try FileSystem.makeDirectories(recordDir, mode: 0o711)
            try FileSystem.makeDirectories(bundle, mode: 0o711)
            let rootfs = try await images.prepareRootfs(containerID: id, image: image, at: bundle + "/rootfs")
            let security = config.linux?.securityContext
            let user = try UserResolver.resolve(
                rootfs: rootfs.mountpoint, runAsUser: security?.runAsUser?.value, runAsGroup: security?.runAsGroup?.value,
                runAsUsername: security?.runAsUsername ?? "", imageUser: image.config.user ?? "",
                supplementalGroups: security?.supplementalGroups ?? [])
            var targetPid: Int32?
            if security?.namespaceOptions?.pid == .target, let target = context.containers.get(security?.namespaceOptions?.targetId ?? "") {
                targetPid = target.initPid
            }
            let cgroupsPath = sandbox.podCgroup + "/" + id
            let builder = ContainerSpecBuilder(
                config: config, image: image.config, sandbox: sandbox,
                sandboxFiles: context.paths.sandboxRecordDirectory(sandbox.id), rootfs: rootfs.mountpoint,
                cgroupsPath: cgroupsPath, targetPid: targetPid)
            let spec = try builder.build(user: user, oomScoreAdjFloor: Self.ownOOMScoreAdj())
            try AtomicFile.write(spec.json.prettyText, to: bundle + "/config.json")

            var logPath = ""
            if !sandbox.logDirectory.isEmpty && !config.logPath.isEmpty {
                logPath = sandbox.logDirectory + "/" + config.logPath
                try FileSystem.makeDirectories((logPath as NSString).deletingLastPathComponent)
            }
            var record = SkiffRuntime.ContainerRecord(
                id: id, sandboxId: sandbox.id, name: metadata.name, attempt: metadata.attempt, labels: config.labels,
                annotations: config.annotations, image: config.image?.image ?? "", imageRef: image.repoDigests.first ?? image.id,
                imageId: image.id, logPath: logPath, cgroup: cgroupsPath,
                stopSignal: Self.stopSignal(config.stopSignal, image: image.config.stopSignal), config: Data(config.serializedBytes()))
            record.resources = Data((config.linux?.resources ?? LinuxContainerResources()).serializedBytes())
            record.stdin = config.stdin
            record.stdinOnce = config.stdinOnce
            record.tty = config.tty
            // Every container's monitor listens for attach clients; stdin and the terminal as configured.
            record.initPid = try await context.monitor.create(
                .init(runtime: runtime, id: id, bundle: bundle, directory: stateDir, logPath: logPath.isEmpty ? nil : logPath,
                      oomFile: Self.oomFile(cgroupsPath), attach: true, stdin: config.stdin, stdinOnce: config.stdinOnce,
                      tty: config.tty))
            monitorStarted = true
            record.initStartTime = ProcFS.startTime(of: record.initPid) ?? 0
            try context.persist(record)
            return record
        } catch {
            logger.warning("CreateContainer failed, cleaning up", metadata: ["container": "\(id)", "error": "\(error)"])
            if monitorStarted { try? await runtime.kill(id, signal: SIGKILL) }
            try? await runtime.delete(id, force: true)
            try? await images.releaseRootfs(containerID: id)
            try? FileSystem.removeTree(stateDir)
            try? FileSystem.removeTree(recordDir)
            throw error
        }
    }

    /// skiffd's own oom_score_adj: containers may not go below it (no CAP_SYS_RESOURCE needed).
    static func ownOOMScoreAdj() -> Int {
        Int((try? FileSystem.readString("/proc/self/oom_score_adj"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0
    }

    /// The file whose `oom_kill` counter tells the monitor that the cgroup saw an OOM kill.
    static func oomFile(_ cgroupsPath: String) -> String? {
        guard let cgroup = try? Cgroup(path: cgroupsPath), let dir = cgroup.directory(for: "memory") else { return nil }
        return dir + (cgroup.version == .v2 ? "/memory.events" : "/memory.oom_control")
    }

    /// The signal StopContainer sends first: the config's, else the image's STOPSIGNAL, else SIGTERM.
    static func stopSignal(_ configured: CRI.Signal, image: String?) -> Int32 {
        if configured.rawValue != 0, let number = signalNumber(configured.name) { return number }
        if let image, let number = signalNumber(image) { return number }
        return SIGTERM
    }

    static func signalNumber(_ text: String) -> Int32? {
        let upper = text.uppercased()
        if let n = Int32(upper), n > 0, n < 65 { return n }
        let name = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        let table: [String: Int32] = [
            "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "BUS": SIGBUS,
            "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2, "PIPE": SIGPIPE,
            "ALRM": SIGALRM, "TERM": SIGTERM, "STKFLT": 16, "CHLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP,
            "TSTP": SIGTSTP, "TTIN": SIGTTIN, "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ,
            "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO, "PWR": SIGPWR, "SYS": SIGSYS,
        ]
        return table[name]
    }
}
