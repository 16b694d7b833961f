/// A pulled image as the store keeps it (images/<id hex>.json) and CRI reports it.
public struct ImageRecord: Codable, Sendable, Hashable {
    public struct Layer: Codable, Sendable, Hashable {
        /// Digest of the (compressed) layer blob.
        public var digest: String
        /// Digest of the uncompressed tar (the config's rootfs.diff_ids entry); names the snapshot.
        public var diffID: String
        public var size: Int64
        public var mediaType: String
    }

    /// "sha256:<hex>" — the digest of the image config.
    public var id: String
    /// Normalised tags: "docker.io/library/busybox:latest".
    public var repoTags: [String]
    /// "docker.io/library/busybox@sha256:…" — the digest of what the reference resolved to (an index
    /// for multi-platform images, else the manifest).
    public var repoDigests: [String]
    /// Bytes of the config and compressed layers (what a pull transfers).
    public var size: UInt64
    /// Digest of the platform manifest.
    public var manifestDigest: String
    /// Bottom layer first.
    public var layers: [Layer]
    public var config: ImageConfig
    /// "os/architecture" from the config.
    public var platform: String
    public var created: String?
    /// When this image was last pulled, Unix nanoseconds.
    public var pulledAt: Int64

    /// The config's User ("" when unset), as CRI's Image.uid/username are derived from it.
    public var user: String { config.user ?? "" }

    /// The short id crictl shows (first 13 hex characters).
    public var shortID: String { String(id.dropFirst("sha256:".count).prefix(13)) }
}

/// A container's root filesystem: overlayfs of the image's layers with its own upper/work dirs.
public struct RootfsMount: Codable, Sendable, Hashable {
    public var containerID: String
    public var imageID: String
    public var mountpoint: String
    public var upperDir: String
    public var workDir: String
    /// Top layer first, as overlayfs wants them.
    public var lowerDirs: [String]
    /// Diff ids of the layers in use (kept from garbage collection while the rootfs exists).
    public var diffIDs: [String]
}

/// What ImageFsInfo reports: usage of the whole store (blobs, layers, container writable layers).
public struct FsUsage: Sendable, Hashable {
    public var bytes: UInt64
    public var inodes: UInt64
    /// The store's root directory (CRI FilesystemIdentifier.mountpoint, as containerd reports it).
    public var mountpoint: String
    /// When the numbers were measured, Unix nanoseconds.
    public var timestamp: Int64
}
