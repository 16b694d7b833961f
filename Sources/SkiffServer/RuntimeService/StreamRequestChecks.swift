import CRI
import SkiffRuntime
import SkiffSupport

/// The checks Exec and Attach share before handing out a streaming URL.
extension CRIServer {
    /// The running container `query` names (id or unique prefix). Unknown → NOT_FOUND, not running →
    /// FAILED_PRECONDITION, as containerd.
    func runningContainer(_ query: String, method: String, action: String) throws -> ContainerRecord {
        guard !query.isEmpty else { throw SkiffError.invalidArgument("\(method): missing required container_id") }
        guard let found = try context.containers.resolve(query), let record = context.refresh(found.id) else {
            throw SkiffError.notFound("container \"\(query)\" not found")
        }
        guard record.state == .running else {
            throw SkiffError.failedPrecondition("container \(record.id) is in \(record.state.rawValue) state, not running: cannot \(action)")
        }
        return record
    }

    /// As kubelet's streaming server: a terminal merges stderr into stdout, so tty with stderr is
    /// INVALID_ARGUMENT, and so is asking for none of the three streams.
    static func checkStreams(method: String, stdin: Bool, stdout: Bool, stderr: Bool, tty: Bool) throws {
        if tty && stderr { throw SkiffError.invalidArgument("\(method): tty and stderr cannot both be true") }
        guard stdin || stdout || stderr else {
            throw SkiffError.invalidArgument("\(method): one of stdin, stdout, or stderr must be set")
        }
    }
}
