import CArchive
import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Unpacks one layer blob (tar, gzip or zstd — libarchive detects which) into an empty directory as
/// an overlayfs lower layer, and checks the uncompressed stream against the config's diff id.
///
/// Layer content is untrusted:
/// - a path with a ".." component fails the layer; leading "/" and "./" are dropped;
/// - extraction never writes through a symlink: ARCHIVE_EXTRACT_SECURE_SYMLINKS with UNLINK replaces a
///   symlink met in the middle of an entry's path by a real directory inside the layer (a layer is
///   unpacked alone, as overlay snapshotters do); hard link targets must be inside the layer,
///   reached without symlinks;
/// - `trusted.*` xattrs from the tar are dropped (they would steer overlayfs);
/// - character and block devices are created only when running as root, else skipped;
/// - whiteouts become overlayfs whiteouts: `.wh.NAME` → a 0/0 character device NAME,
///   `.wh..wh..opq` → `trusted.overlay.opaque=y` on its directory; other `.wh..wh.` entries are
///   aufs bookkeeping and are skipped.
///
/// The work is one pass: a "raw" libarchive reader decompresses the blob, every decompressed byte
/// is hashed and handed to a second reader that parses the tar.
struct LayerUnpacker {
    struct Stats: Sendable {
        var entries = 0
        var whiteouts = 0
        var opaqueDirectories = 0
        var skippedDevices = 0
        var uncompressedBytes: UInt64 = 0
    }

    let blobPath: String
    let destination: String
    let expectedDiffID: Digest

    func unpack() throws(ImageError) -> Stats {
        try expectedDiffID.requireSHA256("layer diff id")
        guard let dest = FS.realPath(destination) else { throw .posix("realpath", destination) }
        let destFD = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard destFD >= 0 else { throw .posix("open", dest) }
        defer { close(destFD) }

        let source = try DecompressedSource(blobPath: blobPath)
        defer { source.close() }
        guard let tar = archive_read_new() else { throw ImageError(.io, "archive_read_new failed") }
        defer { archive_read_free(tar) }
        archive_read_support_format_tar(tar)
        let context = Unmanaged.passUnretained(source).toOpaque()
        guard archive_read_open(tar, context, nil, decompressedRead, nil) == ARCHIVE_OK else {
            throw source.failure ?? archiveError(tar, "open tar stream of \(blobPath)", kind: .invalidContent)
        }

        guard let disk = archive_write_disk_new() else { throw ImageError(.io, "archive_write_disk_new failed") }
        defer { archive_write_free(disk) }
        let isRoot = geteuid() == 0
        var flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_UNLINK
        flags |= ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT
        if isRoot { flags |= ARCHIVE_EXTRACT_OWNER }
        archive_write_disk_set_options(disk, flags)
        // No archive_write_disk_set_standard_lookup: uids/gids stay numeric, never mapped by this
        // host's /etc/passwd.

        var stats = Stats()
        let destBytes = Array(dest.utf8)
        while true {
            var entry: OpaquePointer?
            let r = archive_read_next_header(tar, &entry)
            if r == ARCHIVE_EOF { break }
            guard r >= ARCHIVE_WARN, let entry else {
                throw source.failure ?? archiveError(tar, "read tar header in \(blobPath)", kind: .invalidContent)
            }
            stats.entries += 1
            guard let rawPath = Self.pathBytes(archive_entry_pathname(entry)) else {
                throw ImageError(.invalidContent, "layer \(blobPath): entry \(stats.entries) has no path")
            }
            guard let parts = Self.components(rawPath) else {
                throw ImageError(.invalidContent, "layer \(blobPath): entry \"\(Self.show(rawPath))\" escapes the layer root")
            }
            guard let name = parts.last else { continue }  // the layer root itself ("./")

            // Whiteouts.
            if name.starts(with: Self.whiteoutPrefix) {
                let parent = Array(parts.dropLast())
                if name == Self.opaqueMarker {
                    let fd = try Self.openDirectory(destFD, parent, create: true, shown: rawPath)
                    defer { close(fd) }
                    guard fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) == 0 else {
                        throw .posix("fsetxattr trusted.overlay.opaque", dest + "/" + Self.show(rawPath))
                    }
                    stats.opaqueDirectories += 1
                } else if name.starts(with: Self.whiteoutPrefix + Self.whiteoutPrefix) {
                    // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to do on overlayfs.
                } else {
                    let target = Array(name.dropFirst(Self.whiteoutPrefix.count))
                    guard !target.isEmpty, target != [0x2e], target != [0x2e, 0x2e] else {
                        throw ImageError(.invalidContent, "layer \(blobPath): bad whiteout \"\(Self.show(rawPath))\"")
                    }
                    let fd = try Self.openDirectory(destFD, parent, create: true, shown: rawPath)
                    defer { close(fd) }
                    let cname = Self.cString(target)
                    let shownTarget = dest + "/" + Self.show(Self.join([], parent + [target]).dropFirst())
                    // A lower layer's entry is hidden by the whiteout; one of this layer's own is replaced.
                    try FS.removeEntry(dirFD: fd, name: target, shown: shownTarget)
                    guard mknodat(fd, cname, S_IFCHR | 0, 0) == 0 else {
                        throw .posix("mknod whiteout (needs CAP_MKNOD)", shownTarget)
                    }
                    stats.whiteouts += 1
                }
                continue
            }

            let type = archive_entry_filetype(entry)
            if (type == S_IFCHR || type == S_IFBLK) && !isRoot {
                stats.skippedDevices += 1
                continue
            }

            // Hard links must point at something already unpacked in this layer, reached without symlinks.
            if let rawLink = Self.pathBytes(archive_entry_hardlink(entry)) {
                guard let linkParts = Self.components(rawLink), let linkName = linkParts.last else {
                    throw ImageError(.invalidContent, "layer \(blobPath): hard link \"\(Self.show(rawPath))\" → \"\(Self.show(rawLink))\" escapes the layer root")
                }
                let fd = try Self.openDirectory(destFD, Array(linkParts.dropLast()), create: false, shown: rawLink)
                var st = stat()
                let found = fstatat(fd, Self.cString(linkName), &st, AT_SYMLINK_NOFOLLOW) == 0
                close(fd)
                guard found, (st.st_mode & S_IFMT) != S_IFDIR else {
                    throw ImageError(.invalidContent, "layer \(blobPath): hard link \"\(Self.show(rawPath))\" → \"\(Self.show(rawLink))\": target missing or a directory")
                }
                Self.cString(Self.join(destBytes, linkParts)).withUnsafeBufferPointer {
                    archive_entry_set_hardlink(entry, $0.baseAddress)
                }
            }

            Self.dropTrustedXattrs(entry)
            Self.cString(Self.join(destBytes, parts)).withUnsafeBufferPointer {
                archive_entry_set_pathname(entry, $0.baseAddress)
            }
            let w = archive_write_header(disk, entry)
            if w < ARCHIVE_WARN {
                throw archiveError(disk, "unpack \"\(Self.show(rawPath))\" from \(blobPath)", kind: .invalidContent)
            }
            if archive_entry_size(entry) > 0 {
                try copyData(tar, disk, source: source, path: rawPath)
            }
            if archive_write_finish_entry(disk) < ARCHIVE_WARN {
                throw archiveError(disk, "finish \"\(Self.show(rawPath))\" from \(blobPath)")
            }
        }
        // Directory modes and times are applied at close (libarchive defers them).
        guard archive_write_close(disk) >= ARCHIVE_WARN else { throw archiveError(disk, "close layer \(dest)") }
        try source.drain()
        stats.uncompressedBytes = source.count
        let diffID = Digest(sha256Hex: source.hasher.finalize().hexString)
        guard diffID == expectedDiffID else {
            throw ImageError(.digestMismatch, "layer \(blobPath): uncompressed content is \(diffID), config says \(expectedDiffID)")
        }
        return stats
    }

    private func copyData(_ tar: OpaquePointer, _ disk: OpaquePointer, source: DecompressedSource, path: [UInt8]) throws(ImageError) {
        while true {
            var buffer: UnsafeRawPointer?
            var size = 0
            var offset: la_int64_t = 0
            let r = archive_read_data_block(tar, &buffer, &size, &offset)
            if r == ARCHIVE_EOF { return }
            guard r >= ARCHIVE_WARN else {
                throw source.failure ?? archiveError(tar, "read \"\(Self.show(path))\" from \(blobPath)", kind: .invalidContent)
            }
            if archive_write_data_block(disk, buffer, size, offset) < ARCHIVE_WARN {
                throw archiveError(disk, "write \"\(Self.show(path))\" from \(blobPath)")
            }
        }
    }

    private func archiveError(_ a: OpaquePointer, _ step: String, kind: ImageError.Kind = .io) -> ImageError {
        let text = archive_error_string(a).map { String(cString: $0) } ?? "unknown libarchive error"
        let code = archive_errno(a)
        return ImageError(kind, "\(step): \(text)\(code != 0 ? " (errno \(code))" : "")")
    }

    // MARK: Paths as bytes (tar names need not be UTF-8)

    static let whiteoutPrefix = Array(".wh.".utf8)
    static let opaqueMarker = Array(".wh..wh..opq".utf8)

    static func pathBytes(_ p: UnsafePointer<CChar>?) -> [UInt8]? {
        guard let p else { return nil }
        let n = strlen(p)
        guard n > 0 else { return nil }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) { Array(UnsafeBufferPointer(start: $0, count: n)) }
    }

    /// Path components with "", "." dropped; nil if any is "..".
    static func components(_ path: [UInt8]) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        for part in path.split(separator: 0x2f, omittingEmptySubsequences: true) {
            if part.elementsEqual([0x2e]) { continue }
            if part.elementsEqual([0x2e, 0x2e]) { return nil }
            out.append(Array(part))
        }
        return out
    }

    static func join(_ root: [UInt8], _ parts: [[UInt8]]) -> [UInt8] {
        var out = root
        for p in parts {
            out.append(0x2f)
            out += p
        }
        return out
    }

    static func cString(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }
    static func show(_ bytes: some Sequence<UInt8>) -> String { String(decoding: Array(bytes), as: UTF8.self) }

    /// Opens dir `parts` below `root` without following symlinks, creating missing ones if asked.
    static func openDirectory(_ root: Int32, _ parts: [[UInt8]], create: Bool, shown: [UInt8]) throws(ImageError) -> Int32 {
        var fd = dup(root)
        guard fd >= 0 else { throw .posix("dup", "layer root") }
        for part in parts {
            let name = cString(part)
            var next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(fd, name, 0o755) != 0 && errno != EEXIST {
                    let e = errno
                    close(fd)
                    throw .posix("mkdirat", show(shown), errno: e)
                }
                next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let e = errno
            close(fd)
            guard next >= 0 else {
                if e == ELOOP || e == ENOTDIR {
                    throw ImageError(.invalidContent, "layer path \"\(show(shown))\" goes through a symlink or non-directory")
                }
                throw .posix("openat", show(shown), errno: e)
            }
            fd = next
        }
        return fd
    }

    static func dropTrustedXattrs(_ entry: OpaquePointer) {
        guard archive_entry_xattr_count(entry) > 0 else { return }
        var kept: [(name: [CChar], value: [UInt8])] = []
        archive_entry_xattr_reset(entry)
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        var dropped = false
        while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
            guard let name else { continue }
            let n = String(cString: name)
            if n.hasPrefix("trusted.") {
                dropped = true
                continue
            }
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            kept.append((Array(UnsafeBufferPointer(start: name, count: strlen(name) + 1)), bytes))
        }
        guard dropped else { return }
        archive_entry_xattr_clear(entry)
        for x in kept {
            x.value.withUnsafeBytes { v in archive_entry_xattr_add_entry(entry, x.name, v.baseAddress, v.count) }
        }
    }
}

/// The decompressing outer reader. Its bytes are hashed (the diff id) as the tar reader pulls them.
final class DecompressedSource {
    let archive: OpaquePointer
    let buffer: UnsafeMutableRawPointer
    let bufferSize = 256 * 1024
    var hasher = SHA256()
    var count: UInt64 = 0
    var failure: ImageError?
    let blobPath: String

    init(blobPath: String) throws(ImageError) {
        self.blobPath = blobPath
        guard let a = archive_read_new() else { throw ImageError(.io, "archive_read_new failed") }
        // Only in-process decompressors: never let layer bytes choose an external program.
        archive_read_support_filter_gzip(a)
        archive_read_support_filter_zstd(a)
        archive_read_support_filter_xz(a)
        archive_read_support_filter_bzip2(a)
        archive_read_support_format_raw(a)
        archive = a
        buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        var entry: OpaquePointer?
        guard archive_read_open_filename(a, blobPath, 256 * 1024) == ARCHIVE_OK,
            archive_read_next_header(a, &entry) == ARCHIVE_OK
        else {
            let text = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
            archive_read_free(a)
            buffer.deallocate()
            throw ImageError(.invalidContent, "open layer \(blobPath): \(text)")
        }
    }

    func close() {
        archive_read_free(archive)
        buffer.deallocate()
    }

    /// Next decompressed chunk; 0 at the end, -1 on error (kept in `failure`).
    func read(into out: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        let n = archive_read_data(archive, buffer, bufferSize)
        if n < 0 {
            let text = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            failure = ImageError(.invalidContent, "decompress layer \(blobPath): \(text)")
            return -1
        }
        if n > 0 {
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: n))
            count += UInt64(n)
        }
        out.pointee = UnsafeRawPointer(buffer)
        return n
    }

    /// Hashes what the tar reader left unread (end-of-archive padding) so the diff id covers it all.
    func drain() throws(ImageError) {
        var p: UnsafeRawPointer?
        while true {
            let n = read(into: &p)
            if n == 0 { return }
            if n < 0 { throw failure! }
        }
    }
}

private func decompressedRead(
    _ a: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> la_ssize_t {
    guard let context, let out else { return -1 }
    let source = Unmanaged<DecompressedSource>.fromOpaque(context).takeUnretainedValue()
    _ = a
    // On error the reason is kept in `source.failure`; callers prefer it over libarchive's text.
    return la_ssize_t(source.read(into: out))
}
