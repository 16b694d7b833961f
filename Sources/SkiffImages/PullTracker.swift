import Synchronization

/// What one pull is doing, for progress displays (skiffd serves it as skiff.v1 ListPulls).
public struct PullStatus: Sendable, Hashable {
    public enum Phase: Sendable, Hashable {
        /// Fetching and checking the manifest and config; `layers` is still empty.
        case resolving
        case fetchingLayers
        case complete
        case failed
    }

    public enum LayerState: Sendable, Hashable {
        case waiting
        case downloading
        case extracting
        /// Downloaded and unpacked by this pull.
        case done
        /// Already unpacked in the store before this pull needed it.
        case exists
    }

    public struct Layer: Sendable, Hashable {
        /// Digest of the compressed blob.
        public var digest: String
        /// Blob size from the manifest.
        public var size: UInt64
        /// Blob bytes in the store so far.
        public var downloaded: UInt64
        public var state: LayerState
    }

    /// Increasing within one process.
    public var id: UInt64
    /// Normalised reference ("docker.io/library/busybox:latest").
    public var reference: String
    public var phase: Phase
    /// Unix nanoseconds.
    public var startedAt: Int64
    /// Unix nanoseconds; 0 while running.
    public var finishedAt: Int64
    /// In manifest order.
    public var layers: [Layer]
    /// Config digest, once complete.
    public var imageID: String
    /// Why it failed.
    public var error: String

    public var isRunning: Bool { phase == .resolving || phase == .fetchingLayers }
}

/// The pulls of one image store: those running and those that ended in the last `retention`.
///
/// Byte counts are kept per blob, not per pull: when two pulls need the same layer only one
/// downloads it (ImageStore shares the task), and both report the bytes of that one download.
public final class PullTracker: Sendable {
    /// How long a finished pull stays listed, so a client polling every 100 ms sees how it ended.
    public let retention: Duration
    /// At most this many finished pulls are kept (the newest).
    public let finishedLimit: Int

    private struct State {
        var nextID: UInt64 = 1
        var pulls: [UInt64: PullStatus] = [:]
        /// Bytes downloaded so far of blobs being downloaded.
        var blobBytes: [String: UInt64] = [:]
    }

    private let state = Mutex(State())
    private let now: @Sendable () -> Int64

    public init(retention: Duration = .seconds(60), finishedLimit: Int = 64, now: @escaping @Sendable () -> Int64) {
        self.retention = retention
        self.finishedLimit = finishedLimit
        self.now = now
    }

    /// Registers a pull of `reference` (already normalised) and returns its id.
    func begin(reference: String) -> UInt64 {
        let started = now()
        return state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.pulls[id] = PullStatus(
                id: id, reference: reference, phase: .resolving, startedAt: started, finishedAt: 0, layers: [],
                imageID: "", error: "")
            return id
        }
    }

    /// The manifest is read: these are the layers to fetch, bottom first.
    func fetchingLayers(_ id: UInt64, _ layers: [(digest: String, size: UInt64)]) {
        state.withLock { s in
            s.pulls[id]?.phase = .fetchingLayers
            s.pulls[id]?.layers = layers.map { .init(digest: $0.digest, size: $0.size, downloaded: 0, state: .waiting) }
        }
    }

    func layer(_ id: UInt64, _ digest: String, _ layerState: PullStatus.LayerState) {
        state.withLock { s in
            guard var p = s.pulls[id] else { return }
            for i in p.layers.indices where p.layers[i].digest == digest {
                p.layers[i].state = layerState
            }
            s.pulls[id] = p
        }
    }

    /// Bytes of blob `digest` written so far by the one download of it.
    func downloaded(_ digest: String, _ bytes: UInt64) {
        state.withLock { $0.blobBytes[digest] = bytes }
    }

    func finish(_ id: UInt64, imageID: String) {
        end(id) { p in
            p.phase = .complete
            p.imageID = imageID
        }
    }

    func fail(_ id: UInt64, error: String) {
        end(id) { p in
            p.phase = .failed
            p.error = error
        }
    }

    private func end(_ id: UInt64, _ update: (inout PullStatus) -> Void) {
        let finished = now()
        state.withLock { s in
            guard var p = s.pulls[id] else { return }
            update(&p)
            p.finishedAt = finished
            // Freeze the byte counts: the shared counters go away with the last pull needing them.
            for i in p.layers.indices { p.layers[i].downloaded = Self.bytes(of: p.layers[i], s.blobBytes) }
            s.pulls[id] = p
            let stillNeeded = Set(s.pulls.values.filter(\.isRunning).flatMap { $0.layers.map(\.digest) })
            s.blobBytes = s.blobBytes.filter { stillNeeded.contains($0.key) }
        }
    }

    /// Pulls of `reference` (every pull when nil), newest first. Drops finished pulls past retention.
    public func list(reference: String? = nil) -> [PullStatus] {
        let cutoff = now() - Int64(retention.components.seconds) * 1_000_000_000
            - Int64(retention.components.attoseconds / 1_000_000_000)
        return state.withLock { s in
            let finished = s.pulls.values.filter { !$0.isRunning }.sorted { $0.id > $1.id }
            for (rank, p) in finished.enumerated() where rank >= finishedLimit || p.finishedAt < cutoff {
                s.pulls[p.id] = nil
            }
            var out = s.pulls.values.filter { reference == nil || $0.reference == reference }
            out.sort { $0.id > $1.id }
            for i in out.indices where out[i].isRunning {
                for j in out[i].layers.indices {
                    out[i].layers[j].downloaded = Self.bytes(of: out[i].layers[j], s.blobBytes)
                }
            }
            return out
        }
    }

    private static func bytes(of layer: PullStatus.Layer, _ blobBytes: [String: UInt64]) -> UInt64 {
        switch layer.state {
        case .extracting, .done, .exists: layer.size
        case .waiting, .downloading: min(layer.size, blobBytes[layer.digest] ?? 0)
        }
    }
}
