import Foundation
import Glibc
import Testing

/// skiff-monitor driven directly, as skiffd's MonitorLauncher starts it, with a shell script standing in
/// for the OCI runtime: the sync-fd verdict, the CRI log lines, reopen, exit.json and create errors, byte
/// for byte. The container tests cover the same monitor with real containers through skiffd.
@Suite struct MonitorTests {
    @Test func copiesOutputAsCRILogLinesAndRecordsTheExit() throws {
        let scene = try MonitorScene(init: """
            echo hello
            printf '%16384s\\n' '' | tr ' ' a
            printf '%16385s\\n' '' | tr ' ' b
            echo oops >&2
            printf 'no newline'
            exit 3
            """)
        defer { scene.cleanUp() }
        try "oom 1\noom_kill 0\n".write(toFile: scene.root + "/memory.events", atomically: true, encoding: .utf8)
        let before = Int64(Date().timeIntervalSince1970 * 1e9)

        let verdict = try scene.start(oomFile: scene.root + "/memory.events")
        let pid = try #require(Int32(verdict.dropFirst(3).dropLast()))
        #expect(verdict == "ok \(pid)\n")
        #expect(try String(contentsOfFile: scene.dir + "/init.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "\(pid)")
        // The runtime is asked exactly this.
        #expect(try String(contentsOfFile: scene.root + "/argv", encoding: .utf8).split(separator: "\n").map(String.init) == [
            "--root", scene.root + "/runtime-root", "--log", scene.dir + "/runtime.log", "create",
            "--bundle", scene.bundle, "--pid-file", scene.dir + "/init.pid", "skiff-monitor-ctr",
        ])

        let record = try scene.exitRecord()
        let match = try #require(try Regex(#"^\{"exit_code":3,"signal":0,"finished_at":(\d+),"oom_killed":false,"pid":(\d+)\}\n$"#).wholeMatch(in: record))
        #expect(Int64(String(match.output[1].substring ?? "")) ?? 0 >= before)
        #expect(String(match.output[2].substring ?? "") == "\(pid)")

        let lines = try scene.logLines()
        let stdout = lines.filter { $0.stream == "stdout" }.map { "\($0.tag) \($0.text)" }
        #expect(stdout == [
            "F hello",
            "F " + String(repeating: "a", count: 16384),  // exactly the maximum: one full line
            "P " + String(repeating: "b", count: 16384), "F b",  // one more: a partial piece, then the rest
            "F no newline",  // flushed at EOF
        ])
        #expect(lines.filter { $0.stream == "stderr" }.map { "\($0.tag) \($0.text)" } == ["F oops"])
    }

    @Test func killedInitIsCodedAs128PlusSignalAndOOMIsReported() throws {
        let scene = try MonitorScene(init: """
            while [ ! -e "$ROOT/go" ]; do sleep 0.02; done
            kill -9 $$
            """)
        defer { scene.cleanUp() }
        try "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n".write(toFile: scene.root + "/memory.oom_control", atomically: true, encoding: .utf8)
        let verdict = try scene.start(oomFile: scene.root + "/memory.oom_control")
        let pid = try #require(Int32(verdict.dropFirst(3).dropLast()))
        // The monitor ends only when its container does: these must not stop it.
        let monitor = try scene.monitorPid()
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { #expect(kill(monitor, sig) == 0) }
        FileManager.default.createFile(atPath: scene.root + "/go", contents: nil)
        #expect(try scene.exitRecord().hasPrefix(#"{"exit_code":137,"signal":9,"finished_at":"#))
        #expect(try scene.exitRecord().hasSuffix(#","oom_killed":true,"pid":\#(pid)}"# + "\n"))
    }

    /// swift-nio ignores SIGPIPE in every process that uses it (skiffd among them), and an ignored signal
    /// survives fork and exec. The container must still start with every disposition at its default, or
    /// `yes | head` prints "Broken pipe"; and the monitor must still hear the signals it was started ignoring.
    @Test func signalsIgnoredByWhoeverStartedTheMonitorAreNotPassedOn() throws {
        let scene = try MonitorScene(init: """
            echo before
            while [ ! -e "$ROOT/go" ]; do sleep 0.02; done
            yes | head -n 1
            kill -USR1 "$(cat "$ROOT/state/monitor.pid")"
            sleep 0.2
            echo after-reopen
            """)
        defer { scene.cleanUp() }
        try scene.startRunning(ignoring: ["PIPE", "TERM", "HUP", "USR1"])
        let monitorStatus = try String(contentsOfFile: "/proc/\(try scene.monitorPid())/status", encoding: .utf8)
        #expect(monitorStatus.split(separator: "\n").contains("SigIgn:\t0000000000000000"))
        // What the runtime was started with, as its first child sees it (the shell's own mask reads as
        // all-blocked while it vforks; a background init gets SIGINT and SIGQUIT ignored by sh).
        let runtimeSignals = try String(contentsOfFile: scene.root + "/runtime-signals", encoding: .utf8)
        #expect(runtimeSignals == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n")
        try scene.waitFor("log line before") { (try? scene.logLines().map(\.text)) == ["before"] }
        #expect(rename(scene.log, scene.log + ".1") == 0)
        FileManager.default.createFile(atPath: scene.root + "/go", contents: nil)
        #expect(try scene.exitRecord().hasPrefix(#"{"exit_code":0,"#))
        let before = try String(contentsOfFile: scene.log + ".1", encoding: .utf8)
        // The log was reopened on SIGUSR1, which the monitor's starter ignored; `yes` died quietly of SIGPIPE.
        let lines = try scene.logLines()
        #expect(lines.map(\.text) == ["y", "after-reopen"] || lines.map(\.text) == ["after-reopen"])
        #expect(!lines.contains { $0.text.contains("Broken pipe") } && !before.contains("Broken pipe"))
    }

    @Test func reopensTheLogOnSIGUSR1() throws {
        let scene = try MonitorScene(init: """
            echo one
            while [ ! -e "$ROOT/go" ]; do sleep 0.02; done
            kill -USR1 "$(cat "$ROOT/state/monitor.pid")"
            echo two
            """)
        defer { scene.cleanUp() }
        try scene.startRunning()
        // Once "one" is in the log the monitor has consumed it; rotate as kubelet does, then let the
        // init signal the monitor (pending before "two" is written, and handled first).
        try scene.waitFor("log line one") { (try? scene.logLines().map(\.text)) == ["one"] }
        #expect(rename(scene.log, scene.log + ".1") == 0)
        FileManager.default.createFile(atPath: scene.root + "/go", contents: nil)
        #expect(try scene.exitRecord().hasPrefix(#"{"exit_code":0,"#))
        #expect(try scene.logLines().map(\.text) == ["two"])
        #expect(try scene.logLines(of: scene.log + ".1").map(\.text) == ["one"])
    }

    @Test func failedCreateReportsTheRuntimesLastLines() throws {
        let scene = try MonitorScene(init: "exit 0")
        defer { scene.cleanUp() }
        try "first\n\nsecond\nthird\nfourth\nfifth\nsixth\n".write(toFile: scene.bundle + "/fail", atomically: true, encoding: .utf8)
        let expected = "third; fourth; fifth; sixth; runtime.log says: no such bundle"
        #expect(try scene.start() == "error \(expected)\n")
        #expect(try String(contentsOfFile: scene.dir + "/create.err", encoding: .utf8) == expected)
        #expect(!FileManager.default.fileExists(atPath: scene.dir + "/exit.json"))

        let missing = try MonitorScene(init: "exit 0", runtime: "/nonexistent/skiff-runc")
        defer { missing.cleanUp() }
        #expect(try missing.start() == "error exec /nonexistent/skiff-runc: No such file or directory\n")
    }

    @Test func survivesADeadSyncFdAndClosesInheritedDescriptors() throws {
        let scene = try MonitorScene(init: """
            while [ ! -e "$ROOT/go" ]; do sleep 0.02; done
            """)
        defer { scene.cleanUp() }
        // skiffd gave up (its read end is gone): the verdict meets EPIPE, which must not kill the monitor.
        // A descriptor leaked to it on fd 4 must be closed at once, although the container still runs.
        var leak: [Int32] = [-1, -1]
        #expect(pipe(&leak) == 0)
        _ = fcntl(leak[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(leak[1], F_SETFD, FD_CLOEXEC)
        defer { close(leak[0]) }
        _ = try scene.start(closeSyncFirst: true, leak: leak[1])
        close(leak[1])
        var pfd = pollfd(fd: leak[0], events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 30_000) == 1)
        var byte: UInt8 = 0
        #expect(read(leak[0], &byte, 1) == 0)
        #expect(!FileManager.default.fileExists(atPath: scene.dir + "/exit.json"))
        FileManager.default.createFile(atPath: scene.root + "/go", contents: nil)
        #expect(try scene.exitRecord().hasPrefix(#"{"exit_code":0,"signal":0,"#))
    }

    @Test func usageErrorsNameTheArgument() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-monitor-usage-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [([String], String)] = [
            (["--bogus"], "skiff-monitor: unknown argument --bogus\n"),
            (["--runtime"], "skiff-monitor: --runtime needs a value\n"),
            (["--runtime", "/bin/true", "--id", "x"], "skiff-monitor: --runtime, --id, --bundle and --dir are required\n"),
        ]
        for (i, (arguments, message)) in cases.enumerated() {
            let output = dir + "/out\(i)"
            #expect(try Spawned([binDirectory + "/skiff-monitor"] + arguments, output: output).wait() == 1)
            #expect(try String(contentsOfFile: output, encoding: .utf8) == message)
        }
    }
}

/// One monitor's world in a temp directory: a fake runtime, a bundle whose init.sh is the container's
/// init (run by sh with $ROOT set), the state directory and the CRI log.
final class MonitorScene {
    let root: String
    let runtime: String
    var dir: String { root + "/state" }
    var bundle: String { root + "/bundle" }
    var log: String { root + "/ctr.log" }

    /// Stands in for `skiff-runc create`: records its arguments, then either fails (the bundle has a
    /// `fail` file: its text on stderr, one line in --log) or starts init.sh in the background, as the
    /// container's init, and writes its pid to --pid-file.
    static let fakeRuntime = """
        #!/bin/sh
        printf '%s\\n' "$@" > "$(dirname "$0")/argv"
        grep -E '^Sig(Blk|Ign):' /proc/self/status > "$(dirname "$0")/runtime-signals"
        # A terminal needs SCM_RIGHTS: python does the console-socket side (see ttyRuntime).
        case " $* " in *" --console-socket "*) exec /usr/bin/python3 "$(dirname "$0")/tty-runtime" "$@" ;; esac
        while [ $# -gt 0 ]; do
            case "$1" in
                --log) log=$2; shift ;;
                --bundle) bundle=$2; shift ;;
                --pid-file) pidfile=$2; shift ;;
            esac
            shift
        done
        if [ -e "$bundle/fail" ]; then
            cat "$bundle/fail" >&2
            echo "runtime.log says: no such bundle" >> "$log"
            exit 1
        fi
        # sh gives a background job /dev/null as stdin unless told otherwise: pass ours on through fd 3.
        exec 3<&0
        ROOT="$(dirname "$0")" sh "$bundle/init.sh" <&3 3<&- &
        echo $! > "$pidfile"
        """

    /// The console-socket side of `runc create` (as skiff-runc's Init does it): a pty whose slave is the
    /// init's stdio and controlling terminal, and whose master goes to --console-socket with SCM_RIGHTS.
    static let ttyRuntime = """
        import fcntl, os, socket, sys, termios
        opts, args = {}, sys.argv[1:]
        for i, a in enumerate(args):
            if a in ("--bundle", "--pid-file", "--console-socket"):
                opts[a] = args[i + 1]
        master, slave = os.openpty()
        pid = os.fork()
        if pid == 0:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.closerange(3, 256)
            env = dict(os.environ, ROOT=os.path.dirname(sys.argv[0]))
            os.execve("/bin/sh", ["sh", opts["--bundle"] + "/init.sh"], env)
        os.close(slave)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(opts["--console-socket"])
            socket.send_fds(s, [b"/dev/ptmx"], [master])
        with open(opts["--pid-file"], "w") as f:
            f.write(str(pid))
        """

    init(init script: String, runtime: String? = nil) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-monitor-test-\(UUID().uuidString.prefix(8))").path
        self.runtime = runtime ?? root + "/runtime"
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/bundle", withIntermediateDirectories: true)
        try script.write(toFile: root + "/bundle/init.sh", atomically: true, encoding: .utf8)
        try Self.writeExecutable(root + "/runtime", Self.fakeRuntime)
        try Self.ttyRuntime.write(toFile: root + "/tty-runtime", atomically: true, encoding: .utf8)
    }

    /// Writes a script through a close-on-exec descriptor: tests run in parallel, and a descriptor open
    /// for writing that a concurrently spawned process inherits makes exec fail with ETXTBSY.
    static func writeExecutable(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw TestFailure("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw TestFailure("write \(path): \(String(cString: strerror(errno)))") }
    }

    /// Starts the monitor as MonitorLauncher does (stdin and stdout /dev/null, stderr monitor.log, the
    /// sync pipe's write end on fd 3) and returns the verdict it wrote there ("" when the read end was
    /// closed first). `leak` lands on fd 4, as a descriptor skiffd should not have passed.
    /// `ignoring` names signals (as the shell's trap does) that the monitor inherits as ignored.
    func start(oomFile: String? = nil, closeSyncFirst: Bool = false, leak: Int32? = nil, flags: [String] = [],
               ignoring: [String] = []) throws -> String {
        var sync: [Int32] = [-1, -1]
        guard pipe(&sync) == 0 else { throw TestFailure("pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(sync[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(sync[1], F_SETFD, FD_CLOEXEC)
        var arguments = [
            binDirectory + "/skiff-monitor", "--runtime", runtime, "--runtime-root", root + "/runtime-root",
            "--id", "skiff-monitor-ctr", "--bundle", bundle, "--dir", dir, "--log", log, "--sync-fd", "3",
        ]
        if let oomFile { arguments += ["--oom-file", oomFile] }
        arguments += flags
        if !ignoring.isEmpty {
            // An ignored signal survives exec: the shell ignores them, then becomes the monitor.
            arguments = ["/bin/sh", "-c", "trap '' \(ignoring.joined(separator: " ")); exec \"$@\"", "sh"] + arguments
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, dir + "/monitor.log", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, sync[1], 3)
        if let leak { posix_spawn_file_actions_adddup2(&actions, leak, 4) }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = withCleanSignals { posix_spawn(&pid, arguments[0], &actions, $0, argv, environ) }
        close(sync[1])
        if closeSyncFirst { close(sync[0]) }
        guard rc == 0 else { throw TestFailure("spawn \(arguments[0]): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}  // the first fork returns at once
        guard !closeSyncFirst else { return "" }
        defer { close(sync[0]) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(sync[0], &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        return String(decoding: reply, as: UTF8.self)
    }

    /// `start` for a container that must be running: anything but an "ok <pid>" verdict fails the test
    /// here, with the monitor's log, instead of later as a missing attach socket or exit record.
    func startRunning(flags: [String] = [], ignoring: [String] = []) throws {
        let verdict = try start(flags: flags, ignoring: ignoring)
        guard verdict.hasPrefix("ok ") else {
            let said = (try? String(contentsOfFile: dir + "/monitor.log", encoding: .utf8)) ?? ""
            throw TestFailure("verdict \(verdict.debugDescription); monitor.log: \(said)")
        }
    }

    func monitorPid() throws -> Int32 {
        let text = try String(contentsOfFile: dir + "/monitor.pid", encoding: .utf8)
        guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestFailure("monitor.pid: \(text)") }
        return pid
    }

    func waitFor(_ what: String, _ condition: () -> Bool) throws {
        // Generous: the cgroup-v2 lane runs these under software emulation, ten times slower than here.
        let deadline = Date().addingTimeInterval(120)
        while !condition() {
            if Date() > deadline {
                let said = (try? String(contentsOfFile: dir + "/monitor.log", encoding: .utf8)) ?? ""
                throw TestFailure("no \(what) after 120 s; monitor.log: \(said)")
            }
            usleep(20_000)
        }
    }

    /// exit.json once the monitor has written it.
    func exitRecord() throws -> String {
        try waitFor("exit.json") { FileManager.default.fileExists(atPath: dir + "/exit.json") }
        return try String(contentsOfFile: dir + "/exit.json", encoding: .utf8)
    }

    /// The CRI log's lines, each checked against `<RFC3339Nano UTC> stdout|stderr F|P <text>`. Split on
    /// bytes: a terminal's "\r\n" is one Character to String, which would hide the line ends.
    func logLines(of path: String? = nil) throws -> [(stream: String, tag: String, text: String)] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path ?? log)))
        #expect(bytes.isEmpty || bytes.last == UInt8(ascii: "\n"))
        let format = try Regex(#"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) "#)
        return try bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast().map { raw in
            let line = String(decoding: raw, as: UTF8.self)
            guard let m = try format.prefixMatch(in: line) else { throw TestFailure("not a CRI log line: \(line.prefix(80))") }
            return (String(m.output[1].substring!), String(m.output[2].substring!), String(line[m.range.upperBound...]))
        }
    }

    /// Ends whatever is left (a failed test's init, then its monitor) and removes the directory.
    func cleanUp() {
        FileManager.default.createFile(atPath: root + "/go", contents: nil)  // inits waiting for it end
        let recorded = { FileManager.default.fileExists(atPath: self.dir + "/exit.json") }
        if !recorded(), let monitor = try? monitorPid() {
            if let text = try? String(contentsOfFile: dir + "/init.pid", encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 {
                kill(pid, SIGKILL)
            }
            // A monitor that already ended (failed create) is gone or a zombie of pid 1.
            let gone = { (try? String(contentsOfFile: "/proc/\(monitor)/stat", encoding: .utf8))?.contains(") Z ") ?? true }
            try? waitFor("exit.json after SIGKILL") { recorded() || gone() }
            if !gone() { kill(monitor, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: root)
    }
}
