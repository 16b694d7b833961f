import CRI
import Foundation
import Glibc
import SkiffLauncher
import SkiffOCI
import SkiffRuntime
import SkiffSupport

/// RunPodSandbox creates and starts a pod-level sandbox: the infra process holding the pod's network, IPC
/// and UTS (and, with pid POD, PID) namespaces, its cgroup, and the files every container bind-mounts.
/// It returns only when the sandbox is ready. A failure half-way undoes everything done so far.
/// A second request for the same pod (name, namespace, uid, attempt) while the first is still running waits
/// for it and gets its result, so a client that timed out and retried is not told the name is taken.
extension CRIServer {
    func runPodSandbox(_ request: RunPodSandboxRequest) async throws -> RunPodSandboxResponse {
        guard let config = request.config else { throw SkiffError.invalidArgument("RunPodSandbox: config is required") }
        guard let metadata = config.metadata else { throw SkiffError.invalidArgument("RunPodSandbox: config.metadata is required") }
        guard !metadata.name.isEmpty else { throw SkiffError.invalidArgument("RunPodSandbox: config.metadata.name must not be empty") }
        let options = config.linux?.securityContext?.namespaceOptions
        let hostNetwork = options?.network == .node
        try Sysctls.validate(config.linux?.sysctls ?? [:], hostNetwork: hostNetwork, hostIPC: options?.ipc == .node)
        let runtime = try context.runtime(forHandler: request.runtimeHandler)

        let id = newIdentifier()
        let nameKey = SandboxStore.nameKey(name: metadata.name, namespace: metadata.namespace, uid: metadata.uid, attempt: metadata.attempt)
        if let holder = context.sandboxes.reserve(nameKey: nameKey, for: id) {
            // Same pod again: if its creation is still under way, wait for it and hand over its result.
            let existing = try await context.locks.withLock(holder) { context.sandboxes.get(holder) }
            if let existing { throw SkiffError.alreadyExists("pod sandbox name \"\(nameKey)\" is already in use by sandbox \(existing.id)") }
            if let retry = context.sandboxes.reserve(nameKey: nameKey, for: id) {
                throw SkiffError.alreadyExists("pod sandbox name \"\(nameKey)\" is reserved by sandbox \(retry)")
            }
        }

        return try await context.locks.withLock(id) {
            do {
                let record = try await createSandbox(id: id, config: config, metadata: metadata, handler: request.runtimeHandler, runtime: runtime)
                context.sandboxes.put(record)
                // As containerd: the sandbox reports its own CREATED and STARTED under its id.
                context.events.publish(.containerCreatedEvent, containerId: id, sandboxId: id)
                context.events.publish(.containerStartedEvent, containerId: id, sandboxId: id)
                logger.info("sandbox ready", metadata: ["sandbox": "\(id)", "pod": "\(metadata.namespace)/\(metadata.name)", "pid": "\(record.infraPid)"])
                var response = RunPodSandboxResponse()
                response.podSandboxId = id
                return response
            } catch {
                context.sandboxes.releaseName(nameKey, heldBy: id)
                throw error
            }
        }
    }

    private func createSandbox(
        id: String, config: PodSandboxConfig, metadata: PodSandboxMetadata, handler: String, runtime: OCIRuntime
    ) async throws -> SandboxRecord {
        let ctx = context
        let options = config.linux?.securityContext?.namespaceOptions
        let hostNetwork = options?.network == .node
        let recordDir = ctx.paths.sandboxRecordDirectory(id)
        let stateDir = ctx.paths.sandboxStateDirectory(id)
        let bundle = stateDir + "/bundle"

        var record = SandboxRecord(
            id: id, name: metadata.name, namespace: metadata.namespace, uid: metadata.uid, attempt: metadata.attempt,
            createdAt: unixNanos(), state: .ready, labels: config.labels, annotations: config.annotations,
            runtimeHandler: handler, logDirectory: config.logDirectory,
            networkMode: (options?.network ?? .pod).rawValue, pidMode: (options?.pid ?? .container).rawValue,
            ipcMode: (options?.ipc ?? .pod).rawValue, infraPid: 0, infraStartTime: 0,
            podCgroup: "", createdPodCgroup: false, config: Data(config.serializedBytes()))

        var started = false
        do {
            try FileSystem.makeDirectories(recordDir, mode: 0o711)
            try FileSystem.makeDirectories(bundle, mode: 0o711)
            try PodFiles.write(to: recordDir, config: config, hostNetwork: hostNetwork)
            if !config.logDirectory.isEmpty { try FileSystem.makeDirectories(config.logDirectory) }

            // The pod cgroup: kubelet's cgroup_parent if given (created if missing), else one of ours.
            let parent = config.linux?.cgroupParent ?? ""
            record.podCgroup = parent.isEmpty ? "\(ctx.defaultCgroupParent)/\(id)" : parent
            let podCgroup = try Cgroup(path: record.podCgroup)
            if !podCgroup.exists {
                _ = try Cgroup.create(path: record.podCgroup)
                record.createdPodCgroup = true
            }

            let spec = InfraContainer.spec(
                rootfs: ctx.paths.infraRootfs, hostname: PodFiles.hostname(config.hostname, hostNetwork: hostNetwork),
                options: options, sysctls: config.linux?.sysctls ?? [:], cgroupsPath: record.podCgroup + "/" + id)
            try AtomicFile.write(spec.json.prettyText, to: bundle + "/config.json")

            record.infraPid = try await ctx.monitor.create(
                .init(runtime: runtime, id: id, bundle: bundle, directory: stateDir, logPath: nil, oomFile: nil))
            started = true
            try await runtime.start(id)
            record.infraStartTime = ProcFS.startTime(of: record.infraPid) ?? 0
            if !hostNetwork {
                let netns = "/proc/\(record.infraPid)/ns/net"
                try await InfraContainer.loopbackUp(netnsPath: netns, containerId: id, pluginDirectories: ctx.cniPluginDirectories)
                // The pod network (CNI ADD with eth0); without a CNI config the pod keeps only lo.
                if let network = ctx.network.network() {
                    let args = CNIPodArgs.kubernetes(
                        sandboxId: id, netns: netns, name: metadata.name, namespace: metadata.namespace, uid: metadata.uid,
                        portMappings: config.portMappings)
                    do {
                        record.network = try await ctx.network.attach(network, pod: args)
                    } catch {
                        throw SkiffError(error.code, "RunPodSandbox \(metadata.namespace)/\(metadata.name): set up pod network \"\(network.name)\" from \(network.file): \(error.message)")
                    }
                    logger.info("pod network attached", metadata: ["sandbox": "\(id)", "network": "\(network.name)", "ips": "\(record.network?.ips ?? [])"])
                }
            }
            // The record is written last: a sandbox on disk is a sandbox that was ready.
            try RecordFile.write(record, to: recordDir + "/sandbox.json")
            return record
        } catch {
            logger.warning("RunPodSandbox failed, cleaning up", metadata: ["sandbox": "\(id)", "error": "\(error)"])
            // An attached network is detached first, while the infra still holds the namespace.
            if record.network != nil { _ = await ctx.detachNetwork(record) }
            if started { try? await ctx.stopInfra(record) } else { try? await runtime.delete(id, force: true) }
            try? ctx.removePodCgroup(record)
            try? FileSystem.removeTree(recordDir)
            try? FileSystem.removeTree(stateDir)
            if let error = error as? SkiffError { throw error }
            throw SkiffError.internal("RunPodSandbox \(metadata.namespace)/\(metadata.name): \(error)")
        }
    }
}
