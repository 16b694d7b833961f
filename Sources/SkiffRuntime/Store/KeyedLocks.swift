/// Serializes work per key (a sandbox or container id) while different keys run in parallel. Waiters are
/// served in arrival order, so a Stop queued behind a Create runs after it, never concurrently.
public actor KeyedLocks {
    private var queues: [String: [CheckedContinuation<Void, Never>]] = [:]

    public init() {}

    public func withLock<T: Sendable>(_ key: String, _ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: String) async {
        if queues[key] == nil {
            queues[key] = []
            return
        }
        await withCheckedContinuation { queues[key]!.append($0) }
    }

    private func release(_ key: String) {
        guard var waiters = queues[key] else { return }
        if waiters.isEmpty {
            queues[key] = nil
        } else {
            let next = waiters.removeFirst()
            queues[key] = waiters
            next.resume()
        }
    }
}
