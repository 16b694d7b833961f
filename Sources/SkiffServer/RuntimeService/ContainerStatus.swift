import CRI
import Foundation
import SkiffRuntime
import SkiffSupport

/// ContainerStatus reports a container: state, timestamps in Unix ns, exit code and reason
/// (Completed / Error / OOMKilled), image, mounts, log path and resources. Unknown id → NOT_FOUND.
extension CRIServer {
    func containerStatus(_ request: ContainerStatusRequest) async throws -> ContainerStatusResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("ContainerStatus: container_id is required") }
        guard let found = try context.containers.resolve(request.containerId), let record = context.refresh(found.id) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        let status = containerStatusMessage(record)
        var response = ContainerStatusResponse()
        response.status = status
        if request.verbose {
            let info: ProtoJSON = .object([
                ("pid", .number(Double(record.state == .running ? record.initPid : 0))),
                ("sandboxID", .string(record.sandboxId)),
                ("cgroup", .string(record.cgroup)),
                ("bundle", .string(context.paths.containerStateDirectory(record.id) + "/bundle")),
                ("config", ((try? ContainerConfig(serializedBytes: Array(record.config))) ?? ContainerConfig()).protoJSON(useProtoNames: false)),
            ])
            response.info = ["info": info.serialized(pretty: false)]
        }
        return response
    }

    /// The ContainerStatus message of a container (also carried by GetContainerEvents' events).
    func containerStatusMessage(_ record: SkiffRuntime.ContainerRecord) -> CRI.ContainerStatus {
        let config = (try? ContainerConfig(serializedBytes: Array(record.config))) ?? ContainerConfig()
        var status = CRI.ContainerStatus()
        status.id = record.id
        status.metadata = containerMetadata(record)
        status.state = Self.criState(record.state)
        status.createdAt = record.createdAt
        status.startedAt = record.state == .created ? 0 : record.startedAt
        status.finishedAt = record.state == .exited ? record.finishedAt : 0
        status.exitCode = record.exitCode
        status.image = imageSpec(record)
        status.imageRef = record.imageRef
        status.imageId = record.imageId
        status.reason = record.reason
        status.message = record.message
        status.labels = record.labels
        status.annotations = record.annotations
        status.mounts = config.mounts
        status.logPath = record.logPath
        if let resources = try? LinuxContainerResources(serializedBytes: Array(record.resources)) {
            var r = ContainerResources()
            r.linux = resources
            status.resources = r
        }
        return status
    }

    static func criState(_ state: ContainerRecord.State) -> ContainerState {
        switch state {
        case .created: .containerCreated
        case .running: .containerRunning
        case .exited: .containerExited
        case .unknown: .containerUnknown
        }
    }

    func containerMetadata(_ record: ContainerRecord) -> ContainerMetadata {
        var metadata = ContainerMetadata()
        metadata.name = record.name
        metadata.attempt = record.attempt
        return metadata
    }

    func imageSpec(_ record: ContainerRecord) -> ImageSpec {
        var spec = ImageSpec()
        spec.image = record.image
        return spec
    }
}
