import CArchive
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The image store: pulls from registries, keeps blobs by digest, unpacked layers as overlayfs lower
/// dirs, image records, and mounts container root filesystems.
///
/// On disk, under `root`:
///
///     blobs/sha256/<hex>          manifests, indexes, configs, compressed layers (verified)
///     ingest/                     downloads in flight (emptied at start)
///     snapshots/<diff id hex>/    one unpacked layer, overlayfs whiteouts; .tmp-* while unpacking
///     images/<id hex>.json        image records — written last, atomically (temp, fsync, rename)
///     containers/<id>.json        rootfs records, written before the overlay is mounted
///     containers/<id>/{upper,work}
///
/// A pull makes blobs and snapshots durable before the record appears, so a crash mid-pull leaves no
/// half-visible image, only unreferenced content that the next pull reuses or garbage collection
/// removes. Concurrent pulls share one download per blob and one unpack per layer; layers shared by
/// images are stored once (snapshots are keyed by diff id).
///
/// All methods are safe to call concurrently (actor). Blocking work (unpacking, fsync, tree walks)
/// runs on Dispatch workers, not on the actor. One process should own a root at a time.
public actor ImageStore {
    public let root: String
    public let config: RegistryConfig
    let logger: Logger

    private var images: [String: ImageRecord]
    private var rootfs: [String: RootfsMount]
    private var blobTasks: [Digest: Task<Void, any Error>] = [:]
    private var snapshotTasks: [Digest: Task<Void, any Error>] = [:]
    /// Digests (blobs and diff ids) that pulls in flight still need: garbage collection keeps them.
    private var leases: [Digest: Int] = [:]
    private var usageCache: FsUsage?
    private var usageDirty = true
    /// Running and recently ended pulls with their per-layer progress (skiff.v1 ListPulls).
    public nonisolated let pulls = PullTracker(now: { ImageStore.nowNanos() })

    nonisolated var blobsDir: String { root + "/blobs/sha256" }
    nonisolated var ingestDir: String { root + "/ingest" }
    nonisolated var snapshotsDir: String { root + "/snapshots" }
    nonisolated var imagesDir: String { root + "/images" }
    nonisolated var containersDir: String { root + "/containers" }

    public init(root: String, config: RegistryConfig = RegistryConfig(), logger: Logger) throws(ImageError) {
        try FS.mkdirs(root)
        guard let real = FS.realPath(root) else { throw .posix("realpath", root) }
        // overlayfs options are ","- and ":"-separated lists of these paths.
        guard !real.contains(","), !real.contains(":") else {
            throw ImageError(.io, "image store root \(real) must not contain ',' or ':' (overlayfs option syntax)")
        }
        let (images, rootfs) = try Self.openLayout(root: real, logger: logger)
        self.root = real
        self.config = config
        self.logger = logger
        self.images = images
        self.rootfs = rootfs
    }

    /// Creates the layout, removes crash leftovers (partial downloads and unpacks, temp records) and
    /// loads the records.
    private static func openLayout(root: String, logger: Logger) throws(ImageError) -> ([String: ImageRecord], [String: RootfsMount]) {
        let ingest = root + "/ingest", snapshots = root + "/snapshots"
        let imagesDir = root + "/images", containers = root + "/containers"
        for dir in [root + "/blobs/sha256", ingest, snapshots, imagesDir, containers] {
            try FS.mkdirs(dir)
        }
        for name in try FS.listDirectory(ingest) { try FS.removeTree(ingest + "/" + name) }
        for name in try FS.listDirectory(snapshots) where name.hasPrefix(".tmp-") {
            try FS.removeTree(snapshots + "/" + name)
        }
        func load<T: Decodable>(_ dir: String, _ type: T.Type) throws(ImageError) -> [T] {
            var result: [T] = []
            for name in try FS.listDirectory(dir) {
                let path = dir + "/" + name
                if name.contains(".tmp-") {
                    unlink(path)
                    continue
                }
                guard name.hasSuffix(".json") else { continue }
                do {
                    result.append(try JSONDecoder().decode(T.self, from: try FS.readFile(path)))
                } catch {
                    logger.error("image store: ignoring unreadable record", metadata: ["path": "\(path)", "error": "\(error)"])
                }
            }
            return result
        }
        let images = try load(imagesDir, ImageRecord.self)
        let mounts = try load(containers, RootfsMount.self)
        return (
            Dictionary(images.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }),
            Dictionary(mounts.map { ($0.containerID, $0) }, uniquingKeysWith: { a, _ in a })
        )
    }

    // MARK: Queries

    /// All images, sorted by id.
    public func list() -> [ImageRecord] {
        images.values.sorted { $0.id < $1.id }
    }

    /// Finds an image by tag or digest reference ("busybox", "busybox@sha256:…"), image id (with or
    /// without "sha256:"), manifest/index digest, or a unique prefix of the id. Nil when unknown or ambiguous.
    public func resolve(_ query: String) -> ImageRecord? {
        guard !query.isEmpty else { return nil }
        if let digest = try? Digest(parsing: query) {
            if let r = images[digest.description] { return r }
            let suffix = "@" + digest.description
            if let r = images.values.first(where: { $0.manifestDigest == digest.description || $0.repoDigests.contains { $0.hasSuffix(suffix) } }) {
                return r
            }
        }
        if query.utf8.count == 64, query.utf8.allSatisfy(Digest.isLowerHex), let r = images["sha256:" + query] {
            return r
        }
        if let ref = try? ImageReference(parsing: query) {
            if let digested = ref.digested {
                if let r = images.values.first(where: { $0.repoDigests.contains(digested) }) { return r }
                if let r = images.values.first(where: {
                    $0.manifestDigest == ref.digest?.description && $0.repoDigests.contains { $0.hasPrefix(ref.name + "@") }
                }) {
                    return r
                }
            } else if let tagged = ref.tagged, let r = images.values.first(where: { $0.repoTags.contains(tagged) }) {
                return r
            }
        }
        let prefix = query.hasPrefix("sha256:") ? String(query.dropFirst(7)) : query
        guard !prefix.isEmpty, prefix.utf8.allSatisfy(Digest.isLowerHex) else { return nil }
        let matches = images.values.filter { $0.id.dropFirst(7).hasPrefix(prefix) }
        return matches.count == 1 ? matches[0] : nil
    }

    /// The runtime config (Env, Entrypoint, Cmd, WorkingDir, User, StopSignal, Labels, ports, volumes).
    public nonisolated func config(of image: ImageRecord) -> ImageConfig { image.config }

    /// The image's config blob as stored (for CRI ImageStatus verbose info).
    public func configJSON(of image: ImageRecord) throws(ImageError) -> Data {
        let digest = try Digest(parsing: image.id)
        return try FS.readFile(blobPath(digest))
    }

    /// Bytes and inodes used by the store. Measured by walking the store, cached until the store
    /// changes or 60 s pass, so frequent ImageFsInfo calls do not rescan the disk.
    public func fsUsage() async -> FsUsage {
        let now = Self.nowNanos()
        if !usageDirty, let cached = usageCache, now - cached.timestamp < 60_000_000_000 { return cached }
        usageDirty = false
        let root = self.root
        let measured: (bytes: UInt64, inodes: UInt64) = (try? await runBlocking { FS.usage(root) }) ?? (bytes: 0, inodes: 0)
        let usage = FsUsage(bytes: measured.bytes, inodes: measured.inodes, mountpoint: root, timestamp: now)
        usageCache = usage
        return usage
    }

    // MARK: Pull

    /// Pulls `reference` (normalised the Docker way) for linux/amd64 and returns its record.
    /// `auth` overrides the configured credentials of the image's registry (not of its mirrors).
    /// Fails when a request makes no progress for `stallTimeoutSeconds`, never on total time.
    public func pull(
        _ reference: String, auth: RegistryAuth? = nil
    ) async throws(ImageError) -> ImageRecord {
        let ref = try ImageReference(parsing: reference)
        let endpoints = try config.endpoints(for: ref.domain)
        let client = RegistryClient(config: config, requestAuth: auth, logger: logger)
        let leased = LeaseSet()
        let pullID = pulls.begin(reference: ref.description)
        do {
            let record = try await pull(ref, pullID: pullID, endpoints: endpoints, client: client, leased: leased)
            release(leased)
            await client.shutdown()
            pulls.finish(pullID, imageID: record.id)
            return record
        } catch {
            release(leased)
            await client.shutdown()
            let e = ImageError.wrap(error, "pull \(ref)")
            pulls.fail(pullID, error: e.message)
            logger.warning("pull failed", metadata: ["reference": "\(ref)", "error": "\(e)"])
            throw e
        }
    }

    private func pull(
        _ ref: ImageReference, pullID: UInt64, endpoints: [RegistryEndpoint], client: RegistryClient, leased: LeaseSet
    ) async throws -> ImageRecord {
        let shown = ref.description

        // 1. The manifest (or index) the reference names: mirrors first, then the registry itself.
        let (top, source) = try await Self.withFallback(endpoints, what: "manifest of \(shown)", logger: logger) { ep in
            try await client.manifest(ep, repository: ref.path, reference: ref.manifestReference)
        }
        let order = [source] + endpoints.filter { $0.baseURL != source.baseURL }
        if source.isMirror { logger.info("pulling \(shown) from \(source)") }
        let topDigest = Digest.sha256(of: top.data)
        if let wanted = ref.digest, wanted != topDigest {
            try wanted.requireSHA256("pull \(shown)")
            throw ImageError(.digestMismatch, "manifest of \(shown) from \(source) hashes to \(topDigest)")
        }
        var manifestData = top.data
        var manifestDigest = topDigest
        let topType = try Self.manifestKind(top.data, contentType: top.mediaType, what: "manifest of \(shown)")
        if MediaType.isIndex(topType) {
            let index: ManifestIndex
            do { index = try JSONDecoder().decode(ManifestIndex.self, from: top.data) } catch {
                throw ImageError(.registry, "index of \(shown) is not a valid image index: \(error)")
            }
            let chosen = try Self.choosePlatform(index, what: shown)
            try chosen.digest.requireSHA256("platform manifest of \(shown)")
            let (sub, _) = try await Self.withFallback(order, what: "manifest \(chosen.digest) of \(shown)", logger: logger) { ep in
                let fetched = try await client.manifest(ep, repository: ref.path, reference: chosen.digest.description)
                let d = Digest.sha256(of: fetched.data)
                guard d == chosen.digest, Int64(fetched.data.count) == chosen.size else {
                    throw ImageError(.digestMismatch, "manifest \(chosen.digest) of \(shown) from \(ep): got \(d), \(fetched.data.count) bytes (index says \(chosen.size))")
                }
                return fetched
            }
            manifestData = sub.data
            manifestDigest = chosen.digest
            let subType = try Self.manifestKind(sub.data, contentType: sub.mediaType, what: "manifest \(chosen.digest) of \(shown)")
            guard MediaType.isManifest(subType) else {
                throw ImageError(.unsupported, "index of \(shown) points at \(subType), not an image manifest")
            }
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: manifestData) } catch {
            throw ImageError(.registry, "manifest \(manifestDigest) of \(shown) is not a valid image manifest: \(error)")
        }
        guard manifest.schemaVersion == 2 else {
            throw ImageError(.unsupported, "manifest of \(shown) has schemaVersion \(manifest.schemaVersion)")
        }
        if let t = manifest.config.mediaType, !MediaType.isConfig(t) {
            throw ImageError(.unsupported, "\(shown) is not a container image: config media type \(t)")
        }
        try manifest.config.digest.requireSHA256("config of \(shown)")
        for layer in manifest.layers {
            try layer.digest.requireSHA256("layer of \(shown)")
            if let t = layer.mediaType, !MediaType.isLayer(t) {
                throw ImageError(.unsupported, "\(shown): layer \(layer.digest) has media type \(t), not a tar layer")
            }
        }
        lease([topDigest, manifestDigest, manifest.config.digest] + manifest.layers.map(\.digest), into: leased)

        // 2. The config: diff ids name the layers' snapshots.
        try await ensureBlob(manifest.config, repository: ref.path, endpoints: order, client: client, reference: shown)
        let configData = try FS.readFile(blobPath(manifest.config.digest))
        let configFile: ImageConfigFile
        do { configFile = try JSONDecoder().decode(ImageConfigFile.self, from: configData) } catch {
            throw ImageError(.registry, "config \(manifest.config.digest) of \(shown) is not a valid image config: \(error)")
        }
        guard configFile.rootfs.diff_ids.count == manifest.layers.count else {
            throw ImageError(.registry, "\(shown): config lists \(configFile.rootfs.diff_ids.count) diff ids for \(manifest.layers.count) layers")
        }
        for d in configFile.rootfs.diff_ids { try d.requireSHA256("diff id of \(shown)") }
        lease(configFile.rootfs.diff_ids, into: leased)
        let platform = "\(configFile.os ?? "linux")/\(configFile.architecture ?? Platform.current.architecture)"
        if platform != "\(Platform.current.os)/\(Platform.current.architecture)" {
            logger.warning("\(shown) is built for \(platform), this machine runs \(Platform.current.os)/\(Platform.current.architecture)")
        }

        // 3. Layers: download and unpack those whose snapshot is missing, a few at a time.
        let pairs = Array(zip(manifest.layers, configFile.rootfs.diff_ids))
        pulls.fetchingLayers(pullID, manifest.layers.map { ($0.digest.description, UInt64(max(0, $0.size))) })
        let limit = config.downloadConcurrency
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func startNext() {
                guard next < pairs.count else { return }
                let (layer, diffID) = pairs[next]
                next += 1
                group.addTask {
                    try await self.ensureLayer(
                        layer, diffID: diffID, pullID: pullID, repository: ref.path, endpoints: order, client: client,
                        reference: shown)
                }
            }
            for _ in 0..<min(limit, pairs.count) { startNext() }
            while try await group.next() != nil { startNext() }
        }

        // 4. Keep the manifest (and index) bytes, then publish the record: the last step.
        try storeBlob(manifestData, digest: manifestDigest)
        if topDigest != manifestDigest { try storeBlob(top.data, digest: topDigest) }
        let record = ImageRecord(
            id: manifest.config.digest.description,
            repoTags: ref.tagged.map { [$0] } ?? [],
            repoDigests: ["\(ref.name)@\(topDigest)"],
            size: UInt64(max(0, manifest.config.size + manifest.layers.reduce(0) { $0 + $1.size })),
            manifestDigest: manifestDigest.description,
            layers: pairs.map { .init(digest: $0.0.digest.description, diffID: $0.1.description, size: $0.0.size, mediaType: $0.0.mediaType ?? "") },
            config: configFile.config ?? ImageConfig(),
            platform: platform,
            created: configFile.created,
            pulledAt: Self.nowNanos())
        let published = try publish(record)
        logger.info("pulled image", metadata: ["reference": "\(shown)", "id": "\(record.id)", "from": "\(source)"])
        return published
    }

    /// Merges `record` with an existing one of the same id, moves its tag off any other image, and
    /// writes the changed records atomically.
    private func publish(_ record: ImageRecord) throws(ImageError) -> ImageRecord {
        var merged = record
        if let old = images[record.id] {
            merged.repoTags = old.repoTags + record.repoTags.filter { !old.repoTags.contains($0) }
            merged.repoDigests = old.repoDigests + record.repoDigests.filter { !old.repoDigests.contains($0) }
        }
        for tag in record.repoTags {
            for var other in images.values where other.id != record.id && other.repoTags.contains(tag) {
                other.repoTags.removeAll { $0 == tag }
                if other.repoTags.isEmpty && other.repoDigests.isEmpty {
                    try deleteRecord(other)
                } else {
                    try writeRecord(other)
                }
                logger.info("tag moved", metadata: ["tag": "\(tag)", "from": "\(other.id)", "to": "\(record.id)"])
            }
        }
        try writeRecord(merged)
        usageDirty = true
        return merged
    }

    private func writeRecord(_ record: ImageRecord) throws(ImageError) {
        let digest = try Digest(parsing: record.id)
        let data: Data
        do { data = try Self.encoder.encode(record) } catch { throw .wrap(error, "encode image record \(record.id)") }
        try FS.writeAtomically("\(imagesDir)/\(digest.encoded).json", data)
        images[record.id] = record
    }

    private func deleteRecord(_ record: ImageRecord) throws(ImageError) {
        let digest = try Digest(parsing: record.id)
        let path = "\(imagesDir)/\(digest.encoded).json"
        guard unlink(path) == 0 || errno == ENOENT else { throw .posix("unlink", path) }
        FS.fsyncDirectory(imagesDir)
        images[record.id] = nil
    }

    // MARK: Remove and garbage collection

    /// Removes `query` (anything `resolve` accepts). A tag of an image that has other tags is only
    /// untagged; otherwise the image is deleted and content no other image or rootfs uses is removed.
    /// Unknown images are not an error (CRI RemoveImage is idempotent).
    public func remove(_ query: String) throws(ImageError) {
        guard var record = resolve(query) else { return }
        if let ref = try? ImageReference(parsing: query), ref.digest == nil, let tag = ref.tagged,
            record.repoTags.contains(tag), record.repoTags.count > 1
        {
            record.repoTags.removeAll { $0 == tag }
            try writeRecord(record)
            logger.info("untagged image", metadata: ["tag": "\(tag)", "id": "\(record.id)"])
            return
        }
        try deleteRecord(record)
        logger.info("removed image", metadata: ["id": "\(record.id)", "tags": "\(record.repoTags)"])
        try collectGarbage()
    }

    /// Deletes blobs and snapshots no image record, rootfs or pull in flight refers to. Runs on the
    /// actor so no pull or rootfs can start using an item while it is being removed.
    func collectGarbage() throws(ImageError) {
        var keepBlobs = Set<String>()
        var keepSnapshots = Set<String>()
        for image in images.values {
            keepBlobs.insert(image.id)
            keepBlobs.insert(image.manifestDigest)
            for d in image.repoDigests { if let at = d.lastIndex(of: "@") { keepBlobs.insert(String(d[d.index(after: at)...])) } }
            for layer in image.layers {
                keepBlobs.insert(layer.digest)
                keepSnapshots.insert(layer.diffID)
            }
        }
        for mount in rootfs.values { keepSnapshots.formUnion(mount.diffIDs) }
        for digest in leases.keys {
            keepBlobs.insert(digest.description)
            keepSnapshots.insert(digest.description)
        }
        for name in try FS.listDirectory(blobsDir) where !keepBlobs.contains("sha256:" + name) {
            try FS.removeTree(blobsDir + "/" + name)
        }
        for name in try FS.listDirectory(snapshotsDir) where !name.hasPrefix(".") && !keepSnapshots.contains("sha256:" + name) {
            try FS.removeTree(snapshotsDir + "/" + name)
        }
        usageDirty = true
    }

    // MARK: Blobs and snapshots

    func blobPath(_ d: Digest) -> String { "\(blobsDir)/\(d.encoded)" }
    func snapshotPath(_ diffID: Digest) -> String { "\(snapshotsDir)/\(diffID.encoded)" }

    private func hasBlob(_ d: Descriptor) -> Bool {
        var st = stat()
        return stat(blobPath(d.digest), &st) == 0 && Int64(st.st_size) == d.size
    }

    private func storeBlob(_ data: Data, digest: Digest) throws(ImageError) {
        if FS.exists(blobPath(digest)) { return }
        try FS.writeAtomically(blobPath(digest), data, mode: 0o644)
    }

    /// Makes blob `d` present, sharing one download among concurrent callers.
    private func ensureBlob(
        _ d: Descriptor, repository: String, endpoints: [RegistryEndpoint], client: RegistryClient, reference: String
    ) async throws {
        if hasBlob(d) { return }
        if let running = blobTasks[d.digest] {
            // Someone else is downloading it; if their download fails, try once ourselves.
            if (try? await running.value) != nil, hasBlob(d) { return }
            if hasBlob(d) { return }
        }
        if let running = blobTasks[d.digest] {
            try await running.value
            return
        }
        let ingest = ingestDir
        let final = blobPath(d.digest)
        let logger = self.logger
        let tracker = pulls
        let task = Task {
            try await Self.download(
                d, repository: repository, endpoints: endpoints, client: client, ingestDir: ingest, finalPath: final,
                reference: reference, logger: logger, tracker: tracker)
        }
        blobTasks[d.digest] = task
        defer { if blobTasks[d.digest] == task { blobTasks[d.digest] = nil } }
        try await task.value
        usageDirty = true
    }

    @concurrent
    private static func download(
        _ d: Descriptor, repository: String, endpoints: [RegistryEndpoint], client: RegistryClient, ingestDir: String,
        finalPath: String, reference: String, logger: Logger, tracker: PullTracker
    ) async throws {
        let temp = "\(ingestDir)/\(d.digest.encoded)-\(UInt64.random(in: 0...UInt64.max))"
        defer { unlink(temp) }
        _ = try await withFallback(endpoints, what: "blob \(d.digest) of \(reference)", logger: logger) { ep in
            unlink(temp)
            tracker.downloaded(d.digest.description, 0)
            try await client.downloadBlob(ep, repository: repository, descriptor: d, to: temp) { bytes in
                tracker.downloaded(d.digest.description, bytes)
            }
        }
        guard rename(temp, finalPath) == 0 else { throw ImageError.posix("rename", "\(temp) -> \(finalPath)") }
        FS.fsyncDirectory((finalPath as NSString).deletingLastPathComponent)
    }

    /// Makes the snapshot of one layer present: downloads its blob if needed and unpacks it once.
    private func ensureLayer(
        _ layer: Descriptor, diffID: Digest, pullID: UInt64, repository: String, endpoints: [RegistryEndpoint],
        client: RegistryClient, reference: String
    ) async throws {
        let digest = layer.digest.description
        if FS.isDirectory(snapshotPath(diffID)) {
            pulls.layer(pullID, digest, .exists)
            return
        }
        pulls.layer(pullID, digest, .downloading)
        try await ensureBlob(layer, repository: repository, endpoints: endpoints, client: client, reference: reference)
        pulls.layer(pullID, digest, .extracting)
        if let running = snapshotTasks[diffID] {
            try await running.value
        } else if !FS.isDirectory(snapshotPath(diffID)) {
            let blob = blobPath(layer.digest)
            let final = snapshotPath(diffID)
            let temp = "\(snapshotsDir)/.tmp-\(diffID.encoded)-\(UInt64.random(in: 0...UInt64.max))"
            let logger = self.logger
            let task = Task {
                try await runBlocking { () throws(ImageError) in
                    try Self.unpack(blob: blob, diffID: diffID, temp: temp, final: final, logger: logger)
                }
            }
            snapshotTasks[diffID] = task
            defer { if snapshotTasks[diffID] == task { snapshotTasks[diffID] = nil } }
            try await task.value
            usageDirty = true
        }
        pulls.layer(pullID, digest, .done)
    }

    /// Unpacks into `temp`, flushes the filesystem, renames to `final`: a snapshot directory exists
    /// only complete.
    private static func unpack(blob: String, diffID: Digest, temp: String, final: String, logger: Logger) throws(ImageError) {
        guard mkdir(temp, 0o755) == 0 else { throw .posix("mkdir", temp) }
        do throws(ImageError) {
            let stats = try LayerUnpacker(blobPath: blob, destination: temp, expectedDiffID: diffID).unpack()
            let fd = open(temp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 {
                _ = syncfs(fd)
                close(fd)
            }
            if rename(temp, final) != 0 {
                let e = errno
                // Someone else published the same layer first: theirs is as good as ours.
                guard (e == EEXIST || e == ENOTEMPTY) && FS.isDirectory(final) else { throw ImageError.posix("rename", "\(temp) -> \(final)", errno: e) }
                try FS.removeTree(temp)
            }
            FS.fsyncDirectory((final as NSString).deletingLastPathComponent)
            logger.debug("unpacked layer", metadata: [
                "diffID": "\(diffID)", "entries": "\(stats.entries)", "whiteouts": "\(stats.whiteouts)",
                "opaque": "\(stats.opaqueDirectories)", "skippedDevices": "\(stats.skippedDevices)",
            ])
        } catch {
            try? FS.removeTree(temp)
            throw error
        }
    }

    // MARK: Container root filesystems

    /// Mounts an overlayfs of `image`'s layers at `dir` (created if missing) with a fresh upper/work
    /// pair for `containerID`. Calling it again for the same container, image and dir returns the
    /// existing mount (mounting it again if it was unmounted behind our back).
    public func prepareRootfs(containerID: String, image: ImageRecord, at dir: String) throws(ImageError) -> RootfsMount {
        try Self.validateContainerID(containerID)
        guard dir.hasPrefix("/"), !dir.contains(",") , !dir.contains(":") else {
            throw ImageError(.io, "rootfs mountpoint \"\(dir)\" must be an absolute path without ',' or ':'")
        }
        if let existing = rootfs[containerID] {
            guard existing.imageID == image.id, existing.mountpoint == dir else {
                throw ImageError(.conflict, "container \(containerID) already has a rootfs of \(existing.imageID) at \(existing.mountpoint)")
            }
            if !FS.isMountRoot(existing.mountpoint) { try mountOverlay(existing) }
            return existing
        }
        let diffIDs = image.layers.map(\.diffID)
        var lowers: [String] = []
        for layer in image.layers.reversed() {
            let d = try Digest(parsing: layer.diffID)
            let path = snapshotPath(d)
            guard FS.isDirectory(path) else {
                throw ImageError(.notFound, "layer \(layer.diffID) of image \(image.id) is missing from the store; pull the image again")
            }
            lowers.append(path)
        }
        let base = "\(containersDir)/\(containerID)"
        if lowers.isEmpty {
            // An image without layers: overlayfs still needs one lower dir.
            try FS.mkdirs(base + "/empty", mode: 0o755)
            lowers = [base + "/empty"]
        }
        let mount = RootfsMount(
            containerID: containerID, imageID: image.id, mountpoint: dir, upperDir: base + "/upper", workDir: base + "/work",
            lowerDirs: lowers, diffIDs: diffIDs)
        do {
            try FS.mkdirs(base, mode: 0o700)
            guard mkdir(mount.upperDir, 0o755) == 0 || errno == EEXIST else { throw ImageError.posix("mkdir", mount.upperDir) }
            guard mkdir(mount.workDir, 0o700) == 0 || errno == EEXIST else { throw ImageError.posix("mkdir", mount.workDir) }
            // The record goes first, so a crash after mounting still lets releaseRootfs clean up.
            try FS.writeAtomically("\(containersDir)/\(containerID).json", try Self.encoder.encode(mount))
            rootfs[containerID] = mount
            try FS.mkdirs(dir, mode: 0o755)
            try mountOverlay(mount)
        } catch {
            rootfs[containerID] = nil
            unlink("\(containersDir)/\(containerID).json")
            try? FS.removeTree(base)
            throw ImageError.wrap(error, "prepare rootfs of \(containerID)")
        }
        usageDirty = true
        return mount
    }

    private func mountOverlay(_ m: RootfsMount) throws(ImageError) {
        let options = "lowerdir=\(m.lowerDirs.joined(separator: ":")),upperdir=\(m.upperDir),workdir=\(m.workDir)"
        // The kernel takes at most one page of mount options.
        guard options.utf8.count < 4000 else {
            throw ImageError(.io, "overlay options for \(m.containerID) are \(options.utf8.count) bytes (\(m.lowerDirs.count) layers); the kernel limit is one page")
        }
        guard Glibc.mount("overlay", m.mountpoint, "overlay", 0, options) == 0 else {
            throw .posix("mount overlay (\(m.lowerDirs.count) lower dirs)", m.mountpoint)
        }
    }

    /// Unmounts the container's rootfs and deletes its writable layer. Unknown ids are fine.
    public func releaseRootfs(containerID: String) throws(ImageError) {
        guard let m = rootfs[containerID] else { return }
        // Unmount without asking mountinfo first: EINVAL says it was not mounted. (mountinfo grows with
        // every container's overlay; reading it per removal made removing many containers quadratic.)
        if umount2(m.mountpoint, 0) != 0 {
            let e = errno
            if e == EBUSY {
                // Something still holds it (a process cwd, a bind mount): detach it from the tree
                // now; the kernel frees it when the last user goes.
                guard umount2(m.mountpoint, Int32(MNT_DETACH)) == 0 else { throw .posix("umount2(MNT_DETACH)", m.mountpoint) }
                logger.warning("rootfs was busy; detached", metadata: ["container": "\(containerID)", "mountpoint": "\(m.mountpoint)"])
            } else if e != EINVAL && e != ENOENT {
                throw .posix("umount", m.mountpoint, errno: e)
            }
        }
        try FS.removeTree("\(containersDir)/\(containerID)")
        let record = "\(containersDir)/\(containerID).json"
        guard unlink(record) == 0 || errno == ENOENT else { throw .posix("unlink", record) }
        FS.fsyncDirectory(containersDir)
        rootfs[containerID] = nil
        usageDirty = true
    }

    /// The rootfs of a container, if prepared.
    public func rootfsMount(containerID: String) -> RootfsMount? { rootfs[containerID] }

    /// All prepared root filesystems (e.g. to reconcile with containers after a restart).
    public func rootfsMounts() -> [RootfsMount] { rootfs.values.sorted { $0.containerID < $1.containerID } }

    /// Bytes and inodes in the container's writable layer (its upper dir), or nil if unknown.
    public func writableLayerUsage(containerID: String) async -> (bytes: UInt64, inodes: UInt64)? {
        guard let m = rootfs[containerID] else { return nil }
        let upper = m.upperDir
        guard let total = try? await runBlocking({ FS.usage(upper) }) else { return nil }
        // The upper dir itself is bookkeeping, not container data.
        var st = stat()
        let own: UInt64 = lstat(upper, &st) == 0 ? UInt64(max(0, st.st_blocks)) * 512 : 0
        return (total.bytes - min(total.bytes, own), total.inodes > 0 ? total.inodes - 1 : 0)
    }

    static func validateContainerID(_ id: String) throws(ImageError) {
        let ok = !id.isEmpty && id.utf8.count <= 128 && !id.hasPrefix(".")
            && id.utf8.allSatisfy { ReferenceChars.isIDChar($0) }
        guard ok else {
            throw ImageError(.invalidReference, "container id \"\(id)\" must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.'")
        }
    }

    // MARK: Helpers

    private func lease(_ digests: [Digest], into set: LeaseSet) {
        for d in digests where set.digests.insert(d).inserted { leases[d, default: 0] += 1 }
    }

    private func release(_ set: LeaseSet) {
        for d in set.digests {
            let n = (leases[d] ?? 1) - 1
            leases[d] = n > 0 ? n : nil
        }
        set.digests.removeAll()
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    static func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Tries `op` on each endpoint in order; logs each fallback. Throws the registry's own error if
    /// only it was tried, else one error listing every endpoint's failure.
    static func withFallback<T: Sendable>(
        _ endpoints: [RegistryEndpoint], what: String, logger: Logger,
        _ op: (RegistryEndpoint) async throws -> T
    ) async throws -> (T, RegistryEndpoint) {
        var failures: [ImageError] = []
        for (i, ep) in endpoints.enumerated() {
            do {
                return (try await op(ep), ep)
            } catch {
                let e = RegistryClient.networkError(error, "\(what) from \(ep)")
                if e.kind == .cancelled || Task.isCancelled { throw e }
                failures.append(e)
                if i + 1 < endpoints.count {
                    logger.warning("\(what): \(ep) failed, falling back to \(endpoints[i + 1])", metadata: ["error": "\(e.message)"])
                }
            }
        }
        if failures.count == 1 { throw failures[0] }
        // The most telling kind: the registry's own answer, not a mirror's.
        let kind = failures.last?.kind ?? .registry
        throw ImageError(kind, "\(what): every endpoint failed: " + failures.map(\.message).joined(separator: "; "))
    }

    /// The media type of a manifest body: Content-Type, else its mediaType field, else its shape.
    static func manifestKind(_ data: Data, contentType: String?, what: String) throws(ImageError) -> String {
        struct Probe: Decodable {
            var mediaType: String?
            var schemaVersion: Int?
            var manifests: [IgnoredValue]?
            var layers: [IgnoredValue]?
            var fsLayers: [IgnoredValue]?
        }
        guard let probe = try? JSONDecoder().decode(Probe.self, from: data) else {
            throw ImageError(.registry, "\(what) is not JSON")
        }
        let candidates = [probe.mediaType, contentType].compactMap { $0 }
        for t in candidates where MediaType.isIndex(t) || MediaType.isManifest(t) { return t }
        if candidates.contains(where: { $0 == MediaType.dockerSchema1 || $0 == MediaType.dockerSchema1Signed }) || probe.schemaVersion == 1 || probe.fsLayers != nil {
            throw ImageError(.unsupported, "\(what) is a Docker schema 1 manifest, which Skiff does not pull; push the image again with schema 2 or OCI")
        }
        if probe.manifests != nil { return MediaType.ociIndex }
        if probe.layers != nil { return MediaType.ociManifest }
        throw ImageError(.unsupported, "\(what) has media type \(candidates.first ?? "(none)"), not an image manifest or index")
    }

    /// The linux/amd64 (this machine's platform) entry of an index.
    static func choosePlatform(_ index: ManifestIndex, what: String) throws(ImageError) -> Descriptor {
        let want = Platform.current
        if let d = index.manifests.first(where: { $0.platform?.os == want.os && $0.platform?.architecture == want.architecture }) {
            return d
        }
        let offered = index.manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }
        throw ImageError(.notFound, "\(what) has no \(want.os)/\(want.architecture) image (offers: \(offered.isEmpty ? "none" : offered.joined(separator: ", ")))")
    }
}

/// The digests one pull has leased.
final class LeaseSet: @unchecked Sendable {
    // Only touched on the ImageStore actor.
    var digests = Set<Digest>()
}

enum ReferenceChars {
    static func isIDChar(_ c: UInt8) -> Bool {
        ImageReference.isWordChar(c) || c == 0x2e || c == 0x2d
    }
}
