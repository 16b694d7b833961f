import Foundation
import Testing

@testable import SkiffImages

/// What a crash mid-pull leaves behind, and how a new store treats it.
@Suite("Store recovery")
struct StoreRecoveryTests {
    @Test("leftovers of a crash are removed and no half-written image appears")
    func crashLeftovers() async throws {
        try await withTempDir("recovery") { root in
            let first = try ImageStore(root: root, logger: CapturedLog().logger)
            #expect(await first.list().isEmpty)
            // A partial download, a half-unpacked layer, a temp record and a torn record.
            let hex = String(repeating: "ab", count: 32)
            try Data("partial".utf8).write(to: URL(fileURLWithPath: "\(root)/ingest/\(hex)-123"))
            try FS.mkdirs("\(root)/snapshots/.tmp-\(hex)-9/etc")
            try Data("{\"id\":".utf8).write(to: URL(fileURLWithPath: "\(root)/images/\(hex).json.tmp-1-2"))
            try Data("{\"id\": \"sha256:\(hex)\", \"repoTags\": [".utf8).write(to: URL(fileURLWithPath: "\(root)/images/\(hex).json"))

            let log = CapturedLog()
            let store = try ImageStore(root: root, logger: log.logger)
            #expect(await store.list().isEmpty)
            #expect(await store.resolve(hex) == nil)
            #expect(try FS.listDirectory(root + "/ingest").isEmpty)
            #expect(try FS.listDirectory(root + "/snapshots").isEmpty)
            #expect(try FS.listDirectory(root + "/images") == ["\(hex).json"])
            #expect(log.contains("ignoring unreadable record"))
            // Removing an unknown image is fine; releasing an unknown rootfs too.
            try await store.remove("docker.io/library/busybox:latest")
            try await store.releaseRootfs(containerID: "skiff-unknown")
            #expect(await store.writableLayerUsage(containerID: "skiff-unknown") == nil)
        }
    }

    @Test("bad pull references fail before any network traffic")
    func badReferences() async throws {
        try await withTempDir("recovery") { root in
            let store = try ImageStore(root: root, logger: CapturedLog().logger)
            await #expect { try await store.pull("Not A Reference") } throws: { ($0 as? ImageError)?.kind == .invalidReference }
            await #expect { try await store.pull(String(repeating: "a", count: 64)) } throws: { ($0 as? ImageError)?.kind == .invalidReference }
        }
    }
}
