import CRI
import SkiffSupport

/// Exits nobody asked about: a container that ends by itself (or is OOM-killed) and an infra process that
/// dies must still reach event subscribers as STOPPED, without waiting for a Stop or Status call.
extension RuntimeContext {
    /// Called by ProcessWatch for each watched process that exits (containers' inits, sandboxes' infras).
    func processExited(_ id: String) {
        if containers.get(id) != nil {
            // The pidfd turns readable when the process exits; the monitor writes exit.json just after it
            // reaps it. Wait for that file outside the lock, then fold it in under the container's lock,
            // so a StartContainer or StopContainer in flight finishes its own transition first.
            let directory = paths.containerStateDirectory(id)
            Task {
                _ = await ExitWatcher.wait(directory: directory, timeout: .seconds(10))
                await locks.withLock(id) { _ = self.refresh(id) }
            }
        } else if sandboxes.get(id) != nil {
            // After a StopPodSandbox or RemovePodSandbox in flight, which reports the pod's stop itself.
            Task { await locks.withLock(id) { if self.sandboxes.get(id) != nil { self.events.publishSandboxStopped(id) } } }
        }
    }
}
