import Foundation
import Glibc
import Testing

/// skiff-monitor's terminal, stdin and attach socket, driven directly with the fake runtime of
/// MonitorScene (python does the console-socket side for --tty) and a client speaking the frame protocol
/// of docs/attach.md by hand. Each test body runs on a thread of its own: it blocks in poll/read.
@Suite struct MonitorAttachTests {
    @Test func ttyOutputIsOneStreamLoggedAsStdout() async throws {
        try await offThePool {
            let scene = try MonitorScene(init: """
                test -t 0 && test -t 1 && test -t 2 && echo terminal
                echo to-stderr >&2
                printf 'no newline'
                """)
            defer { scene.cleanUp() }
            let verdict = try scene.start(flags: ["--attach", "--tty"])
            try #require(verdict.hasPrefix("ok "), "verdict: \(verdict)")
            let argv = try String(contentsOfFile: scene.root + "/argv", encoding: .utf8).split(separator: "\n").map(String.init)
            let console = try #require(argv.firstIndex(of: "--console-socket").map { argv[$0 + 1] })
            #expect(console.hasPrefix("/tmp/skiff-console-") && console.hasSuffix("/console"))
            #expect(try scene.exitRecord().hasPrefix(#"{"exit_code":0,"#))
            let lines = try scene.logLines()
            // The terminal turns \n into \r\n; everything is one stream.
            #expect(lines.map(\.stream) == ["stdout", "stdout", "stdout"])
            #expect(lines.map(\.text) == ["terminal\r", "to-stderr\r", "no newline"])
            // The console socket's directory is gone once the pty was handed over.
            #expect(!FileManager.default.fileExists(atPath: (console as NSString).deletingLastPathComponent))
        }
    }

    @Test func stdinIsDevNullUnlessAskedForAndAPipeThatStaysOpen() async throws {
        try await offThePool {
            let none = try MonitorScene(init: "readlink /proc/self/fd/0; cat; echo eof")
            defer { none.cleanUp() }
            _ = try none.start(flags: ["--attach"])
            #expect(try none.exitRecord().hasPrefix(#"{"exit_code":0,"#))
            #expect(try none.logLines().map(\.text) == ["/dev/null", "eof"])

            let piped = try MonitorScene(init: "readlink /proc/self/fd/0; cat; echo eof")
            defer { piped.cleanUp() }
            _ = try piped.start(flags: ["--attach", "--stdin"])
            try piped.waitFor("the pipe's name in the log") { (try? piped.logLines().count) == 1 }
            #expect(try piped.logLines().first?.text.hasPrefix("pipe:[") == true)
            // Nobody attached: the pipe stays open, cat keeps waiting.
            usleep(300_000)
            #expect(!FileManager.default.fileExists(atPath: piped.dir + "/exit.json"))
            #expect(try piped.logLines().count == 1)
        }
    }

    @Test func stdinFromClientsStaysOpenAcrossDetachesWithoutStdinOnce() async throws {
        try await offThePool {
            let scene = try MonitorScene(init: """
                while read line; do echo "got $line"; echo "err $line" >&2; done
                echo eof
                """)
            defer { scene.cleanUp() }
            try scene.startRunning(flags: ["--attach", "--stdin"])
            let a = try AttachTestClient(directory: scene.dir)
            try a.send(.stdin, "one\n")
            #expect(try a.collect(until: "got one\n", on: 1) == "got one\n")
            #expect(try a.collect(until: "err one\n", on: 2) == "err one\n")
            a.close()
            // A client that said its stdin ended does not close the container's either.
            let b = try AttachTestClient(directory: scene.dir)
            try b.send(.stdin, "two\n")
            #expect(try b.collect(until: "got two\n", on: 1) == "got two\n")
            try b.send(.closeStdin)
            b.close()
            let c = try AttachTestClient(directory: scene.dir)
            try c.send(.stdin, "three\n")
            #expect(try c.collect(until: "got three\n", on: 1) == "got three\n")
            // Still reading: end it from outside; the client gets EXIT (143) and EOF.
            #expect(kill(try scene.initPid(), SIGTERM) == 0)
            let rest = try c.readToEnd()
            #expect(rest.exitCode == 143)
            #expect(try scene.logLines().filter { $0.stream == "stdout" }.map(\.text) == ["got one", "got two", "got three"])
        }
    }

    @Test func stdinOnceClosesStdinWhenTheFirstStdinClientDetaches() async throws {
        try await offThePool {
            let scene = try MonitorScene(init: """
                while read line; do echo "got $line"; done
                echo eof
                exit 4
                """)
            defer { scene.cleanUp() }
            try scene.startRunning(flags: ["--attach", "--stdin", "--stdin-once"])
            // Output-only clients come and go without touching stdin.
            let watcher = try AttachTestClient(directory: scene.dir)
            let passerby = try AttachTestClient(directory: scene.dir)
            passerby.close()
            let writer = try AttachTestClient(directory: scene.dir)
            try writer.send(.stdin, "one\n")
            #expect(try writer.collect(until: "got one\n", on: 1) == "got one\n")
            #expect(!FileManager.default.fileExists(atPath: scene.dir + "/exit.json"))
            writer.close()  // its stdin ends with it: the container's stdin is closed
            let end = try watcher.readToEnd()
            #expect(end.stdout == "got one\neof\n")
            #expect(end.exitCode == 4)
            #expect(try scene.exitRecord().hasPrefix(#"{"exit_code":4,"#))
            // Once the container exited the socket is gone.
            #expect(!FileManager.default.fileExists(atPath: scene.dir + "/attach"))
        }
    }

    @Test func closeStdinFrameEndsStdinOnceWithoutDisconnecting() async throws {
        try await offThePool {
            let scene = try MonitorScene(init: "cat; echo eof")
            defer { scene.cleanUp() }
            try scene.startRunning(flags: ["--attach", "--stdin", "--stdin-once"])
            let client = try AttachTestClient(directory: scene.dir)
            try client.send(.stdin, "abc\n")
            try client.send(.closeStdin)
            let end = try client.readToEnd()
            #expect(end.stdout == "abc\neof\n")
            #expect(end.exitCode == 0)
        }
    }

    @Test func everyClientSeesOutputFromWhenItAttached() async throws {
        try await offThePool {
            let scene = try MonitorScene(init: "while read line; do echo \"$line\"; done")
            defer { scene.cleanUp() }
            try scene.startRunning(flags: ["--attach", "--stdin"])
            let first = try AttachTestClient(directory: scene.dir)
            try first.send(.stdin, "early\n")
            #expect(try first.collect(until: "early\n", on: 1) == "early\n")
            let late = try (0..<5).map { _ in try AttachTestClient(directory: scene.dir) }
            try late[0].send(.stdin, "late\n")
            for client in late { #expect(try client.collect(until: "late\n", on: 1) == "late\n") }
            #expect(try first.collect(until: "late\n", on: 1) == "late\n")
            #expect(kill(try scene.initPid(), SIGKILL) == 0)
            for client in late + [first] { #expect(try client.readToEnd().exitCode == 137) }
        }
    }

    @Test func aSlowClientIsCutOffWithoutHoldingUpTheContainerOrTheLog() async throws {
        try await offThePool {
            // ~3.2 MB in bursts of ~52 kB, far beyond a client's 1 MiB queue plus the socket buffers. One
            // `yes | head` per burst, not a shell loop per line: that took over 30 s on an emulated v2 kernel.
            let scene = try MonitorScene(init: """
                while [ ! -e "$ROOT/go" ]; do sleep 0.02; done
                pad=$(printf '%0100d' 0)
                b=0
                while [ $b -lt 60 ]; do
                    yes "$b $pad" | head -n 500
                    b=$((b + 1))
                    sleep 0.05
                done
                echo done
                """)
            defer { scene.cleanUp() }
            try scene.startRunning(flags: ["--attach"])
            let slow = try AttachTestClient(directory: scene.dir)
            let fast = try AttachTestClient(directory: scene.dir)
            let reader = Thread { fast.result = Result { try fast.readToEnd() } }
            reader.start()
            usleep(100_000)  // both accepted before the output starts (the monitor accepts at once)
            FileManager.default.createFile(atPath: scene.root + "/go", contents: nil)
            // The container finishes and its log is complete although `slow` has read nothing.
            #expect(try scene.exitRecord().hasPrefix(#"{"exit_code":0,"#))
            let lines = try scene.logLines()
            #expect(lines.count == 30001 && lines.last?.text == "done")
            // The reading client got every byte; the other some, then EOF without EXIT.
            try scene.waitFor("the reading client's end") { fast.result != nil }
            let all = try #require(fast.result).get()
            #expect(all.stdout == lines.map { $0.text + "\n" }.joined())
            #expect(all.exitCode == 0)
            let cut = try slow.readToEnd()
            #expect(cut.exitCode == nil)
            #expect(cut.stdout.utf8.count < all.stdout.utf8.count && all.stdout.hasPrefix(cut.stdout))
            #expect(try String(contentsOfFile: scene.dir + "/monitor.log", encoding: .utf8).contains("attach client too slow"))
        }
    }

    @Test func resizeReachesTheTerminal() async throws {
        try await offThePool {
            let scene = try MonitorScene(init: """
                stty -echo
                echo ready
                read x; stty size
                read x; stty size
                """)
            defer { scene.cleanUp() }
            try scene.startRunning(flags: ["--attach", "--stdin", "--tty"])
            let client = try AttachTestClient(directory: scene.dir)
            // The monitor may have read "ready" before we attached: wait for it in the log instead.
            try scene.waitFor("ready") { (try? scene.logLines().map(\.text))?.contains("ready\r") ?? false }
            try client.send(.resize, [0, 100, 0, 30])  // 100 columns, 30 rows
            try client.send(.stdin, "\n")
            #expect(try client.collect(until: "30 100\r\n", on: 1).hasSuffix("30 100\r\n"))
            try client.send(.resize, [0x01, 0x2c, 0, 50])  // 300 × 50
            try client.send(.stdin, "\n")
            #expect(try client.collect(until: "50 300\r\n", on: 1).hasSuffix("50 300\r\n"))
            #expect(try client.readToEnd().exitCode == 0)
        }
    }

    @Test func malformedFramesDisconnectOnlyTheSender() async throws {
        try await offThePool {
            let scene = try MonitorScene(init: "while read line; do echo \"$line\"; done")
            defer { scene.cleanUp() }
            try scene.startRunning(flags: ["--attach", "--stdin"])
            let good = try AttachTestClient(directory: scene.dir)
            for bad: [UInt8] in [[9, 0, 0, 0, 0], [1, 0x7f, 0, 0, 0], [3, 0, 0, 0, 1, 0]] {
                let client = try AttachTestClient(directory: scene.dir)
                try client.sendRaw(bad)
                #expect(try client.readToEnd().exitCode == nil)
            }
            try good.send(.stdin, "still here\n")
            #expect(try good.collect(until: "still here\n", on: 1) == "still here\n")
        }
    }
}

extension MonitorScene {
    func initPid() throws -> Int32 {
        let text = try String(contentsOfFile: dir + "/init.pid", encoding: .utf8)
        guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestFailure("init.pid: \(text)") }
        return pid
    }
}

/// A client of the monitor's attach socket speaking the frames of docs/attach.md, independently of
/// SkiffRuntime's AttachConnection. Blocking, with a 30 s bound on every wait.
final class AttachTestClient: @unchecked Sendable {
    enum Kind: UInt8 { case stdin = 1, closeStdin = 2, resize = 3 }
    struct End { var stdout = ""; var stderr = ""; var exitCode: Int32? }

    private(set) var fd: Int32
    private var buffered: [UInt8] = []
    private var start = 0
    /// The connection ended inside a frame.
    private(set) var truncated = false
    private var chunk = [UInt8](repeating: 0, count: 256 * 1024)
    /// Set by a reader thread (the slow-client test).
    var result: Result<End, Error>?

    init(directory: String) throws {
        let dirFD = open(directory, 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw TestFailure("open \(directory): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(dirFD) }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array("/proc/self/fd/\(dirFD)/attach".utf8CString)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: path.map { UInt8(bitPattern: $0) }) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            fd = -1
            // Say what the monitor was doing: a missing socket means it has ended or never listened.
            let log = (try? String(contentsOfFile: directory + "/monitor.log", encoding: .utf8)) ?? "(none)"
            let exit = (try? String(contentsOfFile: directory + "/exit.json", encoding: .utf8)) ?? "(none)"
            throw TestFailure("connect \(directory)/attach: \(String(cString: strerror(e))); exit.json: \(exit); monitor.log: \(log)")
        }
    }

    func send(_ kind: Kind, _ text: String) throws { try send(kind, Array(text.utf8)) }

    func send(_ kind: Kind, _ payload: [UInt8] = []) throws {
        let n = UInt32(payload.count)
        try sendRaw([kind.rawValue, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload)
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TestFailure("send to the attach socket: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// The next frame, or nil at EOF.
    func frame() throws -> (type: UInt8, payload: [UInt8])? {
        while true {
            let available = buffered.count - start
            if available >= 5 {
                let len = Int(buffered[start + 1]) << 24 | Int(buffered[start + 2]) << 16 | Int(buffered[start + 3]) << 8 | Int(buffered[start + 4])
                if available >= 5 + len {
                    let frame = (buffered[start], Array(buffered[(start + 5)..<(start + 5 + len)]))
                    start += 5 + len
                    return frame
                }
            }
            // Compact before reading more (not per frame: that would copy the buffer for every frame).
            buffered.removeFirst(start)
            start = 0
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 30_000) == 1 else { throw TestFailure("no frame from the monitor in 30 s") }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                // A client cut off as too slow may lose the end of a frame it was being sent.
                truncated = !buffered.isEmpty
                return nil
            }
            buffered += chunk[0..<n]
        }
    }

    /// Output of stream `type` (1 stdout, 2 stderr) until it ends with `suffix`; other streams are skipped.
    func collect(until suffix: String, on type: UInt8) throws -> String {
        var text = ""
        while !text.hasSuffix(suffix) {
            guard let f = try frame() else { throw TestFailure("EOF before \(suffix.debugDescription); got \(text.debugDescription)") }
            if f.type == type { text += String(decoding: f.payload, as: UTF8.self) }
        }
        return text
    }

    /// Everything up to EOF: output per stream and the EXIT frame's code, if one came. Only a client cut
    /// off (no EXIT) may see its last frame truncated.
    func readToEnd() throws -> End {
        var end = End()
        var out: [UInt8] = [], err: [UInt8] = []
        while let f = try frame() {
            switch f.type {
            case 1: out += f.payload
            case 2: err += f.payload
            case 3:
                #expect(f.payload.count == 4)
                end.exitCode = Int32(bitPattern: f.payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            default: throw TestFailure("unknown frame type \(f.type)")
            }
        }
        #expect(!truncated || end.exitCode == nil)
        end.stdout = String(decoding: out, as: UTF8.self)
        end.stderr = String(decoding: err, as: UTF8.self)
        return end
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}
