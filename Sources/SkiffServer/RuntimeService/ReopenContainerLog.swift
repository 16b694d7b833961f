import CRI
import Foundation
import Glibc
import SkiffRuntime
import SkiffSupport

/// ReopenContainerLog asks the container's monitor to reopen its log file (after kubelet rotated it) and
/// waits until the new file exists. A container that is not running → FAILED_PRECONDITION, and no file is
/// created for it.
extension CRIServer {
    func reopenContainerLog(_ request: ReopenContainerLogRequest) async throws -> ReopenContainerLogResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("ReopenContainerLog: container_id is required") }
        guard let found = try context.containers.resolve(request.containerId), let record = context.refresh(found.id) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        guard record.state == .running else {
            throw SkiffError.failedPrecondition("container \(record.id) is not running: its log cannot be reopened")
        }
        guard !record.logPath.isEmpty else { return ReopenContainerLogResponse() }
        let stateDir = context.paths.containerStateDirectory(record.id)
        guard let text = try? FileSystem.readString(stateDir + "/monitor.pid"), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              kill(pid, 0) == 0
        else {
            throw SkiffError.internal("monitor of container \(record.id) is not running: cannot reopen its log")
        }
        guard kill(pid, SIGUSR1) == 0 else {
            throw SkiffError.internal("signal monitor \(pid) of container \(record.id): \(String(cString: strerror(errno)))")
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(5))
        while !FileSystem.exists(record.logPath) {
            if clock.now > deadline { throw SkiffError.internal("monitor of container \(record.id) did not reopen \(record.logPath) within 5 s") }
            try await Task.sleep(for: .milliseconds(5))
        }
        return ReopenContainerLogResponse()
    }
}
