import CRI
import Foundation
import GRPCCore
import SkiffClient
import Testing

/// skiff.v1 ListPulls over skiffd's socket, and `skiffctl pull --progress` on top of it.
@Suite(.serialized, RegistryScope())
struct PullProgressTests {
    static func listPulls(_ client: CRIClient, _ image: String = "") async throws -> [SkiffV1.PullStatus] {
        var request = SkiffV1.ListPullsRequest()
        request.image = image
        return try await client.call(SkiffV1Methods.listPulls, request).pulls
    }

    @Test func listPullsReportsLayersOfEndedPulls() async throws {
        try await RuntimeHarness.run { h in
            try await h.client { c in
                #expect(try await Self.listPulls(c).isEmpty)
                // Two layers, both fetched.
                try await c.pull(h.registry.image("whiteout"))
                var pulls = try await Self.listPulls(c)
                #expect(pulls.count == 1)
                let first = try #require(pulls.first)
                #expect(first.reference == h.registry.image("whiteout"))
                #expect(first.phase == .pullComplete && first.imageId.hasPrefix("sha256:") && first.error.isEmpty)
                #expect(first.startedAt > 0 && first.finishedAt >= first.startedAt)
                #expect(first.layers.count == 2)
                #expect(first.layers.allSatisfy { $0.state == .layerDone && $0.downloaded == $0.size && $0.size > 0 })

                // latest is whiteout's bottom layer: already in the store.
                try await c.pull(h.registry.image("latest"))
                pulls = try await Self.listPulls(c, h.registry.image("latest"))
                #expect(pulls.count == 1)
                #expect(pulls.first?.layers.map(\.state) == [.layerExists])
                #expect(pulls.first?.layers.first?.digest == first.layers.first?.digest)
                // Newest first; the filter normalises like PullImage ("…/busybox" is "…/busybox:latest").
                #expect(try await Self.listPulls(c).map(\.reference) == [h.registry.image("latest"), h.registry.image("whiteout")])
                let untagged = String(h.registry.image("latest").dropLast(":latest".count))
                #expect(try await Self.listPulls(c, untagged).map(\.id) == pulls.map(\.id))
                #expect(try await Self.listPulls(c, h.registry.image("env")).isEmpty)

                // A failed pull is listed with its reason.
                await #expect(throws: RPCError.self) { try await c.pull(h.registry.image("skiff-missing")) }
                let failed = try #require(try await Self.listPulls(c, h.registry.image("skiff-missing")).first)
                #expect(failed.phase == .pullFailed && failed.error.contains("skiff-missing") && failed.layers.isEmpty)

                // A reference that cannot be parsed is the caller's mistake.
                await #expect { try await Self.listPulls(c, "BusyBox") } throws: { error in
                    (error as? RPCError)?.code == .invalidArgument
                }
            }
        }
    }

    @Test func skiffctlPullShowsLayersAndASummary() async throws {
        try await RuntimeHarness.run { h in
            let image = h.registry.image("whiteout")
            let first = try await Ctl.run(h.daemon, ["pull", "--progress", "plain", image])
            #expect(first.status == 0, "\(first.err)")
            let lines = first.out.split(separator: "\n").map(String.init)
            let done = lines.filter { $0.range(of: #"^[0-9a-f]{12}: done \("#, options: .regularExpression) != nil }
            #expect(done.count == 2, "\(first.out)")
            #expect(lines.contains { $0.hasPrefix("\(image): 2 layers, ") && $0.contains("fetched 2 ") }, "\(first.out)")
            #expect(lines.last?.hasPrefix("Image is up to date for sha256:") == true)

            let again = try await Ctl.run(h.daemon, ["pull", "--progress", "plain", h.registry.image("latest")])
            #expect(again.status == 0, "\(again.err)")
            #expect(again.out.contains(": already exists ("), "\(again.out)")
            #expect(again.out.contains("1 layer, ") && again.out.contains("fetched 0 (0 B)"), "\(again.out)")

            // The terminal form: every frame line is cleared and redrawn in place.
            let tty = try await Ctl.run(h.daemon, ["pull", "--progress", "tty", image])
            #expect(tty.status == 0, "\(tty.err)")
            #expect(tty.out.contains("\r\u{1B}[2K\(image): complete\n"), "\(tty.out)")
            #expect(tty.out.contains("  total  "))

            // Not a terminal and no flag: crictl's output only.
            let auto = try await Ctl.run(h.daemon, ["pull", image])
            #expect(auto.status == 0 && auto.out.hasPrefix("Image is up to date for sha256:") && auto.out.split(separator: "\n").count == 1)

            let failed = try await Ctl.run(h.daemon, ["pull", "--progress", "plain", h.registry.image("skiff-missing")])
            #expect(failed.status == 1)
            #expect(failed.out.contains("\(h.registry.image("skiff-missing")): failed after "), "\(failed.out)")
            #expect(failed.err.hasPrefix("skiffctl: NotFound: "), "\(failed.err)")
        }
    }
}

/// The drawing itself, without a daemon.
@Suite struct PullProgressViewTests {
    static func status(_ phase: SkiffV1.PullPhase, _ layers: [(String, Int64, Int64, SkiffV1.LayerState)]) -> SkiffV1.PullStatus {
        var s = SkiffV1.PullStatus()
        s.reference = "docker.io/library/busybox:latest"
        s.phase = phase
        s.startedAt = 1_000_000_000
        s.layers = layers.map { digest, size, downloaded, state in
            var l = SkiffV1.LayerProgress()
            l.digest = digest
            l.size = size
            l.downloaded = downloaded
            l.state = state
            return l
        }
        return s
    }

    @Test func byteUnits() {
        #expect(PullProgressView.bytes(0) == "0 B")
        #expect(PullProgressView.bytes(1023) == "1023 B")
        #expect(PullProgressView.bytes(1536) == "1.5 KiB")
        #expect(PullProgressView.bytes(3 * 1024 * 1024) == "3.0 MiB")
        #expect(PullProgressView.bytes(5 * 1024 * 1024 * 1024) == "5.0 GiB")
    }

    @Test func frameShowsABarBytesAndTheRate() {
        var view = PullProgressView()
        let a = "sha256:" + String(repeating: "a", count: 64)
        let b = "sha256:" + String(repeating: "b", count: 64)
        view.observe(Self.status(.pullFetchingLayers, [(a, 2 * 1_048_576, 0, .layerDownloading), (b, 512, 0, .layerWaiting)]), at: 0)
        let now = Self.status(.pullFetchingLayers, [(a, 2 * 1_048_576, 1_048_576, .layerDownloading), (b, 512, 0, .layerWaiting)])
        view.observe(now, at: 1)
        #expect(view.rate == 1_048_576)
        let lines = view.frame(now, width: 200)
        #expect(lines == [
            "docker.io/library/busybox:latest: fetching layers",
            "  aaaaaaaaaaaa  downloading  [==========          ]  1.0 MiB / 2.0 MiB",
            "  bbbbbbbbbbbb  waiting      0 B / 512 B",
            "  total  1.0 MiB / 2.0 MiB  1.0 MiB/s",
        ])
        // Narrow terminals: lines are cut, never wrapped (wrapping would break redrawing in place).
        #expect(view.frame(now, width: 30).allSatisfy { $0.count <= 30 })
    }

    @Test func redrawMovesUpOverThePreviousFrame() {
        #expect(PullProgressView.redraw(["x", "y"], over: 0) == "\r\u{1B}[2Kx\n\r\u{1B}[2Ky\n")
        #expect(PullProgressView.redraw(["x", "y", "z"], over: 2).hasPrefix("\u{1B}[2A\r\u{1B}[2Kx\n"))
        let shorter = PullProgressView.redraw(["x"], over: 3)
        #expect(shorter == "\u{1B}[3A\r\u{1B}[2Kx\n\r\u{1B}[2K\n\r\u{1B}[2K\n\u{1B}[2A")
    }

    @Test func plainPrintsEachStateChangeOnce() {
        var view = PullProgressView()
        let a = "sha256:" + String(repeating: "a", count: 64)
        #expect(view.plainLines(Self.status(.pullFetchingLayers, [(a, 2048, 0, .layerWaiting)])) == [])
        #expect(view.plainLines(Self.status(.pullFetchingLayers, [(a, 2048, 10, .layerDownloading)])) == ["aaaaaaaaaaaa: downloading (2.0 KiB)"])
        #expect(view.plainLines(Self.status(.pullFetchingLayers, [(a, 2048, 900, .layerDownloading)])) == [])
        #expect(view.plainLines(Self.status(.pullComplete, [(a, 2048, 2048, .layerDone)])) == ["aaaaaaaaaaaa: done (2.0 KiB)"])
    }

    @Test func summaryUsesTheDaemonsTimestamps() {
        var s = Self.status(.pullComplete, [("sha256:aa", 4 * 1_048_576, 4 * 1_048_576, .layerDone), ("sha256:bb", 1024, 1024, .layerExists)])
        s.finishedAt = s.startedAt + 2_000_000_000
        #expect(PullProgressView.summary(s) == "docker.io/library/busybox:latest: 2 layers, 4.0 MiB; fetched 1 (4.0 MiB) in 2.0s, 2.0 MiB/s")
        s.phase = .pullFailed
        #expect(PullProgressView.summary(s) == "docker.io/library/busybox:latest: failed after 2.0s")
    }
}
