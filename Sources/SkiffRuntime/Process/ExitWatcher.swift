import Foundation
import Glibc
import SkiffSupport

/// Waits for a monitor to record its process's exit (`exit.json`). Polls with a short interval that grows:
/// stop latency matters (kubelet waits on it) but a sleeping loop must stay cheap.
public enum ExitWatcher {
    public static func wait(directory: String, timeout: Duration) async -> ExitRecord? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var interval = Duration.milliseconds(2)
        while true {
            if let record = ExitRecord.read(directory: directory) { return record }
            if clock.now >= deadline { return nil }
            try? await Task.sleep(for: interval)
            interval = min(interval * 2, .milliseconds(50))
        }
    }
}
