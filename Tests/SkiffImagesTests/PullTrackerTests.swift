import Foundation
import Synchronization
import Testing

@testable import SkiffImages

/// What ListPulls reports, driven step by step with a fake clock.
@Suite("Pull tracker")
struct PullTrackerTests {
    /// Unix nanoseconds the test sets.
    final class FakeClock: Sendable {
        let nanos = Mutex<Int64>(1_000_000_000_000)
        func advance(seconds: Int64) { nanos.withLock { $0 += seconds * 1_000_000_000 } }
        var now: @Sendable () -> Int64 { { self.nanos.withLock { $0 } } }
    }

    @Test("a pull goes resolving → fetching layers → complete with per-layer states and bytes")
    func lifecycle() {
        let clock = FakeClock()
        let tracker = PullTracker(now: clock.now)
        let id = tracker.begin(reference: "docker.io/library/busybox:latest")
        var p = tracker.list()[0]
        #expect(p.id == id && p.phase == .resolving && p.layers.isEmpty && p.finishedAt == 0 && p.isRunning)

        tracker.fetchingLayers(id, [("sha256:aa", 1000), ("sha256:bb", 500)])
        tracker.layer(id, "sha256:aa", .downloading)
        tracker.downloaded("sha256:aa", 400)
        tracker.layer(id, "sha256:bb", .exists)
        p = tracker.list()[0]
        #expect(p.phase == .fetchingLayers)
        #expect(p.layers.map(\.state) == [.downloading, .exists])
        #expect(p.layers.map(\.downloaded) == [400, 500])
        #expect(p.layers.map(\.size) == [1000, 500])

        tracker.layer(id, "sha256:aa", .extracting)
        #expect(tracker.list()[0].layers[0].downloaded == 1000)
        tracker.layer(id, "sha256:aa", .done)
        clock.advance(seconds: 2)
        tracker.finish(id, imageID: "sha256:cfg")
        p = tracker.list()[0]
        #expect(p.phase == .complete && !p.isRunning && p.imageID == "sha256:cfg")
        #expect(p.finishedAt - p.startedAt == 2_000_000_000)
        #expect(p.layers.map(\.downloaded) == [1000, 500])
    }

    @Test("two pulls needing one layer both see the bytes of its single download")
    func sharedDownload() {
        let tracker = PullTracker(now: FakeClock().now)
        let first = tracker.begin(reference: "r/a:1")
        let second = tracker.begin(reference: "r/b:1")
        tracker.fetchingLayers(first, [("sha256:shared", 100)])
        tracker.fetchingLayers(second, [("sha256:shared", 100), ("sha256:own", 10)])
        tracker.layer(first, "sha256:shared", .downloading)
        tracker.layer(second, "sha256:shared", .downloading)
        tracker.downloaded("sha256:shared", 60)
        #expect(tracker.list(reference: "r/a:1").map { $0.layers[0].downloaded } == [60])
        #expect(tracker.list(reference: "r/b:1").map { $0.layers[0].downloaded } == [60])
        // The second pull failing keeps the first one's view of the shared download.
        tracker.fail(second, error: "boom")
        tracker.downloaded("sha256:shared", 80)
        #expect(tracker.list(reference: "r/a:1")[0].layers[0].downloaded == 80)
        let failed = tracker.list(reference: "r/b:1")[0]
        #expect(failed.phase == .failed && failed.error == "boom")
        #expect(failed.layers.map(\.downloaded) == [60, 0])
        // Newest first; an unknown reference lists nothing.
        #expect(tracker.list().map(\.id) == [second, first])
        #expect(tracker.list(reference: "r/c:1").isEmpty)
    }

    @Test("ended pulls stay listed for the retention time, running ones always")
    func retention() {
        let clock = FakeClock()
        let tracker = PullTracker(retention: .seconds(60), finishedLimit: 2, now: clock.now)
        let running = tracker.begin(reference: "r/run:1")
        let ended = tracker.begin(reference: "r/end:1")
        tracker.finish(ended, imageID: "sha256:x")
        clock.advance(seconds: 59)
        #expect(tracker.list().map(\.id) == [ended, running])
        clock.advance(seconds: 2)
        #expect(tracker.list().map(\.id) == [running])
        // Beyond the count limit, the oldest ended pulls go first.
        let ids = (0..<3).map { _ in tracker.begin(reference: "r/many:1") }
        for id in ids { tracker.fail(id, error: "x") }
        #expect(tracker.list().map(\.id) == [ids[2], ids[1], running])
    }
}
