import Foundation
import Testing

@testable import SkiffImages

/// Cases docker-registry cannot play, served by Fixtures/stand_in_registry.py from the test layout:
/// corrupted blobs, Bearer token auth, a download that stalls.
@Suite("Pulls from a stand-in registry", .registryFixture)
struct StandInRegistryTests {
    /// The layer digest of a layout tag's manifest.
    static func layerDigest(_ f: RegistryFixture, tag: String, index: Int = 0) throws -> String {
        struct Manifest: Decodable {
            struct D: Decodable { var digest: String }
            var config: D
            var layers: [D]
        }
        let m = try f.manifestDigest(tag)
        let data = try Data(contentsOf: URL(fileURLWithPath: f.layout + "/blobs/sha256/" + m.dropFirst(7)))
        return try JSONDecoder().decode(Manifest.self, from: data).layers[index].digest
    }

    @Test("a blob whose bytes do not match its digest fails the pull and nothing is stored")
    func corruptBlob() async throws {
        let f = try RegistryFixture.get()
        let bad = try Self.layerDigest(f, tag: "whiteout", index: 1)
        try await withStandInRegistry(layout: f.layout, options: ["--corrupt", bad]) { address, _ in
            try await withTempDir("store") { root in
                let store = try ImageStore(root: root, config: RegistryConfig(), logger: CapturedLog().logger)
                await #expect { try await store.pull("\(address)/skiff/whiteout:whiteout") } throws: { error in
                    guard let e = error as? ImageError else { return false }
                    return e.kind == .digestMismatch && e.message.contains(bad)
                }
                #expect(await store.list().isEmpty)
                #expect(await store.resolve("\(address)/skiff/whiteout:whiteout") == nil)
                #expect(try FS.listDirectory(root + "/images").isEmpty)
                #expect(!FS.exists(root + "/blobs/sha256/" + bad.dropFirst(7)))
                #expect(try FS.listDirectory(root + "/ingest").isEmpty)
                #expect(try FS.listDirectory(root + "/snapshots").allSatisfy { !$0.hasPrefix(".") })
                // The image's other tags still pull (their blobs are fine).
                let ok = try await store.pull("\(address)/skiff/whiteout:latest")
                #expect(await store.list() == [ok])
            }
        }
    }

    @Test("Bearer token auth: token fetched with the credentials; refused without them")
    func bearer() async throws {
        let f = try RegistryFixture.get()
        try await withStandInRegistry(layout: f.layout, options: ["--bearer", "skiff:t0ken-pass"]) { address, requests in
            try await withTempDir("store") { root in
                let store = try ImageStore(root: root, config: RegistryConfig(), logger: CapturedLog().logger)
                await #expect { try await store.pull("\(address)/busybox:user") } throws: { ($0 as? ImageError)?.kind == .unauthorized }
                let image = try await store.pull("\(address)/busybox:user", auth: RegistryAuth(username: "skiff", password: "t0ken-pass"))
                #expect(image.user == "1000")
                let log = fileText(requests) ?? ""
                #expect(log.contains("GET /token?scope=repository%3Abusybox%3Apull&service=skiff-stand-in 200"))
                // A registry token from the request is used as-is: the stand-in rejects unknown tokens.
                await #expect {
                    try await store.pull("\(address)/busybox:env", auth: RegistryAuth(registryToken: "not-issued"))
                } throws: { ($0 as? ImageError)?.kind == .unauthorized }
            }
        }
    }

    @Test("while a layer downloads, the tracker shows its bytes; the failed pull stays listed with its error")
    func progressWhileDownloading() async throws {
        let f = try RegistryFixture.get()
        let layer = try Self.layerDigest(f, tag: "stopsignal")
        try await withStandInRegistry(layout: f.layout, options: ["--stall", layer]) { address, _ in
            try await withTempDir("store") { root in
                let store = try ImageStore(root: root, config: RegistryConfig(stallTimeoutSeconds: 3), logger: CapturedLog().logger)
                let reference = "\(address)/busybox:stopsignal"
                let pull = Task { try await store.pull(reference) }
                // The stand-in sends half the blob, then nothing: the tracker must show that half
                // (within the 64 KiB reporting step).
                var seen: PullStatus.Layer?
                for _ in 0..<1000 {
                    if let l = store.pulls.list(reference: reference).first?.layers.first, l.downloaded + 64 * 1024 >= l.size / 2 {
                        seen = l
                        break
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                let during = try #require(seen)
                #expect(during.digest == layer && during.state == .downloading)
                #expect(during.downloaded > 0 && during.downloaded <= during.size / 2)
                #expect(store.pulls.list(reference: reference).first?.phase == .fetchingLayers)
                await #expect(throws: ImageError.self) { try await pull.value }
                let ended = try #require(store.pulls.list(reference: reference).first)
                #expect(ended.phase == .failed && ended.finishedAt >= ended.startedAt)
                #expect(ended.error.contains(layer))
                let frozen = try #require(ended.layers.first?.downloaded)
                #expect(frozen >= during.downloaded && frozen <= during.size / 2)
            }
        }
    }

    @Test("a download that stops making progress fails after the stall timeout, leaving nothing behind")
    func stall() async throws {
        let f = try RegistryFixture.get()
        let layer = try Self.layerDigest(f, tag: "stopsignal")
        try await withStandInRegistry(layout: f.layout, options: ["--stall", layer]) { address, _ in
            try await withTempDir("store") { root in
                let store = try ImageStore(root: root, config: RegistryConfig(stallTimeoutSeconds: 1), logger: CapturedLog().logger)
                await #expect { try await store.pull("\(address)/busybox:stopsignal") } throws: { error in
                    guard let e = error as? ImageError else { return false }
                    return e.kind == .stalled && e.message.contains(layer)
                }
                #expect(await store.list().isEmpty)
                #expect(try FS.listDirectory(root + "/ingest").isEmpty)
                #expect(!FS.exists(root + "/blobs/sha256/" + layer.dropFirst(7)))
            }
        }
    }
}
