import Foundation
import Glibc
import Logging
import SkiffSupport
import Testing

@testable import SkiffRuntime

/// AttachConnection against a real skiff-monitor, started through MonitorLauncher as skiffd starts it,
/// with a shell script standing in for the OCI runtime (its "container" is a shell in the background).
@Suite struct AttachConnectionTests {
    @Test func streamsOutputTakesStdinAndEndsWithTheExit() async throws {
        let scene = try await AttachScene.start(init: """
            while read line; do echo "out $line"; echo "err $line" >&2; done
            echo bye
            exit 5
            """, stdin: true, stdinOnce: true)
        defer { scene.cleanUp() }
        let connection = try scene.context.attach(scene.id)
        try await connection.writeStdin(Array("one\n".utf8))
        var out = "", err = ""
        while !(out.hasSuffix("out one\n") && err.hasSuffix("err one\n")) {
            let piece = try #require(try await connection.readOutput())
            let text = String(decoding: piece.bytes, as: UTF8.self)
            if piece.stream == .stdout { out += text } else { err += text }
        }
        #expect(out == "out one\n" && err == "err one\n")
        // Larger than one frame: split into several, all arrive in order.
        let big = String(repeating: "x", count: 100_000)
        try await connection.writeStdin(Array((big + "\n").utf8))
        out = ""
        while !out.hasSuffix("\n") {
            let piece = try #require(try await connection.readOutput())
            if piece.stream == .stdout { out += String(decoding: piece.bytes, as: UTF8.self) }
        }
        #expect(out == "out \(big)\n")
        // stdin_once: this client's end of stdin is the container's.
        try await connection.resize(width: 80, height: 24)  // no tty: ignored, not an error
        try await connection.closeStdin()
        var rest: [UInt8] = []
        while let piece = try await connection.readOutput() {
            if piece.stream == .stdout { rest += piece.bytes }
        }
        #expect(String(decoding: rest, as: UTF8.self).hasSuffix("bye\n"))
        #expect(try await connection.readOutput() == nil)
        connection.close()
        #expect(await ExitWatcher.wait(directory: scene.directory, timeout: .seconds(30))?.exitCode == 5)
    }

    @Test func closeEndsAPendingReadAndCancellationEndsAWait() async throws {
        let scene = try await AttachScene.start(init: "while [ ! -e \"$ROOT/go\" ]; do sleep 0.02; done", stdin: false, stdinOnce: false)
        defer { scene.cleanUp() }
        let connection = try scene.context.attach(scene.id)
        let pending = Task { await failure { () async throws(SkiffError) in _ = try await connection.readOutput() } }
        try await Task.sleep(for: .milliseconds(200))  // the read is parked on the poller by now
        connection.close()
        #expect(await pending.value?.code == .failedPrecondition)
        await #expect(throws: SkiffError.self) { try await connection.writeStdin([1]) }

        let other = try scene.context.attach(scene.id)
        let cancelled = Task { await failure { () async throws(SkiffError) in _ = try await other.readOutput() } }
        try await Task.sleep(for: .milliseconds(200))
        cancelled.cancel()
        #expect(await cancelled.value?.code == .aborted)
        other.close()
        FileManager.default.createFile(atPath: scene.root + "/go", contents: nil)
    }

    @Test func attachNeedsAKnownRunningContainerWithAMonitor() async throws {
        let scene = try await AttachScene.start(init: "while [ ! -e \"$ROOT/go\" ]; do sleep 0.02; done", stdin: false, stdinOnce: false)
        defer { scene.cleanUp() }
        #expect(throws: SkiffError.notFound("container \"skiff-nonexistent\" not found")) { try scene.context.attach("skiff-nonexistent") }
        // Created but not started.
        _ = scene.context.containers.update(scene.id) { $0.state = .created }
        #expect { try scene.context.attach(scene.id) } throws: { ($0 as? SkiffError)?.code == .failedPrecondition }
        _ = scene.context.containers.update(scene.id) { $0.state = .running }
        // Its monitor ends with it: afterwards the container is seen to have exited.
        let connection = try scene.context.attach(scene.id)
        FileManager.default.createFile(atPath: scene.root + "/go", contents: nil)
        #expect(try await connection.readOutput() == nil)
        _ = await ExitWatcher.wait(directory: scene.directory, timeout: .seconds(30))
        #expect { try scene.context.attach(scene.id) } throws: { ($0 as? SkiffError)?.code == .failedPrecondition }
        // A socket nobody listens on (a monitor from before attach support never made one).
        #expect { try AttachConnection(directory: scene.root) } throws: { ($0 as? SkiffError)?.code == .notFound }
    }
}

/// Records written before attach support have no stdin/stdinOnce/tty: they still load (as nil).
@Test func containerRecordsWithoutStdioFieldsStillDecode() throws {
    var record = ContainerRecord(
        id: "skiff-old", sandboxId: "skiff-pod", name: "c", attempt: 0, labels: [:], annotations: [:], image: "", imageRef: "",
        imageId: "", logPath: "", cgroup: "", stopSignal: SIGTERM, config: Data())
    record.stdin = true
    record.stdinOnce = true
    record.tty = true
    var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any])
    #expect(object["stdin"] as? Bool == true && object["stdinOnce"] as? Bool == true && object["tty"] as? Bool == true)
    for key in ["stdin", "stdinOnce", "tty"] { object.removeValue(forKey: key) }
    let old = try JSONDecoder().decode(ContainerRecord.self, from: JSONSerialization.data(withJSONObject: object))
    #expect(old.id == "skiff-old" && old.stdin == nil && old.stdinOnce == nil && old.tty == nil)
}

/// The error `body` throws, or nil.
private func failure(of body: () async throws(SkiffError) -> Void) async -> SkiffError? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}

/// A RuntimeContext rooted in a temp directory, holding one running container record whose monitor (a
/// real skiff-monitor with --attach) runs a shell script as the container.
final class AttachScene: @unchecked Sendable {
    let root: String
    let context: RuntimeContext
    let id = "skiff-attach-" + UUID().uuidString.prefix(8).lowercased()
    var directory: String { context.paths.containerStateDirectory(id) }

    static let fakeRuntime = """
        #!/bin/sh
        while [ $# -gt 0 ]; do
            case "$1" in
                --bundle) bundle=$2; shift ;;
                --pid-file) pidfile=$2; shift ;;
            esac
            shift
        done
        exec 3<&0
        ROOT="$(dirname "$0")" sh "$bundle/init.sh" <&3 3<&- &
        echo $! > "$pidfile"
        """

    /// The directory of the built executables (skiff-monitor sits beside the test bundle).
    static var binDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["SKIFF_BIN"] { return dir }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("skiff-monitor").path) { return dir.path }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }

    private init(root: String) {
        self.root = root
        context = RuntimeContext(
            paths: RuntimePaths(root: root + "/records", state: root + "/state-with-a-rather-long-name-" + String(repeating: "x", count: 80)),
            runtimes: [:], defaultRuntime: "fake", binDirectory: Self.binDirectory, cniPluginDirectories: [],
            cniConfigDirectory: root + "/cni", defaultCgroupParent: "/skiff-attach-test", logger: Logger(label: "skiff-attach-test"))
    }

    static func start(init script: String, stdin: Bool, stdinOnce: Bool) async throws -> AttachScene {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-attach-test-\(UUID().uuidString.prefix(8))").path
        let scene = AttachScene(root: root)
        let bundle = root + "/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scene.directory, withIntermediateDirectories: true)
        #expect(scene.directory.utf8.count > 108, "the state directory is longer than sun_path on purpose")
        try script.write(toFile: bundle + "/init.sh", atomically: true, encoding: .utf8)
        // Through a close-on-exec descriptor: a concurrently spawned process must not inherit it open for
        // writing (exec would fail with ETXTBSY).
        let fd = open(root + "/runtime", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        try #require(fd >= 0)
        let bytes = Array(fakeRuntime.utf8)
        let written = write(fd, bytes, bytes.count)
        close(fd)
        try #require(written == bytes.count)
        let pid = try await scene.context.monitor.create(.init(
            runtime: OCIRuntime(name: "fake", path: root + "/runtime", root: root + "/runtime-root"), id: scene.id, bundle: bundle,
            directory: scene.directory, logPath: root + "/ctr.log", oomFile: nil, attach: true, stdin: stdin, stdinOnce: stdinOnce))
        var record = ContainerRecord(
            id: scene.id, sandboxId: "skiff-pod", name: "c", attempt: 0, labels: [:], annotations: [:], image: "", imageRef: "",
            imageId: "", logPath: root + "/ctr.log", cgroup: "", stopSignal: SIGTERM, config: Data())
        record.state = .running
        record.initPid = pid
        record.stdin = stdin
        record.stdinOnce = stdinOnce
        scene.context.containers.put(record)
        return scene
    }

    /// Ends the container (and so its monitor) if a test left it running, and removes the directory.
    func cleanUp() {
        FileManager.default.createFile(atPath: root + "/go", contents: nil)
        if let pid = context.containers.get(id)?.initPid, pid > 0, ExitRecord.read(directory: directory) == nil { kill(pid, SIGKILL) }
        for _ in 0..<1500 where ExitRecord.read(directory: directory) == nil { usleep(20_000) }
        try? FileManager.default.removeItem(atPath: root)
    }
}
