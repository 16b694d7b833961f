import CRI
import Foundation
import Glibc
import SkiffSupport

/// Container state transitions shared by the container RPCs and the sandbox RPCs that act on all of a
/// pod's containers.
///
///     CreateContainer ──▶ CREATED ──StartContainer──▶ RUNNING ──(exit | Stop)──▶ EXITED
///            │                │                                                   │
///            └────────────────┴──────────────── RemoveContainer ◀─────────────────┘
///
/// EXITED is learned from the monitor's exit.json, which may have been written while skiffd was down.
extension RuntimeContext {
    /// Folds a recorded exit into the container's record (and persists it) if one appeared since.
    @discardableResult
    public func refresh(_ id: String) -> ContainerRecord? {
        guard let record = containers.get(id) else { return nil }
        guard record.state == .running || record.state == .created,
              let exit = ExitRecord.read(directory: paths.containerStateDirectory(id))
        else { return record }
        // Decided under the index's lock: of two concurrent refreshes only one makes (and reports) the change.
        var transitioned = false
        let updated = containers.update(id) { r in
            guard r.state == .running || r.state == .created else { return }
            transitioned = true
            r.state = .exited
            r.exitCode = exit.exitCode
            r.finishedAt = exit.finishedAt
            if r.startedAt == 0 { r.startedAt = exit.finishedAt }
            r.reason = exit.oomKilled ? "OOMKilled" : (exit.exitCode == 0 ? "Completed" : "Error")
        }
        if let updated, transitioned {
            try? persist(updated)
            events.publish(.containerStoppedEvent, containerId: id, sandboxId: updated.sandboxId)
        }
        return updated
    }

    public func persist(_ record: ContainerRecord) throws(SkiffError) {
        try RecordFile.write(record, to: paths.containerRecordDirectory(record.id) + "/container.json")
    }

    /// Stops a container: `signal`, wait up to `timeout`, then SIGKILL; returns once the exit is recorded.
    /// A container that is not running is left as it is.
    public func stopContainer(_ id: String, signal: Int32, timeout: Duration) async throws(SkiffError) {
        guard let record = refresh(id) else { return }
        let dir = paths.containerStateDirectory(id)
        guard record.state == .running || record.state == .created else { return }
        let runtime = try runtime(forHandler: sandboxes.get(record.sandboxId)?.runtimeHandler ?? "")
        if record.state == .created {
            // Never started: its init waits for `start`; killing it records an exit like any other.
            try? await runtime.kill(id, signal: SIGKILL)
        } else if timeout > .zero && signal != SIGKILL {
            try? await runtime.kill(id, signal: signal)
            if await ExitWatcher.wait(directory: dir, timeout: timeout) != nil {
                refresh(id)
                return
            }
            try? await runtime.kill(id, signal: SIGKILL)
        } else {
            try? await runtime.kill(id, signal: SIGKILL)
        }
        if await ExitWatcher.wait(directory: dir, timeout: .seconds(30)) == nil {
            if ProcFS.isAlive(record.initPid, startTime: record.initStartTime) {
                Glibc.kill(record.initPid, SIGKILL)
            }
            if await ExitWatcher.wait(directory: dir, timeout: .seconds(10)) == nil {
                throw .internal("container \(id) (pid \(record.initPid)) did not exit after SIGKILL")
            }
        }
        refresh(id)
    }

    /// Removes a container whatever its state: kill, delete from the launcher, unmount and delete its files.
    public func removeContainer(_ id: String, releaseRootfs: (String) async throws(SkiffError) -> Void) async throws(SkiffError) {
        guard let record = containers.get(id) else { return }
        try await stopContainer(id, signal: SIGKILL, timeout: .zero)
        let runtime = try runtime(forHandler: sandboxes.get(record.sandboxId)?.runtimeHandler ?? "")
        try await runtime.delete(id, force: true)
        try await releaseRootfs(id)
        do {
            try FileSystem.removeTree(paths.containerStateDirectory(id))
            try FileSystem.removeTree(paths.containerRecordDirectory(id))
        } catch {
            throw .internal("remove container \(id) files: \(error)")
        }
        containers.remove(id)
        events.publish(.containerDeletedEvent, containerId: id, sandboxId: record.sandboxId)
    }
}
