import CRI
import Foundation
import GRPCCore
import SkiffClient
import Testing

/// skiffd's foundation over its real socket: the CRI methods of the first issue, error codes, robustness
/// against bad clients, shutdown and the single-instance rule.
@Suite(.serialized)
struct DaemonTests {
    @Test func versionAndStatusOverTheSocket() async throws {
        try await TestDaemon.with { daemon in
        try await daemon.client { client in
            let version = try await client.call(CRIMethods.version, VersionRequest())
            #expect(version.runtimeName == "skiff")
            #expect(version.runtimeApiVersion == "v1")
            #expect(version.version == "0.1.0")

            var request = StatusRequest()
            request.verbose = true
            let status = try await client.call(CRIMethods.status, request)
            let conditions = Dictionary(uniqueKeysWithValues: (status.status?.conditions ?? []).map { ($0.type, $0) })
            #expect(conditions["RuntimeReady"]?.status == true)
            #expect(conditions["NetworkReady"] != nil)
            #expect(status.info["config"]?.contains("\"socket\"") == true)

            let config = try await client.call(CRIMethods.runtimeConfig, RuntimeConfigRequest())
            #expect(config.linux?.cgroupDriver == .cgroupfs)

            let fs = try await client.call(CRIMethods.imageFsInfo, ImageFsInfoRequest())
            #expect(fs.imageFilesystems.count == 1)
            #expect(fs.imageFilesystems.first?.fsId?.mountpoint.hasPrefix(daemon.root) == true)
        }
        }
    }

    @Test func unimplementedMethodSaysSo() async throws {
        try await TestDaemon.with { daemon in
        await #expect {
            try await daemon.client { client in
                var request = CheckpointContainerRequest()
                request.containerId = "nope"
                return try await client.call(CRIMethods.checkpointContainer, request)
            }
        } throws: { error in
            (error as? RPCError)?.code == .unimplemented
        }
        }
    }

    @Test func socketIsPrivateAndRemovedOnSigterm() async throws {
        try await TestDaemon.with { daemon in
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.socket)
        #expect((attributes[.posixPermissions] as? Int) == 0o660)
        #expect(await daemon.terminate() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socket))
        }
    }

    @Test func secondDaemonOnSameSocketRefuses() async throws {
        try await TestDaemon.with { first in
        let outputPath = first.directory + "/second.log"
        let second = try Spawned(
            [binDirectory + "/skiffd", "--socket", first.socket, "--root", first.directory + "/root2", "--state", first.directory + "/state2"],
            output: outputPath)
        let status = await second.exit(upTo: .seconds(60))
        if status == nil { second.signal(SIGKILL); _ = await second.exit() }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        #expect(status != nil && status != 0, "second skiffd: \(status.map(String.init) ?? "still running after 60 s")")
        #expect(output.contains("already listening"))
        // The first one still serves.
        let version = try await first.client { try await $0.call(CRIMethods.version, VersionRequest()) }
        #expect(version.runtimeName == "skiff")
        }
    }

    @Test func staleSocketFileIsReplaced() async throws {
        let first = try await TestDaemon.start()
        let directory = first.directory
        await first.kill()  // leaves the socket file behind
        #expect(FileManager.default.fileExists(atPath: first.socket))
        try await TestDaemon.with(directory: directory) { second in
        let version = try await second.client { try await $0.call(CRIMethods.version, VersionRequest()) }
        #expect(version.runtimeName == "skiff")
        }
    }

    @Test func garbageAndHalfOpenConnectionsDoNotStopTheServer() async throws {
        try await TestDaemon.with { daemon in
        for payload in [Array("garbage\u{0}\u{1}".utf8), Array(repeating: 0xff, count: 4096), []] {
            let fd = try connectUnix(daemon.socket)
            _ = payload.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        let idle = try connectUnix(daemon.socket)  // half-open: connects and never speaks
        defer { close(idle) }
        let version = try await daemon.client { try await $0.call(CRIMethods.version, VersionRequest()) }
        #expect(version.runtimeName == "skiff")
        #expect(daemon.process.isRunning)
        }
    }
}

func connectUnix(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        let bytes = Array(path.utf8)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else { throw TestFailure("connect \(path): errno \(errno)") }
    return fd
}
