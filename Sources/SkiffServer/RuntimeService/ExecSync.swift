import CRI
import Foundation
import SkiffOCI
import SkiffRuntime
import SkiffSupport

/// ExecSync runs a command in a running container, in all its namespaces and its cgroup, with its env,
/// user and cwd, and returns stdout, stderr (each capped at 16 MiB) and the exit code. On timeout the
/// command is killed and the call fails with DEADLINE_EXCEEDED. A container that is not running →
/// FAILED_PRECONDITION.
extension CRIServer {
    static let execOutputLimit = 16 * 1024 * 1024

    func execSync(_ request: ExecSyncRequest) async throws -> ExecSyncResponse {
        guard !request.containerId.isEmpty else { throw SkiffError.invalidArgument("ExecSync: container_id is required") }
        guard !request.cmd.isEmpty else { throw SkiffError.invalidArgument("ExecSync: cmd must not be empty") }
        guard request.timeout >= 0 else { throw SkiffError.invalidArgument("ExecSync: timeout must not be negative") }
        guard let found = try context.containers.resolve(request.containerId), let record = context.refresh(found.id) else {
            throw SkiffError.notFound("container \"\(request.containerId)\" not found")
        }
        guard record.state == .running else {
            throw SkiffError.failedPrecondition("container \(record.id) is \(record.state.rawValue), not running: cannot exec in it")
        }
        let stateDir = context.paths.containerStateDirectory(record.id)
        // The exec'd process gets the container's process settings with the request's argv.
        let spec: Spec
        do {
            spec = try Spec(json: JSON(parsing: try FileSystem.readBytes(stateDir + "/bundle/config.json")))
        } catch {
            throw SkiffError.internal("read bundle of container \(record.id): \(error)")
        }
        guard var process = spec.process else { throw SkiffError.internal("bundle of container \(record.id) has no process") }
        process.args = request.cmd
        process.terminal = false
        let token = newIdentifier().prefix(16)
        let processFile = stateDir + "/exec-\(token).json"
        let pidFile = stateDir + "/exec-\(token).pid"
        try AtomicFile.write(process.json.compactText, to: processFile)
        defer {
            unlink(processFile)
            unlink(pidFile)
        }
        let runtime = try context.runtime(forHandler: context.sandboxes.get(record.sandboxId)?.runtimeHandler ?? "")
        let result = try await runtime.exec(
            record.id, processFile: processFile, pidFile: pidFile,
            timeout: request.timeout > 0 ? .seconds(request.timeout) : nil, outputLimit: Self.execOutputLimit)
        if result.timedOut {
            throw SkiffError(.deadlineExceeded, "command \(request.cmd.joined(separator: " ")) in container \(record.id) timed out after \(request.timeout)s and was killed")
        }
        var response = ExecSyncResponse()
        response.stdout = result.stdout
        response.stderr = result.stderr
        response.exitCode = result.status
        return response
    }
}
