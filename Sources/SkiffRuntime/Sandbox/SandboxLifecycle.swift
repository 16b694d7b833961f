import CRI
import Foundation
import Glibc
import SkiffLauncher
import SkiffSupport

/// Stopping and tearing down a sandbox's infra container and cgroup; shared by Stop, Remove and the
/// clean-up of a RunPodSandbox that failed half-way.
extension RuntimeContext {
    /// True while the infra process runs (no exit recorded and the same process still alive).
    public func isInfraAlive(_ record: SandboxRecord) -> Bool {
        if record.state == .ready, let exited = sandboxes.processExited(record.id) { return !exited }
        if ExitRecord.read(directory: paths.sandboxStateDirectory(record.id)) != nil { return false }
        return ProcFS.isAlive(record.infraPid, startTime: record.infraStartTime)
    }

    /// Stops the infra container: SIGTERM (skiff-pause exits at once), then SIGKILL after a short grace.
    /// The launcher's record and the infra cgroup are deleted; the sandbox's files stay.
    public func stopInfra(_ record: SandboxRecord) async throws(SkiffError) {
        let runtime = try runtime(forHandler: record.runtimeHandler)
        let dir = paths.sandboxStateDirectory(record.id)
        if isInfraAlive(record) {
            try? await runtime.kill(record.id, signal: SIGTERM)
            if await ExitWatcher.wait(directory: dir, timeout: .seconds(2)) == nil {
                try? await runtime.kill(record.id, signal: SIGKILL)
                if await ExitWatcher.wait(directory: dir, timeout: .seconds(10)) == nil, ProcFS.isAlive(record.infraPid, startTime: record.infraStartTime) {
                    throw .internal("infra process \(record.infraPid) of sandbox \(record.id) did not exit after SIGKILL")
                }
            }
        }
        try await runtime.delete(record.id, force: true)
    }

    /// Removes the pod cgroup if skiffd made it. It must be empty by now: containers and infra are gone.
    public func removePodCgroup(_ record: SandboxRecord) throws(SkiffError) {
        guard record.createdPodCgroup, !record.podCgroup.isEmpty else { return }
        do {
            let cgroup = try Cgroup(path: record.podCgroup)
            if cgroup.exists { try cgroup.delete(force: true) }
        } catch {
            throw .internal("remove pod cgroup \(record.podCgroup): \(error)")
        }
        // Another launcher (runc) also makes the path in hierarchies skiff does not manage (the named
        // `systemd` one, `unified` on a hybrid host): remove those empty directories too.
        for hierarchy in FileSystem.listDirectory("/sys/fs/cgroup") {
            let dir = "/sys/fs/cgroup/\(hierarchy)\(record.podCgroup)"
            if FileSystem.isDirectory(dir) { rmdir(dir) }
        }
    }

    /// Loads every persisted sandbox and container into the in-memory index, and removes debris of
    /// creations that never finished (a directory without its record).
    public func recover() async {
        let sandboxRoot = paths.root + "/sandboxes"
        for id in FileSystem.listDirectory(sandboxRoot) {
            let recordPath = sandboxRoot + "/" + id + "/sandbox.json"
            if let record = try? RecordFile.read(SandboxRecord.self, from: recordPath) {
                sandboxes.put(record)
            } else {
                logger.warning("removing half-created sandbox", metadata: ["sandbox": "\(id)"])
                if let runtime = try? runtime(forHandler: "") { try? await runtime.delete(id, force: true) }
                try? FileSystem.removeTree(sandboxRoot + "/" + id)
                try? FileSystem.removeTree(paths.sandboxStateDirectory(id))
            }
        }
        let containerRoot = paths.root + "/containers"
        for id in FileSystem.listDirectory(containerRoot) {
            let recordPath = containerRoot + "/" + id + "/container.json"
            if let record = try? RecordFile.read(ContainerRecord.self, from: recordPath) {
                containers.put(record)
            } else {
                logger.warning("removing half-created container", metadata: ["container": "\(id)"])
                try? FileSystem.removeTree(containerRoot + "/" + id)
                try? FileSystem.removeTree(paths.containerStateDirectory(id))
            }
        }
        logger.info("recovered state", metadata: ["sandboxes": "\(sandboxes.ids.count)", "containers": "\(containers.ids.count)"])
    }
}
