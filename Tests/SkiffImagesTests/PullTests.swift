import Foundation
import Logging
import Testing

@testable import SkiffImages

#if canImport(Glibc)
import Glibc
#endif

/// Pulls from a real docker-registry on 127.0.0.1 holding the images of scripts/build-test-images.
@Suite("Pulls from a local docker-registry", .registryFixture)
struct PullTests {
    static func store(_ root: String, config: RegistryConfig = RegistryConfig(), log: CapturedLog = CapturedLog()) throws -> ImageStore {
        try ImageStore(root: root, config: config, logger: log.logger)
    }

    @Test("pull by tag: record, config, list and resolve by tag, id, prefix and digest")
    func pullByTag() async throws {
        let f = try RegistryFixture.get()
        try await withTempDir("store") { root in
            let store = try Self.store(root)
            let image = try await store.pull("\(f.address)/busybox")
            let manifest = try f.manifestDigest("latest")
            #expect(image.repoTags == ["\(f.address)/busybox:latest"])
            #expect(image.repoDigests == ["\(f.address)/busybox@\(manifest)"])
            #expect(image.manifestDigest == manifest)
            #expect(image.id.hasPrefix("sha256:") && image.id.count == 71)
            #expect(image.layers.count == 1)
            #expect(image.platform == "linux/amd64")
            #expect(image.size > 1_000_000)
            #expect(image.user == "")
            #expect(image.config.cmd == ["sh"])
            // The tracker saw it through: complete, its one layer downloaded and unpacked by this pull.
            let tracked = store.pulls.list(reference: "\(f.address)/busybox:latest")
            #expect(tracked.count == 1 && tracked.first?.phase == .complete && tracked.first?.imageID == image.id)
            #expect(tracked.first?.layers.map(\.state) == [.done])
            #expect(tracked.first?.layers.allSatisfy { $0.downloaded == $0.size && $0.size > 0 } == true)

            #expect(await store.list() == [image])
            #expect(await store.resolve("\(f.address)/busybox") == image)
            #expect(await store.resolve("\(f.address)/busybox:latest") == image)
            #expect(await store.resolve(image.id) == image)
            #expect(await store.resolve(String(image.id.dropFirst(7))) == image)
            #expect(await store.resolve(String(image.id.dropFirst(7).prefix(12))) == image)
            #expect(await store.resolve("sha256:" + image.id.dropFirst(7).prefix(5)) == image)
            #expect(await store.resolve("\(f.address)/busybox@\(manifest)") == image)
            #expect(await store.resolve(manifest) == image)
            #expect(await store.resolve("\(f.address)/busybox:other") == nil)
            #expect(await store.resolve("busybox") == nil)
            #expect(await store.resolve("") == nil)
            let configJSON = try await store.configJSON(of: image)
            #expect(Digest.sha256(of: configJSON).description == image.id)
            let snapshot = root + "/snapshots/" + image.layers[0].diffID.dropFirst(7)
            #expect(FS.exists(snapshot + "/bin/busybox"))
            #expect(fileText(snapshot + "/etc/passwd")?.contains("nobody:x:65534") == true)
            #expect(try FS.listDirectory(root + "/ingest").isEmpty)
        }
    }

    @Test("pull by digest: no tag, the digest is recorded")
    func pullByDigest() async throws {
        let f = try RegistryFixture.get()
        try await withTempDir("store") { root in
            let store = try Self.store(root)
            let digest = try f.manifestDigest("user")
            let image = try await store.pull("\(f.address)/busybox@\(digest)")
            #expect(image.repoTags.isEmpty)
            #expect(image.repoDigests == ["\(f.address)/busybox@\(digest)"])
            #expect(image.user == "1000")
            // A wrong digest is a not-found from the registry, and nothing is stored.
            let missing = "sha256:" + String(repeating: "0", count: 64)
            await #expect { try await store.pull("\(f.address)/busybox@\(missing)") } throws: { ($0 as? ImageError)?.kind == .notFound }
            #expect(await store.list().count == 1)
        }
    }

    @Test("image configs: user, entrypoint+cmd, env+workdir, stopsignal+labels+ports")
    func configs() async throws {
        let f = try RegistryFixture.get()
        try await withTempDir("store") { root in
            let store = try Self.store(root)
            let user = try await store.pull("\(f.address)/busybox:user")
            #expect(store.config(of: user).user == "1000")
            let ep = try await store.pull("\(f.address)/busybox:entrypoint")
            #expect(ep.config.entrypoint == ["/bin/echo", "skiff-entrypoint"])
            #expect(ep.config.cmd == ["hello"])
            let env = try await store.pull("\(f.address)/busybox:env")
            #expect(env.config.env.contains("SKIFF_GREETING=hello"))
            #expect(env.config.env.contains("SKIFF_EMPTY="))
            #expect(env.config.workingDir == "/tmp/skiff-work")
            let stop = try await store.pull("\(f.address)/busybox:stopsignal")
            #expect(stop.config.stopSignal == "SIGUSR1")
            #expect(stop.config.labels == ["org.skiff.test": "stopsignal"])
            #expect(stop.config.exposedPorts == ["8080/tcp"])
            // Four images, one layer: stored once.
            #expect(Set([user, ep, env, stop].map(\.layers[0].diffID)).count == 1)
            #expect(try FS.listDirectory(root + "/snapshots").count == 1)
            #expect(await store.list().count == 4)
        }
    }

    @Test("OCI index picks linux/amd64; Docker schema 2 and zstd layers pull")
    func formats() async throws {
        let f = try RegistryFixture.get()
        try await withTempDir("store") { root in
            let store = try Self.store(root)
            let latest = try await store.pull("\(f.address)/busybox:latest")
            let multi = try await store.pull("\(f.address)/skiff/multi")
            #expect(multi.id == latest.id)
            #expect(multi.manifestDigest == latest.manifestDigest)
            #expect(multi.repoDigests.count == 2)
            #expect(multi.repoDigests.contains { $0.hasPrefix("\(f.address)/skiff/multi@") && !$0.hasSuffix(latest.manifestDigest) })
            #expect(Set(multi.repoTags) == ["\(f.address)/busybox:latest", "\(f.address)/skiff/multi:latest"])

            let docker = try await store.pull("\(f.address)/skiff/docker")
            #expect(docker.layers[0].mediaType == "application/vnd.docker.image.rootfs.diff.tar.gzip")
            #expect(docker.layers[0].diffID == latest.layers[0].diffID)

            let zstd = try await store.pull("\(f.address)/skiff/zstd")
            #expect(zstd.layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar+zstd")
            #expect(zstd.layers[0].diffID == latest.layers[0].diffID)
            #expect(zstd.config.workingDir == "/tmp/skiff-work")
        }
    }

    @Test("a second pull downloads nothing; concurrent pulls share one download")
    func reuse() async throws {
        let f = try RegistryFixture.get()
        try f.push("whiteout", as: "skiff/count-once:latest")
        try await withTempDir("store") { root in
            let store = try Self.store(root)
            async let a = store.pull("\(f.address)/skiff/count-once")
            async let b = store.pull("\(f.address)/skiff/count-once")
            async let c = store.pull("\(f.address)/skiff/count-once")
            let (ia, ib, ic) = try await (a, b, c)
            #expect(ia.id == ib.id && ib.id == ic.id)
            // config + 2 layers, each fetched once.
            #expect(try f.blobGets("skiff/count-once") == 3)

            let again = try await store.pull("\(f.address)/skiff/count-once")
            #expect(again.id == ia.id)
            #expect(try f.blobGets("skiff/count-once") == 3)
            // Both layers were already unpacked: the newest pull reports them as existing.
            #expect(store.pulls.list(reference: "\(f.address)/skiff/count-once:latest").first?.layers.map(\.state) == [.exists, .exists])
        }
    }

    @Test("remove: untag vs delete, idempotent, unreferenced content collected; restart keeps images")
    func removeAndRestart() async throws {
        let f = try RegistryFixture.get()
        try f.push("latest", as: "skiff/two-tags:a")
        try f.push("latest", as: "skiff/two-tags:b")
        try await withTempDir("store") { root in
            let store = try Self.store(root)
            let a = try await store.pull("\(f.address)/skiff/two-tags:a")
            let b = try await store.pull("\(f.address)/skiff/two-tags:b")
            #expect(a.id == b.id)
            #expect(b.repoTags == ["\(f.address)/skiff/two-tags:a", "\(f.address)/skiff/two-tags:b"])
            let env = try await store.pull("\(f.address)/busybox:env")

            // Restart: a new store on the same root sees the same images.
            let reopened = try Self.store(root)
            let before = await store.list()
            #expect(await reopened.list() == before)

            try await reopened.remove("\(f.address)/skiff/two-tags:a")
            #expect(await reopened.resolve(a.id)?.repoTags == ["\(f.address)/skiff/two-tags:b"])
            #expect(await reopened.resolve("\(f.address)/skiff/two-tags:a") == nil)
            try await reopened.remove("\(f.address)/skiff/two-tags:b")
            #expect(await reopened.resolve(a.id) == nil)
            // The layer is still used by busybox:env, its blobs are not.
            #expect(FS.exists(root + "/snapshots/" + env.layers[0].diffID.dropFirst(7)))
            #expect(!FS.exists(root + "/blobs/sha256/" + a.id.dropFirst(7)))
            #expect(FS.exists(root + "/blobs/sha256/" + env.id.dropFirst(7)))
            try await reopened.remove(a.id)
            try await reopened.remove("\(f.address)/skiff/two-tags:b")
            try await reopened.remove("sha256:" + String(repeating: "1", count: 64))

            try await reopened.remove(String(env.id.dropFirst(7).prefix(10)))
            #expect(await reopened.list().isEmpty)
            #expect(try FS.listDirectory(root + "/snapshots").isEmpty)
            #expect(try FS.listDirectory(root + "/blobs/sha256").isEmpty)
            #expect(try FS.listDirectory(root + "/images").isEmpty)
            #expect(try await Self.store(root).list().isEmpty)
            let usage = await reopened.fsUsage()
            #expect(usage.mountpoint == FS.realPath(root))
            #expect(usage.inodes > 0)
        }
    }

    @Test("auth: htpasswd registry refuses anonymous pulls and wrong passwords, accepts request and config credentials")
    func basicAuth() async throws {
        let f = try RegistryFixture.get()
        try await withTempDir("auth") { dir in
            let started = try run([repoRoot + "/scripts/test-registry", "start", dir + "/registry", "--htpasswd", "skiff:s3cret"])
                .split(separator: " ")
            defer { _ = try? run([repoRoot + "/scripts/test-registry", "stop", dir + "/registry"]) }
            let address = String(started[0])
            try run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "skiff:s3cret",
                     "oci:\(f.layout):latest", "docker://\(address)/private/busybox:latest"])
            let store = try Self.store(dir + "/store")
            await #expect { try await store.pull("\(address)/private/busybox") } throws: { ($0 as? ImageError)?.kind == .unauthorized }
            await #expect {
                try await store.pull("\(address)/private/busybox", auth: RegistryAuth(username: "skiff", password: "wrong"))
            } throws: { ($0 as? ImageError)?.kind == .unauthorized }
            #expect(await store.list().isEmpty)
            let viaRequest = try await store.pull("\(address)/private/busybox", auth: RegistryAuth(username: "skiff", password: "s3cret"))
            #expect(viaRequest.repoTags == ["\(address)/private/busybox:latest"])

            let encoded = Data("skiff:s3cret".utf8).base64EncodedString()
            let configured = try Self.store(dir + "/store2", config: RegistryConfig(registries: [address: .init(auth: RegistryAuth(auth: encoded))]))
            let viaConfig = try await configured.pull("\(address)/private/busybox")
            #expect(viaConfig.id == viaRequest.id)
        }
    }

    @Test("mirrors: a mirror serves when the registry is unreachable; a dead mirror falls back, and says so")
    func mirrors() async throws {
        let f = try RegistryFixture.get()
        try await withTempDir("mirror") { root in
            let unreachable = "127.0.0.1:\(try closedPort())"
            let log = CapturedLog()
            let store = try Self.store(root, config: RegistryConfig(registries: [unreachable: .init(mirrors: [f.address])]), log: log)
            let image = try await store.pull("\(unreachable)/busybox:entrypoint")
            #expect(image.repoTags == ["\(unreachable)/busybox:entrypoint"])
            #expect(image.config.entrypoint == ["/bin/echo", "skiff-entrypoint"])
            #expect(log.contains("pulling \(unreachable)/busybox:entrypoint from mirror http://\(f.address)"))

            let log2 = CapturedLog()
            let deadMirror = "127.0.0.1:\(try closedPort())"
            let store2 = try Self.store(root + "/2", config: RegistryConfig(registries: [f.address: .init(mirrors: ["http://\(deadMirror)"])]), log: log2)
            let direct = try await store2.pull("\(f.address)/busybox:entrypoint")
            #expect(direct.id == image.id)
            #expect(log2.contains("mirror http://\(deadMirror) failed, falling back to http://\(f.address)"))

            // Both dead: one error naming both.
            let store3 = try Self.store(root + "/3", config: RegistryConfig(registries: [unreachable: .init(mirrors: [deadMirror])]))
            await #expect { try await store3.pull("\(unreachable)/busybox") } throws: { error in
                guard let e = error as? ImageError else { return false }
                return e.kind == .network && e.message.contains(deadMirror) && e.message.contains(unreachable)
            }
        }
    }

    @Test("rootfs: whiteouts applied, containers isolated, release leaves no mount", .enabled(if: geteuid() == 0))
    func rootfs() async throws {
        let f = try RegistryFixture.get()
        try await withTempDir("rootfs") { dir in
            let store = try Self.store(dir + "/store")
            let image = try await store.pull("\(f.address)/skiff/whiteout")
            #expect(image.layers.count == 2)
            let one = try await store.prepareRootfs(containerID: "skiff-test-one", image: image, at: dir + "/one/rootfs")
            let two = try await store.prepareRootfs(containerID: "skiff-test-two", image: image, at: dir + "/two/rootfs")
            #expect(FS.mountPoints().contains(one.mountpoint) && FS.mountPoints().contains(two.mountpoint))
            #expect(FS.isMountRoot(one.mountpoint) && !FS.isMountRoot(dir + "/one"))
            #expect(try await store.prepareRootfs(containerID: "skiff-test-one", image: image, at: dir + "/one/rootfs") == one)
            // Unmounted behind the store's back: preparing it again mounts it again.
            #expect(umount2(one.mountpoint, 0) == 0)
            #expect(!FS.isMountRoot(one.mountpoint) && !FS.mountPoints().contains(one.mountpoint))
            #expect(try await store.prepareRootfs(containerID: "skiff-test-one", image: image, at: dir + "/one/rootfs") == one)
            #expect(FS.isMountRoot(one.mountpoint) && FS.mountPoints().contains(one.mountpoint))
            await #expect { try await store.prepareRootfs(containerID: "skiff-test-one", image: image, at: dir + "/elsewhere") } throws: {
                ($0 as? ImageError)?.kind == .conflict
            }

            // Whiteouts: layer 2 removed a file and made a directory opaque.
            #expect(!FS.exists(one.mountpoint + "/etc/skiff-remove-me"))
            #expect(fileText(one.mountpoint + "/etc/skiff-layer2") == "added by layer 2\n")
            #expect(try FS.listDirectory(one.mountpoint + "/opt/skiff-opaque") == ["c"])
            #expect(FS.exists(one.mountpoint + "/etc/passwd"))
            let output = try run(["chroot", one.mountpoint, "/bin/sh", "-c", "echo hi from $(cat /etc/skiff-layer2)"])
            #expect(output == "hi from added by layer 2\n")

            // Writes stay in each container's upper dir.
            try Data("one".utf8).write(to: URL(fileURLWithPath: one.mountpoint + "/tmp/skiff-mine"))
            try FileManager.default.removeItem(atPath: one.mountpoint + "/etc/passwd")
            #expect(!FS.exists(two.mountpoint + "/tmp/skiff-mine"))
            #expect(FS.exists(two.mountpoint + "/etc/passwd"))
            #expect(fileText(one.upperDir + "/tmp/skiff-mine") == "one")
            #expect(!FS.exists(dir + "/store/snapshots/" + image.layers[0].diffID.dropFirst(7) + "/tmp/skiff-mine"))
            let usage = try #require(await store.writableLayerUsage(containerID: "skiff-test-one"))
            #expect(usage.inodes >= 3)  // tmp/, tmp/skiff-mine, etc/, etc/passwd whiteout

            // A rootfs keeps its layers even if the image is removed.
            try await store.remove(image.id)
            #expect(FS.exists(two.mountpoint + "/etc/skiff-layer2"))
            #expect(FS.exists(dir + "/store/snapshots/" + image.layers[1].diffID.dropFirst(7)))

            // Restart: the rootfs records survive.
            let reopened = try Self.store(dir + "/store")
            #expect(await reopened.rootfsMounts().map(\.containerID) == ["skiff-test-one", "skiff-test-two"])
            try await reopened.releaseRootfs(containerID: "skiff-test-one")
            try await reopened.releaseRootfs(containerID: "skiff-test-two")
            try await reopened.releaseRootfs(containerID: "skiff-test-two")
            try await reopened.releaseRootfs(containerID: "skiff-never-existed")
            let mounts = FS.mountPoints()
            #expect(!mounts.contains(one.mountpoint) && !mounts.contains(two.mountpoint))
            #expect(!FS.exists(one.upperDir) && !FS.exists(two.upperDir))
            #expect(await reopened.rootfsMounts().isEmpty)
            // The old store instance still holds stale rootfs entries: only the reopened one is used from here.
            try await reopened.remove(image.id)
            let collected = try Self.store(dir + "/store")
            try await collected.collectGarbage()
            #expect(try FS.listDirectory(dir + "/store/snapshots").isEmpty)
            await #expect { try await collected.prepareRootfs(containerID: "../x", image: image, at: dir + "/x") } throws: {
                ($0 as? ImageError)?.kind == .invalidReference
            }
            await #expect { try await collected.prepareRootfs(containerID: "skiff-x", image: image, at: dir + "/x") } throws: {
                ($0 as? ImageError)?.kind == .notFound
            }
        }
    }
}
