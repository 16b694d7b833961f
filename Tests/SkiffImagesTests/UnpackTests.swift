import Foundation
import Testing

@testable import SkiffImages
import CArchive

#if canImport(Glibc)
import Glibc
#endif

/// Layer unpacking on crafted tarballs (Python's tarfile writes exactly the entries we ask for).
@Suite("Layer unpacking")
struct UnpackTests {
    /// Writes a tar from a Python list of TarInfo-building statements, compresses it, returns (blob, diffID).
    static func makeLayer(_ dir: String, _ entries: String, compress: String = "gzip") throws -> (blob: String, diffID: Digest) {
        let tar = dir + "/layer.tar"
        let script = """
            import io, tarfile
            t = tarfile.open(\(pythonString(tar)), "w", format=tarfile.PAX_FORMAT)
            def add(name, data=None, type=tarfile.REGTYPE, linkname="", mode=0o644, uid=0, gid=0, pax=None, devmajor=0, devminor=0):
                i = tarfile.TarInfo(name)
                i.type = type; i.linkname = linkname; i.mode = mode; i.uid = uid; i.gid = gid; i.mtime = 1700000000
                i.devmajor = devmajor; i.devminor = devminor
                if pax: i.pax_headers = pax
                if data is not None: i.size = len(data)
                t.addfile(i, io.BytesIO(data) if data is not None else None)
            D, S, L, C = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE
            \(entries.split(separator: "\n").joined(separator: "\n"))
            t.close()
            """
        try run(["python3", "-c", script])
        let diffID = Digest.sha256(of: try Data(contentsOf: URL(fileURLWithPath: tar)))
        switch compress {
        case "gzip": try run(["gzip", "-n", tar]); return (tar + ".gz", diffID)
        case "zstd": try run(["zstd", "-q", "--rm", tar]); return (tar + ".zst", diffID)
        default: return (tar, diffID)
        }
    }

    static func pythonString(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }

    static func unpack(_ blob: String, _ diffID: Digest, into dir: String) throws(ImageError) -> LayerUnpacker.Stats {
        try FS.mkdirs(dir, mode: 0o755)
        return try LayerUnpacker(blobPath: blob, destination: dir, expectedDiffID: diffID).unpack()
    }

    static func lstatMode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode : nil
    }

    static func xattr(_ path: String, _ name: String) -> String? {
        var buf = [UInt8](repeating: 0, count: 64)
        let n = lgetxattr(path, name, &buf, buf.count)
        return n >= 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
    }

    @Test("files, dirs, symlinks, hard links, owners and modes; gzip, zstd and plain tar", arguments: ["gzip", "zstd", "none"])
    func regular(compress: String) async throws {
        try await withTempDir("unpack") { dir in
            let (blob, diffID) = try Self.makeLayer(dir, """
                add("etc", type=D, mode=0o755)
                add("etc/passwd", b"root:x:0:0::/root:/bin/sh\\n")
                add("./bin/", type=D, mode=0o711)
                add("/bin/tool", b"#!/bin/sh\\n", mode=0o4755, uid=1000, gid=100)
                add("bin/sh", type=S, linkname="/bin/tool")
                add("bin/tool-link", type=L, linkname="bin/tool")
                add("home/user/.profile", b"x", uid=1000, gid=1000, mode=0o600)
                """, compress: compress)
            let root = dir + "/rootfs"
            let stats = try Self.unpack(blob, diffID, into: root)
            #expect(stats.entries == 7)
            #expect(fileText(root + "/etc/passwd") == "root:x:0:0::/root:/bin/sh\n")
            var st = stat()
            #expect(lstat(root + "/bin/tool", &st) == 0)
            #expect(st.st_mode & 0o7777 == 0o4755)
            #expect(st.st_uid == 1000 && st.st_gid == 100)
            #expect(st.st_nlink == 2)
            #expect(lstat(root + "/bin", &st) == 0 && st.st_mode & 0o777 == 0o711)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/bin/sh") == "/bin/tool")
            #expect(lstat(root + "/home/user/.profile", &st) == 0 && st.st_uid == 1000 && st.st_mode & 0o777 == 0o600)
        }
    }

    @Test("whiteouts become overlayfs whiteouts; opaque markers set trusted.overlay.opaque")
    func whiteouts() async throws {
        try await withTempDir("unpack") { dir in
            let (blob, diffID) = try Self.makeLayer(dir, """
                add("etc/.wh.motd", b"")
                add("opt/app", type=D, mode=0o755)
                add("opt/app/.wh..wh..opq", b"")
                add("opt/app/new", b"n")
                add("deep/er/.wh.gone", b"")
                add(".wh..wh.plnk", type=D)
                """)
            let root = dir + "/rootfs"
            let stats = try Self.unpack(blob, diffID, into: root)
            #expect(stats.whiteouts == 2)
            #expect(stats.opaqueDirectories == 1)
            var st = stat()
            #expect(lstat(root + "/etc/motd", &st) == 0)
            #expect(st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0)
            #expect(lstat(root + "/deep/er/gone", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR)
            #expect(!FS.exists(root + "/etc/.wh.motd"))
            #expect(!FS.exists(root + "/opt/app/.wh..wh..opq"))
            #expect(!FS.exists(root + "/.wh..wh.plnk"))
            #expect(Self.xattr(root + "/opt/app", "trusted.overlay.opaque") == "y")
            #expect(fileText(root + "/opt/app/new") == "n")
        }
    }

    /// (name, entries, fails): a hostile layer either fails with invalidContent or, for a symlink in the
    /// middle of a path, is unpacked with the symlink replaced by a directory inside the layer.
    @Test("hostile layers write nothing outside the layer", arguments: [
        ("dotdot", #"add("../escaped-skiff", b"x")"#, true),
        ("dotdot-nested", #"add("a/../../escaped-skiff", b"x")"#, true),
        ("symlink-dir", "add(\"link\", type=S, linkname=OUTSIDE)\nadd(\"link/escaped-skiff\", b\"x\")", false),
        ("symlink-parent-dotdot", "add(\"link\", type=S, linkname=\"..\")\nadd(\"link/escaped-skiff\", b\"x\")", false),
        ("hardlink-out", #"add("h", type=L, linkname="../escaped-skiff-target")"#, true),
        ("hardlink-via-symlink", "add(\"link\", type=S, linkname=OUTSIDE)\nadd(\"h\", type=L, linkname=\"link/escaped-skiff-target\")", true),
        ("whiteout-via-symlink", "add(\"link\", type=S, linkname=OUTSIDE)\nadd(\"link/.wh.escaped-skiff-target\", b\"\")", true),
        ("opaque-via-symlink", "add(\"link\", type=S, linkname=OUTSIDE)\nadd(\"link/.wh..wh..opq\", b\"\")", true),
    ])
    func hostile(name: String, entries: String, fails: Bool) async throws {
        try await withTempDir("hostile") { dir in
            let outside = dir + "/outside"
            try FS.mkdirs(outside, mode: 0o755)
            try Data("keep".utf8).write(to: URL(fileURLWithPath: outside + "/escaped-skiff-target"))
            try Data("keep".utf8).write(to: URL(fileURLWithPath: dir + "/escaped-skiff-target"))
            let (blob, diffID) = try Self.makeLayer(dir, "OUTSIDE = \(Self.pythonString(outside))\n" + entries)
            let root = dir + "/layers/rootfs"
            do {
                _ = try Self.unpack(blob, diffID, into: root)
                #expect(!fails, "\(name): unpack succeeded")
                if !fails {
                    var st = stat()
                    #expect(lstat(root + "/link", &st) == 0 && st.st_mode & S_IFMT == S_IFDIR)
                    #expect(fileText(root + "/link/escaped-skiff") == "x")
                }
            } catch {
                #expect(fails, "\(name): \(error)")
                #expect((error as? ImageError)?.kind == .invalidContent, "\(name): \(error)")
            }
            #expect(!FS.exists(dir + "/escaped-skiff"))
            #expect(!FS.exists(dir + "/layers/escaped-skiff"))
            #expect(!FS.exists(outside + "/escaped-skiff"))
            #expect(fileText(outside + "/escaped-skiff-target") == "keep")
            #expect(fileText(dir + "/escaped-skiff-target") == "keep")
            #expect(UnpackTests.xattr(outside, "trusted.overlay.opaque") == nil)
        }
    }

    @Test("trusted.* xattrs from the tar are dropped, user.* kept")
    func xattrs() async throws {
        try await withTempDir("unpack") { dir in
            let (blob, diffID) = try Self.makeLayer(dir, """
                add("d", type=D, mode=0o755, pax={"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.note": "hi"})
                """)
            let root = dir + "/rootfs"
            _ = try Self.unpack(blob, diffID, into: root)
            #expect(Self.xattr(root + "/d", "trusted.overlay.opaque") == nil)
            #expect(Self.xattr(root + "/d", "user.note") == "hi")
        }
    }

    @Test("device nodes are created as root", .enabled(if: geteuid() == 0))
    func devices() async throws {
        try await withTempDir("unpack") { dir in
            let (blob, diffID) = try Self.makeLayer(dir, #"add("dev/null", type=C, mode=0o666, devmajor=1, devminor=3)"#)
            let root = dir + "/rootfs"
            let stats = try Self.unpack(blob, diffID, into: root)
            #expect(stats.skippedDevices == 0)
            var st = stat()
            #expect(lstat(root + "/dev/null", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == (1 << 8 | 3))
        }
    }

    @Test("a diff id that does not match fails; garbage is not a layer")
    func mismatch() async throws {
        try await withTempDir("unpack") { dir in
            let (blob, _) = try Self.makeLayer(dir, #"add("f", b"x")"#)
            do {
                _ = try Self.unpack(blob, Digest.sha256(of: Data("other".utf8)), into: dir + "/a")
                Issue.record("unpack succeeded")
            } catch {
                #expect((error as? ImageError)?.kind == .digestMismatch)
            }
            try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: dir + "/garbage"))
            do {
                _ = try Self.unpack(dir + "/garbage", Digest.sha256(of: Data("x".utf8)), into: dir + "/b")
                Issue.record("unpack of garbage succeeded")
            } catch {
                #expect([.invalidContent, .digestMismatch].contains((error as? ImageError)?.kind))
            }
        }
    }
}
