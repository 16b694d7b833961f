import Foundation
import Logging
import Synchronization
import Testing

@testable import SkiffImages

#if canImport(Glibc)
import Glibc
#endif

/// The repository root, found from this file's path (Tests/SkiffImagesTests/Support.swift).
let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

struct CommandFailed: Error, CustomStringConvertible {
    var command: [String]
    var status: Int32
    var output: String
    var description: String { "\(command.joined(separator: " ")) exited \(status): \(output)" }
}

/// Runs a command to completion; returns stdout, throws with stdout+stderr on failure.
@discardableResult
func run(_ command: [String]) throws -> String {
    let dir = try makeTempDir("cmd")
    defer { removeTempDir(dir) }
    let pid = try spawn(command, stdout: dir + "/stdout", stderr: dir + "/stderr")
    let status = waitForExit(pid)
    let stdout = fileText(dir + "/stdout") ?? ""
    guard status == 0 else {
        throw CommandFailed(command: command, status: status, output: stdout + (fileText(dir + "/stderr") ?? ""))
    }
    return stdout
}

/// posix_spawnp with stdin from /dev/null and output to files. Foundation's Process is avoided: its exit
/// monitoring was seen to miss a child's exit (the child stays a zombie, waitUntilExit never returns), and
/// it hands children the caller's blocked signal mask.
func spawn(_ command: [String], stdout: String, stderr: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    let argv = command.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, command[0], &actions, &attributes, argv, environ)
    guard rc == 0 else { throw CommandFailed(command: command, status: -1, output: String(cString: strerror(rc))) }
    return pid
}

/// Blocks until `pid` exits; its exit code, or 128+signal.
@discardableResult
func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7f) != 0 ? 128 + (status & 0x7f) : (status >> 8) & 0xff
}

/// A temp dir named for skiff, removed (after detaching any mount below it) when `body` ends.
func withTempDir<T>(_ label: String, _ body: (String) async throws -> T) async throws -> T {
    let path = try makeTempDir(label)
    defer { removeTempDir(path) }
    return try await body(path)
}

func makeTempDir(_ label: String) throws -> String {
    var template = Array("/tmp/skiff-images-\(label).XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    return String(cString: p)
}

func removeTempDir(_ path: String) {
    // A failed test may leave a rootfs mounted: never let rm walk into it.
    for m in FS.mountPoints().sorted(by: { $0.count > $1.count }) where m.hasPrefix(path + "/") {
        umount2(m, Int32(MNT_DETACH))
    }
    try? FS.removeTree(path)
}

/// Collects log messages so tests can check what was said (e.g. mirror fallbacks).
final class CapturedLog: Sendable {
    let messages = Mutex<[String]>([])

    var logger: Logger {
        Logger(label: "skiff.images.test") { _ in Handler(log: self) }
    }

    func contains(_ text: String) -> Bool { messages.withLock { $0.contains { $0.contains(text) } } }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let extra = (event.metadata ?? [:]).map { "\($0)=\($1)" }.sorted().joined(separator: " ")
            let (level, message) = (event.level, event.message)
            log.messages.withLock { $0.append("\(level) \(message) \(extra)") }
        }
    }
}

/// The test images (scripts/build-test-images) pushed to a docker-registry (scripts/test-registry),
/// set up once for a suite and torn down after it.
struct RegistryFixture: Sendable {
    let layout: String
    let address: String
    let stateDir: String
    let workDir: String

    @TaskLocal static var current: RegistryFixture?

    static func get() throws -> RegistryFixture {
        guard let f = current else { throw CommandFailed(command: ["fixture"], status: -1, output: "no registry fixture in scope") }
        return f
    }

    /// Pushes layout tag `tag` to `repo:repoTag` on the registry.
    func push(_ tag: String, as target: String, extra: [String] = []) throws {
        // Digests are preserved (so skopeo cannot substitute blobs) unless the push converts formats.
        let preserve = extra.contains("--format") ? [] : ["--preserve-digests"]
        try run(["skopeo", "copy", "-q", "--dest-tls-verify=false"] + preserve + extra + ["oci:\(layout):\(tag)", "docker://\(address)/\(target)"])
    }

    /// Blob downloads the registry served for `repo` so far (from its access log).
    func blobGets(_ repo: String) throws -> Int {
        let log = String(decoding: try Data(contentsOf: URL(fileURLWithPath: stateDir + "/log")), as: UTF8.self)
        return log.split(separator: "\n").filter { $0.contains("\"GET /v2/\(repo)/blobs/sha256:") && $0.contains("\" 200 ") }.count
    }

    /// The manifest digest of a layout tag (from index.json).
    func manifestDigest(_ tag: String) throws -> String {
        struct Index: Decodable {
            struct M: Decodable { var digest: String; var annotations: [String: String]? }
            var manifests: [M]
        }
        let index = try JSONDecoder().decode(Index.self, from: Data(contentsOf: URL(fileURLWithPath: layout + "/index.json")))
        return index.manifests.first { $0.annotations?["org.opencontainers.image.ref.name"] == tag }!.digest
    }
}

struct RegistryFixtureTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let work = try makeTempDir("fixture")
        defer { removeTempDir(work) }
        let layout = work + "/layout"
        try run([repoRoot + "/scripts/build-test-images", layout])
        let started = try run([repoRoot + "/scripts/test-registry", "start", work + "/registry"]).split(separator: " ")
        defer { _ = try? run([repoRoot + "/scripts/test-registry", "stop", work + "/registry"]) }
        let fixture = RegistryFixture(
            layout: layout, address: String(started[0]),
            stateDir: String(started[1]).trimmingCharacters(in: .whitespacesAndNewlines), workDir: work)
        for tag in ["latest", "user", "entrypoint", "env", "stopsignal"] {
            try fixture.push(tag, as: "busybox:\(tag)")
        }
        try fixture.push("whiteout", as: "skiff/whiteout:latest")
        try fixture.push("multi", as: "skiff/multi:latest", extra: ["--all"])
        try fixture.push("latest", as: "skiff/docker:latest", extra: ["--format", "v2s2"])
        try fixture.push("zstd", as: "skiff/zstd:latest")
        try await RegistryFixture.$current.withValue(fixture) {
            try await function()
        }
    }
}

extension Trait where Self == RegistryFixtureTrait {
    static var registryFixture: Self { RegistryFixtureTrait() }
}

/// Starts Tests/SkiffImagesTests/Fixtures/stand_in_registry.py; stops it when `body` ends.
func withStandInRegistry<T>(
    layout: String, options: [String], _ body: (_ address: String, _ requestLog: String) async throws -> T
) async throws -> T {
    let dir = try makeTempDir("stand-in")
    defer { removeTempDir(dir) }
    let command = ["python3", repoRoot + "/Tests/SkiffImagesTests/Fixtures/stand_in_registry.py",
                   "--layout", layout, "--port-file", dir + "/port", "--log", dir + "/requests"] + options
    let pid = try spawn(command, stdout: "/dev/null", stderr: dir + "/stderr")
    defer {
        kill(pid, SIGKILL)
        waitForExit(pid)
    }
    var port: String?
    for _ in 0..<200 {
        if let p = try? String(contentsOfFile: dir + "/port", encoding: .utf8) { port = p; break }
        usleep(50_000)
    }
    guard let port else { throw CommandFailed(command: command, status: -1, output: "stand-in registry did not start") }
    return try await body("127.0.0.1:\(port)", dir + "/requests")
}

/// A port on 127.0.0.1 nothing listens on (bound, then closed).
func closedPort() throws -> Int {
    Int(try run(["python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1]); s.close()"])
        .trimmingCharacters(in: .whitespacesAndNewlines))!
}

func fileText(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
