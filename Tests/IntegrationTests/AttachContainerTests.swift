import CRI
import Foundation
import GRPCCore
import SkiffClient
import Testing

// MARK: - tty, stdin and the attach socket through skiffd

extension RuntimeTests {
    /// `tty: true` gives the container a terminal on all three stdio (made by the runtime, the master
    /// passed to the monitor over --console-socket), TERM=xterm, and one stream in the log: stdout.
    /// Debian's runc speaks the same console-socket protocol as skiff-runc.
    @Test(arguments: ["", "runc"]) func ttyContainersGetATerminalLoggedAsStdout(handler: String) async throws {
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if handler == "runc" { try #require(runc != nil, "runc is installed by scripts/install-deps --test") }
        let yaml = handler == "runc" ? "runtimes:\n  runc:\n    path: \(runc!)\n" : nil
        try await RuntimeHarness.run(configYAML: yaml) { h in
            let podConfig = h.podConfig()
            try await h.client { c in
                try await c.pull(h.registry.image("latest"))
                var request = RunPodSandboxRequest()
                request.config = podConfig
                request.runtimeHandler = handler
                let pod = try await c.call(CRIMethods.runPodSandbox, request).podSandboxId
                var config = Pods.container(
                    name: "tty", image: h.registry.image("latest"),
                    command: ["sh", "-c", """
                        stty -echo
                        test -t 0 && test -t 1 && test -t 2 && echo "tty $TERM"
                        echo to-stderr >&2
                        tty
                        read x; stty size
                        """])
                config.tty = true
                config.stdin = true
                let id = try await c.run(pod, config, podConfig)
                let log = try await c.status(id).logPath
                try await waitUntil { ((try? criLogLines(log)) ?? []).count == 3 }
                // Through the monitor's attach socket: a size for the terminal, then a line for `read`.
                let directory = h.daemon.state + "/containers/" + id
                try await offThePool {
                    let client = try AttachTestClient(directory: directory)
                    try client.send(.resize, [0, 100, 0, 30])  // 100 columns, 30 rows
                    try client.send(.stdin, "\n")
                    let end = try client.readToEnd()
                    #expect(end.stdout == "30 100\r\n" && end.stderr.isEmpty && end.exitCode == 0)
                }
                let status = try await c.waitFor(id) { $0.state == .containerExited }
                #expect(status.exitCode == 0)
                let lines = try criLogLines(status.logPath)
                #expect(lines.map(\.stream) == ["stdout", "stdout", "stdout", "stdout"])
                // The terminal turns \n into \r\n; the pty is the container's own.
                #expect(lines.map(\.text) == ["tty xterm\r", "to-stderr\r", "/dev/pts/0\r", "30 100\r"])

                var verbose = ContainerStatusRequest()
                verbose.containerId = id
                verbose.verbose = true
                let info = try await c.call(CRIMethods.containerStatus, verbose).info["info"] ?? ""
                #expect(info.contains(#""tty":true"#) && info.contains(#""stdin":true"#), "\(info)")
                try await c.removePod(pod)
            }
        }
    }

    /// Without `stdin` the container's stdin is /dev/null; with it, a pipe that stays open while nobody
    /// is attached. The monitor's attach socket feeds it, also while skiffd is down (the socket is the
    /// monitor's), and `stdin_once` closes it when that client detaches.
    @Test func stdinIsAPipeFedThroughTheMonitorsAttachSocketAcrossARestart() async throws {
        try await RuntimeHarness.run { h in
            let podConfig = h.podConfig()
            var pod = ""
            var piped = ""
            try await h.client { c in
                try await c.pull(h.registry.image("latest"))
                pod = try await c.runPod(podConfig)
                let plain = try await c.run(pod, Pods.container(
                    name: "plain", image: h.registry.image("latest"), command: ["sh", "-c", "readlink /proc/self/fd/0; cat; echo eof"]), podConfig)
                var config = Pods.container(
                    name: "piped", image: h.registry.image("latest"),
                    command: ["sh", "-c", "readlink /proc/self/fd/0; while read l; do echo \"got $l\"; done; echo eof; exit 3"])
                config.stdin = true
                config.stdinOnce = true
                piped = try await c.run(pod, config, podConfig)

                let p = try await c.waitFor(plain) { $0.state == .containerExited }
                #expect(p.exitCode == 0)
                #expect(try criLogLines(p.logPath).map(\.text) == ["/dev/null", "eof"])

                let log = try await c.status(piped).logPath
                try await waitUntil { ((try? criLogLines(log)) ?? []).count == 1 }
                #expect(try criLogLines(log).first?.text.hasPrefix("pipe:[") == true)
                try await Task.sleep(for: .milliseconds(500))
                #expect(try await c.status(piped).state == .containerRunning)  // its stdin is still open
            }

            await h.daemon.kill()
            let directory = h.daemon.state + "/containers/" + piped
            let end = try await offThePool { () -> AttachTestClient.End in
                let client = try AttachTestClient(directory: directory)
                try client.send(.stdin, "one\n")
                _ = try client.collect(until: "got one\n", on: 1)
                let watcher = try AttachTestClient(directory: directory)
                client.close()  // stdin_once: its end of stdin is the container's
                return try watcher.readToEnd()
            }
            #expect(end.stdout == "eof\n" && end.exitCode == 3)

            try FileManager.default.createDirectory(atPath: h.daemon.directory, withIntermediateDirectories: true)
            let restarted = try await TestDaemon.start(directory: h.daemon.directory)
            try await restarted.client { c in
                let s = try await c.status(piped)
                #expect(s.state == .containerExited && s.exitCode == 3)
                #expect(try criLogLines(s.logPath).dropFirst().map(\.text) == ["got one", "eof"])
                try await c.removePod(pod)
            }
            await restarted.terminate()
        }
    }
}

/// A CRI log's lines as (stream, tag, text), split on bytes: a terminal's "\r\n" is one Character.
func criLogLines(_ path: String) throws -> [(stream: String, tag: String, text: String)] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    return try bytes.split(separator: UInt8(ascii: "\n")).map { raw in
        let fields = raw.split(separator: UInt8(ascii: " "), maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4 else { throw TestFailure("not a CRI log line: \(String(decoding: raw, as: UTF8.self))") }
        return (String(decoding: fields[1], as: UTF8.self), String(decoding: fields[2], as: UTF8.self), String(decoding: fields[3], as: UTF8.self))
    }
}
