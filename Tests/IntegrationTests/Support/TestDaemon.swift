import CRI
import Foundation
import SkiffClient

/// Directory holding the built executables: the test bundle sits beside them in .build/<triple>/debug.
let binDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["SKIFF_BIN"] { return dir }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // swift-corelibs-xctest runs <Package>PackageTests.xctest directly; Swift Testing may run a helper
    // inside it, so walk up until skiffd is found.
    for _ in 0..<4 {
        if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("skiffd").path) { return dir.path }
        dir = dir.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
}()

/// A skiffd started for one test on its own socket and state directories, stopped and removed after.
/// Every wait is async (polls with Task.sleep): see `offThePool` for why nothing here may block.
final class TestDaemon: @unchecked Sendable {
    let directory: String
    let socket: String
    let root: String
    let state: String
    private(set) var process: Spawned!
    let logPath: String

    /// Starts skiffd and returns once it serves.
    static func start(extraArguments: [String] = [], directory: String? = nil, configYAML: String? = nil) async throws -> TestDaemon {
        let daemon = try TestDaemon(directory: directory, configYAML: configYAML)
        try await daemon.launch(extraArguments: extraArguments)
        return daemon
    }

    /// Starts skiffd, runs `body`, then stops skiffd and removes its directory whatever `body` did.
    static func with<T: Sendable>(
        directory: String? = nil, configYAML: String? = nil, _ body: (TestDaemon) async throws -> T
    ) async throws -> T {
        let daemon = try await start(directory: directory, configYAML: configYAML)
        do {
            let result = try await body(daemon)
            await daemon.remove()
            return result
        } catch {
            await daemon.remove()
            throw error
        }
    }

    private var arguments: [String] = []

    private init(directory: String?, configYAML: String?) throws {
        self.directory = directory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("skiff-it-\(UUID().uuidString.prefix(8))").path
        socket = self.directory + "/skiff.sock"
        root = self.directory + "/root"
        state = self.directory + "/state"
        logPath = self.directory + "/skiffd.log"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        // Never the machine's own CNI networks: unless a test brings its own, an empty directory.
        var config = configYAML ?? ""
        if !config.contains("cni_conf_dir") {
            try FileManager.default.createDirectory(atPath: self.directory + "/cni-none", withIntermediateDirectories: true)
            config += (config.isEmpty || config.hasSuffix("\n") ? "" : "\n") + "cni_conf_dir: \(self.directory)/cni-none\n"
        }
        try config.write(toFile: self.directory + "/skiff.yaml", atomically: true, encoding: .utf8)
        arguments = ["--config", self.directory + "/skiff.yaml"]
    }

    private func launch(extraArguments: [String]) async throws {
        // A restarted daemon appends to the same log and may find a stale socket file: only what this
        // start writes counts.
        let logOffset = logs().utf8.count
        process = try Spawned(
            [binDirectory + "/skiffd", "--socket", socket, "--root", root, "--state", state, "--log-level", "debug"]
                + arguments + extraArguments,
            output: logPath)
        let deadline = Date().addingTimeInterval(60)
        while !String(logs().utf8.dropFirst(logOffset))!.contains("skiffd serving CRI") {
            if !process.isRunning { throw TestFailure("skiffd exited early:\n\(logs())") }
            if Date() > deadline { throw TestFailure("skiffd did not start serving in 60 s:\n\(logs())") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    var endpoint: String { "unix://" + socket }

    func logs() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func client<T: Sendable>(timeout: Duration = .seconds(30), _ body: (CRIClient) async throws -> T) async throws -> T {
        try await CRIClient.withClient(endpoint: endpoint, timeout: timeout, body)
    }

    /// SIGTERM and wait (skiffd bounds its graceful shutdown at 10 s); SIGKILL after 30 s so a stuck
    /// daemon fails its test instead of hanging the run. Returns the exit status.
    @discardableResult
    func terminate() async -> Int32 {
        process.signal(SIGTERM)
        if let status = await process.exit(upTo: .seconds(30)) { return status }
        process.signal(SIGKILL)
        return await process.exit() ?? -1
    }

    /// SIGKILL: the daemon dies without cleanup, as in a crash.
    func kill() async {
        process.signal(SIGKILL)
        _ = await process.exit()
    }

    func remove() async {
        await terminate()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
