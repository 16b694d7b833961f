import CRI
import Logging
import SkiffSupport
import Synchronization

/// Container lifecycle events for GetContainerEvents (kubelet's Evented PLEG).
///
/// The lifecycle code calls `publish` once per transition (CREATED, STARTED, STOPPED, DELETED; a sandbox
/// reports its own transitions under its own id, as containerd does). Each event carries, as containerd's do,
/// the pod's PodSandboxStatus and the statuses of the pod's containers, taken when it is published: kubelet
/// ignores an event without a sandbox status and caches the statuses under the event's `created_at`.
///
/// Publishing never blocks: each subscriber has a bounded buffer, and one that falls `capacity` events behind
/// is dropped with `EventHubError.overflow` (kubelet then relists and subscribes again) instead of holding
/// the runtime up or silently missing transitions. With no subscriber, publishing costs one lock and no
/// status is built.
public final class EventHub: Sendable {
    /// Builds the statuses an event carries for the pod `sandboxId` (nil status: the pod is unknown). Set by
    /// the server, which owns the CRI status code.
    public typealias Snapshot = @Sendable (_ sandboxId: String) -> (sandbox: PodSandboxStatus?, containers: [ContainerStatus])

    private struct State {
        var subscribers: [UInt64: AsyncThrowingStream<ContainerEventResponse, any Error>.Continuation] = [:]
        var nextID: UInt64 = 0
        var snapshot: Snapshot?
        /// Sandboxes whose STOPPED was published: their infra exit and StopPodSandbox both report it.
        var stoppedSandboxes: Set<String> = []
    }

    private let state = Mutex(State())
    /// Events a subscriber may have waiting before it is dropped.
    public let capacity: Int
    private let logger: Logger

    public init(capacity: Int = 1024, logger: Logger = Logger(label: "skiff.events")) {
        precondition(capacity > 0, "EventHub capacity must be positive")
        self.capacity = capacity
        self.logger = logger
    }

    public func setSnapshot(_ snapshot: @escaping Snapshot) {
        state.withLock { $0.snapshot = snapshot }
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    // MARK: subscribing

    /// A new subscriber: the events published from now on, in order. The stream ends with
    /// `EventHubError.overflow` if the subscriber falls behind; `cancel()` (or the consumer going away)
    /// unsubscribes.
    public func subscribe() -> EventSubscription {
        let (stream, continuation) = AsyncThrowingStream<ContainerEventResponse, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(capacity))
        let (id, count) = state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = continuation
            return (id, s.subscribers.count)
        }
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        logger.debug("events: subscriber joined", metadata: ["subscriber": "\(id)", "subscribers": "\(count)"])
        return EventSubscription(id: id, events: stream, continuation: continuation)
    }

    private func remove(_ id: UInt64) {
        let (removed, count) = state.withLock { s in (s.subscribers.removeValue(forKey: id) != nil, s.subscribers.count) }
        if removed { logger.debug("events: subscriber left", metadata: ["subscriber": "\(id)", "subscribers": "\(count)"]) }
    }

    // MARK: publishing

    /// Publishes one transition of container `containerId` (or of the sandbox itself when it equals
    /// `sandboxId`).
    public func publish(_ type: ContainerEventType, containerId: String, sandboxId: String) {
        let createdAt = unixNanos()
        guard let snapshot = state.withLock({ $0.subscribers.isEmpty ? nil : ($0.snapshot ?? { _ in (nil, []) }) }) else { return }
        // Built outside the lock: it reads the record indexes and may itself publish (a status read that
        // folds in an exit publishes that STOPPED first).
        let statuses = snapshot(sandboxId)
        var event = ContainerEventResponse()
        event.containerId = containerId
        event.containerEventType = type
        event.createdAt = createdAt
        event.podSandboxStatus = statuses.sandbox
        event.containersStatuses = statuses.containers
        deliver(event)
    }

    /// Publishes a sandbox's STOPPED once, however many paths learn of it (its infra's exit, StopPodSandbox,
    /// RemovePodSandbox of a running pod).
    public func publishSandboxStopped(_ sandboxId: String) {
        guard state.withLock({ $0.stoppedSandboxes.insert(sandboxId).inserted }) else { return }
        publish(.containerStoppedEvent, containerId: sandboxId, sandboxId: sandboxId)
    }

    /// Publishes a sandbox's DELETED and forgets it.
    public func publishSandboxDeleted(_ sandboxId: String) {
        publish(.containerDeletedEvent, containerId: sandboxId, sandboxId: sandboxId)
        _ = state.withLock { $0.stoppedSandboxes.remove(sandboxId) }
    }

    private func deliver(_ event: ContainerEventResponse) {
        var overflowed: [(UInt64, AsyncThrowingStream<ContainerEventResponse, any Error>.Continuation)] = []
        state.withLock { s in
            for (id, continuation) in s.subscribers {
                if case .dropped = continuation.yield(event) {
                    overflowed.append((id, continuation))
                }
            }
            for (id, _) in overflowed { s.subscribers.removeValue(forKey: id) }
        }
        // Finished outside the lock: finishing runs the stream's onTermination, which takes it again.
        for (id, continuation) in overflowed {
            logger.warning("events: subscriber dropped: it fell \(capacity) events behind", metadata: ["subscriber": "\(id)"])
            continuation.finish(throwing: EventHubError.overflow(capacity: capacity))
        }
    }
}

/// One subscriber's events. Iterate `events`; `cancel()` ends the stream and unsubscribes.
public struct EventSubscription: Sendable {
    public let id: UInt64
    public let events: AsyncThrowingStream<ContainerEventResponse, any Error>
    let continuation: AsyncThrowingStream<ContainerEventResponse, any Error>.Continuation

    public func cancel() { continuation.finish() }
}

public enum EventHubError: Error, Sendable, Equatable, CustomStringConvertible {
    case overflow(capacity: Int)

    public var description: String {
        switch self {
        case .overflow(let capacity):
            "the event stream fell \(capacity) events behind and was closed: relist and subscribe again"
        }
    }

    /// RESOURCE_EXHAUSTED, as a status.
    public var skiffError: SkiffError { SkiffError(.resourceExhausted, description) }
}
