import CRI
import Foundation
import Glibc
import Synchronization
import Testing

@testable import SkiffRuntime

/// EventHub: ordered fan-out, bounded per-subscriber buffers, statuses built only for subscribers.
@Suite struct EventHubTests {
    static func next(_ iterator: inout AsyncThrowingStream<ContainerEventResponse, any Error>.AsyncIterator) async throws -> ContainerEventResponse? {
        try await iterator.next()
    }

    @Test func everySubscriberGetsEveryEventInOrderWithStatuses() async throws {
        let hub = EventHub(capacity: 16)
        hub.setSnapshot { sandboxId in
            var pod = PodSandboxStatus()
            pod.id = sandboxId
            var ctr = ContainerStatus()
            ctr.id = "skiff-c"
            return (pod, [ctr])
        }
        let a = hub.subscribe()
        let b = hub.subscribe()
        #expect(hub.subscriberCount == 2)
        hub.publish(.containerCreatedEvent, containerId: "skiff-c", sandboxId: "skiff-p")
        hub.publish(.containerStartedEvent, containerId: "skiff-c", sandboxId: "skiff-p")
        for subscription in [a, b] {
            var it = subscription.events.makeAsyncIterator()
            let e1 = try #require(try await Self.next(&it))
            let e2 = try #require(try await Self.next(&it))
            #expect([e1.containerEventType, e2.containerEventType] == [.containerCreatedEvent, .containerStartedEvent])
            #expect(e1.containerId == "skiff-c" && e1.podSandboxStatus?.id == "skiff-p" && e1.containersStatuses.map(\.id) == ["skiff-c"])
            #expect(e1.createdAt > 0 && e2.createdAt >= e1.createdAt)
        }
        a.cancel()
        b.cancel()
        #expect(hub.subscriberCount == 0)
    }

    @Test func withoutSubscribersNoStatusIsBuilt() {
        let hub = EventHub()
        let built = Mutex(0)
        hub.setSnapshot { _ in
            built.withLock { $0 += 1 }
            return (nil, [])
        }
        hub.publish(.containerCreatedEvent, containerId: "skiff-c", sandboxId: "skiff-p")
        #expect(built.withLock { $0 } == 0)
    }

    @Test func aSubscriberThatFallsBehindIsDroppedWithAnError() async throws {
        let hub = EventHub(capacity: 3)
        let slow = hub.subscribe()
        let fast = hub.subscribe()
        var fastEvents = fast.events.makeAsyncIterator()
        for i in 0..<5 {
            hub.publish(.containerStartedEvent, containerId: "skiff-\(i)", sandboxId: "skiff-p")
            // The fast one keeps up.
            #expect(try await Self.next(&fastEvents)?.containerId == "skiff-\(i)")
        }
        // The slow one was cut off at the 4th event: what it had buffered, then the error.
        #expect(hub.subscriberCount == 1)
        var received: [String] = []
        await #expect(throws: EventHubError.overflow(capacity: 3)) {
            for try await event in slow.events { received.append(event.containerId) }
        }
        #expect(received == ["skiff-0", "skiff-1", "skiff-2"])
        fast.cancel()
        #expect(hub.subscriberCount == 0)
    }

    @Test func aSandboxStopIsPublishedOnce() async throws {
        let hub = EventHub()
        let subscription = hub.subscribe()
        hub.publishSandboxStopped("skiff-p")
        hub.publishSandboxStopped("skiff-p")
        hub.publishSandboxDeleted("skiff-p")
        subscription.cancel()
        var types: [ContainerEventType] = []
        for try await event in subscription.events { types.append(event.containerEventType) }
        #expect(types == [.containerStoppedEvent, .containerDeletedEvent])
    }

    /// ProcessWatch tells its exit handler about exits it sees, and about processes already gone when watched.
    @Test func processWatchReportsExits() async throws {
        let watch = ProcessWatch()
        let seen = Mutex<[String]>([])
        watch.onExit { id in seen.withLock { $0.append(id) } }
        let pid = try ProcessWatchTests.spawnSleeper()
        watch.watch("skiff-live", pid: pid, startTime: try #require(ProcFS.startTime(of: pid)))
        #expect(seen.withLock { $0 }.isEmpty)
        kill(pid, SIGKILL)
        #expect(try await ProcessWatchTests.waitUntil { seen.withLock { $0 } == ["skiff-live"] })
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        // Reaped: a watch that finds it gone reports at once.
        watch.watch("skiff-gone", pid: pid, startTime: 1)
        #expect(seen.withLock { $0 } == ["skiff-live", "skiff-gone"])
        watch.forget("skiff-live")
        watch.forget("skiff-gone")
    }
}
