import CRI
import Foundation
import SkiffRuntime
import SkiffSupport

/// PodSandboxStatus reports a sandbox: READY while its infra process lives, NOTREADY once stopped or once
/// the infra died (also while skiffd was down). `verbose` adds an "info" JSON document with the infra pid,
/// namespace paths, cgroup and the config. Unknown id → NOT_FOUND.
extension CRIServer {
    func podSandboxStatus(_ request: PodSandboxStatusRequest) async throws -> PodSandboxStatusResponse {
        guard !request.podSandboxId.isEmpty else { throw SkiffError.invalidArgument("PodSandboxStatus: pod_sandbox_id is required") }
        guard let record = try context.sandboxes.resolve(request.podSandboxId) else {
            throw SkiffError.notFound("pod sandbox \"\(request.podSandboxId)\" not found")
        }
        let ready = sandboxState(record) == .sandboxReady
        let status = sandboxStatusMessage(record, ready: ready)

        var response = PodSandboxStatusResponse()
        response.status = status
        response.timestamp = unixNanos()
        if request.verbose {
            response.info = ["info": sandboxInfoJSON(record, ready: ready)]
        }
        return response
    }

    /// The PodSandboxStatus message of a sandbox (also carried by GetContainerEvents' events).
    func sandboxStatusMessage(_ record: SandboxRecord, ready: Bool) -> PodSandboxStatus {
        var status = PodSandboxStatus()
        status.id = record.id
        status.metadata = sandboxMetadata(record)
        status.state = ready ? .sandboxReady : .sandboxNotready
        status.createdAt = record.createdAt
        // The CNI IPs while the pod is attached (a stopped pod has released them, as under containerd).
        var network = PodSandboxNetworkStatus()
        if let ips = record.network?.ips, let primary = ips.first {
            network.ip = primary
            network.additionalIps = ips.dropFirst().map { ip in
                var podIP = PodIP()
                podIP.ip = ip
                return podIP
            }
        }
        status.network = network
        var namespace = CRI.Namespace()
        var options = NamespaceOption()
        options.network = NamespaceMode(rawValue: record.networkMode)
        options.pid = NamespaceMode(rawValue: record.pidMode)
        options.ipc = NamespaceMode(rawValue: record.ipcMode)
        namespace.options = options
        var linux = LinuxPodSandboxStatus()
        linux.namespaces = namespace
        status.linux = linux
        status.labels = record.labels
        status.annotations = record.annotations
        status.runtimeHandler = record.runtimeHandler
        return status
    }

    /// READY only while the infra lives; a dead infra is reported (and remembered) as NOTREADY.
    func sandboxState(_ record: SandboxRecord) -> PodSandboxState {
        record.state == .ready && context.isInfraAlive(record) ? .sandboxReady : .sandboxNotready
    }

    func sandboxMetadata(_ record: SandboxRecord) -> PodSandboxMetadata {
        var metadata = PodSandboxMetadata()
        metadata.name = record.name
        metadata.namespace = record.namespace
        metadata.uid = record.uid
        metadata.attempt = record.attempt
        return metadata
    }

    private func sandboxInfoJSON(_ record: SandboxRecord, ready: Bool) -> String {
        let pid = ready ? record.infraPid : 0
        var namespaces: [(String, ProtoJSON)] = []
        if pid > 0 {
            for ns in ["net", "ipc", "uts", "pid"] { namespaces.append((ns, .string("/proc/\(pid)/ns/\(ns)"))) }
        }
        let config = (try? PodSandboxConfig(serializedBytes: Array(record.config)))?.protoJSON(useProtoNames: false) ?? .null
        let info: ProtoJSON = .object([
            ("pid", .number(Double(pid))),
            ("runtimeHandler", .string(record.runtimeHandler.isEmpty ? context.defaultRuntime : record.runtimeHandler)),
            ("cgroupParent", .string(record.podCgroup)),
            ("cniNetwork", .string(record.network?.networkName ?? "")),
            ("cniResult", record.network.flatMap { try? ProtoJSON.parse($0.result) } ?? .null),
            ("namespaces", .object(namespaces)),
            ("recordDirectory", .string(context.paths.sandboxRecordDirectory(record.id))),
            ("config", config),
        ])
        return info.serialized(pretty: false)
    }
}
