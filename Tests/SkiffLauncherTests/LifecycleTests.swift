// The create/start/state/kill/delete state machine, exec, OOM, hooks, the console socket, the
// subreaper hand-over, and failed creates that must leave nothing behind.

import SkiffLauncher
import SkiffOCI
import Testing
#if canImport(Glibc)
import Glibc
#endif

func stateOf(_ b: Bundle, _ id: String? = nil) -> State? {
    let r = Proc.run(b.cli(["state", id ?? b.id]))
    guard r.status == 0 else { return nil }
    return try? State(jsonText: r.stdout)
}

/// Pids whose command line mentions `needle` (to find stray processes of a test).
func processesMentioning(_ needle: String) -> [Int32] {
    guard let d = opendir("/proc") else { return [] }
    defer { closedir(d) }
    var out: [Int32] = []
    while let e = readdir(d) {
        let name = withUnsafePointer(to: e.pointee.d_name) { p in
            p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        guard let pid = Int32(name), pid != getpid() else { continue }
        if let c = Files.read("/proc/\(pid)/cmdline"), c.contains(needle), Files.read("/proc/\(pid)/stat")?.contains(") Z ") != true {
            out.append(pid)
        }
    }
    return out
}

func parentPid(_ pid: Int32) -> Int32? {
    for line in (Files.read("/proc/\(pid)/status") ?? "").split(separator: "\n") where line.hasPrefix("PPid:") {
        return Int32(line.dropFirst(5).trimmingPrefix(while: { $0 == "\t" || $0 == " " }))
    }
    return nil
}

@Suite("Lifecycle", .enabled(if: TestEnv.isRoot))
struct LifecycleTests {
    @Test func stateMachineWithSubreaperMonitor() throws {
        let b = Bundle("sm", args: ["sh", "-c", "echo ready; echo to-stderr >&2; trap 'echo got TERM; exit 3' TERM; while true; do sleep 0.05; done"])
        defer { b.cleanup() }
        b.writeConfig()
        let m = Monitor(bundle: b, createArgs: ["create", "--bundle", b.dir, "--pid-file", b.dir + "/pid", b.id])
        try #require(m.createStatus() == 0, "create failed: \(Files.read(b.dir + "/monitor.log") ?? "")")
        let pid = try #require(Int32(Files.read(b.dir + "/pid") ?? ""))

        let created = try #require(stateOf(b))
        #expect(created.status == .created)
        #expect(created.pid == pid)
        #expect(created.bundle == b.dir)
        // create has returned: the init now belongs to the subreaper, and has not run the program.
        #expect(parentPid(pid) == m.pid)
        #expect(Files.read("/proc/\(pid)/cmdline")?.contains("create") == true)
        #expect(Proc.run(b.cli(["list", "--format", "json"])).stdout.contains(b.id))

        #expect(b.skiff("start", b.id).status == 0)
        #expect(Proc.eventually { stateOf(b)?.status == .running })
        #expect(Proc.eventually { catches(pid, SIGTERM) })
        let again = b.skiff("start", b.id)
        #expect(again.status == 1)
        #expect(again.stderr.contains("already running"))

        #expect(b.skiff("kill", b.id, "TERM").status == 0)
        #expect(Proc.eventually { stateOf(b)?.status == .stopped })
        #expect(stateOf(b)?.pid == 0)
        let late = b.skiff("kill", b.id, "KILL")
        #expect(late.status == 1)
        #expect(late.stderr.contains("not running"))
        #expect(b.skiff("start", b.id).status == 1)

        #expect(b.skiff("delete", b.id).status == 0)
        #expect(stateOf(b) == nil)
        #expect(b.skiff("delete", b.id).status == 1)
        #expect(b.skiff("delete", "--force", b.id).status == 0)

        let res = try #require(m.result())
        #expect(res.create == 0)
        #expect(res.reaped.contains { $0.pid == pid && $0.code == 3 }, "reaped: \(res.reaped)")
        #expect(res.stdout == "ready\ngot TERM\n")
        #expect(res.stderr == "to-stderr\n")
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func deleteForceKillsARunningContainer() throws {
        let b = Bundle("force", args: ["sleep", "300"])
        defer { b.cleanup() }
        b.writeConfig()
        #expect(b.skiffDetached("run", "-d", "--bundle", b.dir, "--pid-file", b.dir + "/pid", b.id).status == 0)
        let pid = try #require(Int32(Files.read(b.dir + "/pid") ?? ""))
        #expect(stateOf(b)?.status == .running)
        let refused = b.skiff("delete", b.id)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("not stopped"))
        #expect(stateOf(b)?.status == .running)
        #expect(b.skiff("delete", "--force", b.id).status == 0)
        #expect(Proc.eventually { Files.read("/proc/\(pid)/stat").map { $0.contains(") Z ") } ?? true })
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func deleteOfACreatedContainerKillsItsInit() throws {
        let b = Bundle("delcreated", args: ["echo", "never printed"])
        defer { b.cleanup() }
        b.writeConfig()
        let m = Monitor(bundle: b, createArgs: ["create", "--bundle", b.dir, "--pid-file", b.dir + "/pid", b.id])
        try #require(m.createStatus() == 0)
        let pid = try #require(Int32(Files.read(b.dir + "/pid") ?? ""))
        #expect(b.skiff("delete", b.id).status == 0)
        let res = try #require(m.result())
        #expect(res.reaped.contains { $0.pid == pid && $0.code == 137 })
        #expect(res.stdout.isEmpty)
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func killOfACreatedContainerThenStartFails() throws {
        let b = Bundle("killcreated", args: ["true"])
        defer { b.cleanup() }
        b.writeConfig()
        let m = Monitor(bundle: b, createArgs: ["create", "--bundle", b.dir, b.id])
        try #require(m.createStatus() == 0)
        #expect(b.skiff("kill", b.id, "9").status == 0)
        #expect(Proc.eventually { stateOf(b)?.status == .stopped })
        let st = b.skiff("start", b.id)
        #expect(st.status == 1)
        #expect(st.stderr.contains("stopped"))
        #expect(b.skiff("delete", b.id).status == 0)
        _ = m.result()
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func execJoinsTheContainer() throws {
        let b = Bundle("exec", args: ["sleep", "300"])
        defer { b.cleanup() }
        b.spec.process!.env.append("FROM_SPEC=1")
        b.spec.hostname = "exec-host"
        b.writeConfig()
        #expect(b.skiffDetached("run", "-d", "--bundle", b.dir, "--pid-file", b.dir + "/pid", b.id).status == 0)

        let r = b.skiff("exec", "--env", "EXTRA=2", "--cwd", "/etc", b.id, "sh", "-c",
                        "echo $$ $FROM_SPEC $EXTRA $(pwd) $(hostname); tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/self/cgroup; exit 5")
        #expect(r.status == 5, "\(r)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.first.map { $0.hasSuffix(" 1 2 /etc exec-host") && !$0.hasPrefix("1 ") } == true, "\(r)")
        #expect(lines.count > 1 && lines[1] == "sleep 300 ")
        // In the container's cgroup: by path on v1; on v2 the bundle has a cgroup namespace, so
        // the exec'd process sees its group as the root, like the container does.
        #expect(r.stdout.contains(TestEnv.cgroupVersion == .v1 ? b.id : "0::/\n"), "\(r)")

        // --process with a full process, as a user.
        let proc = Process(user: User(uid: 1000, gid: 1000), args: ["id", "-u"], env: ["PATH=/bin"], cwd: "/")
        Files.write(b.dir + "/process.json", proc.json.prettyText)
        let p = b.skiff("exec", "--process", b.dir + "/process.json", b.id)
        #expect(p.status == 0)
        #expect(p.stdout == "1000\n")

        // Detached: returns at once; the process runs inside the container.
        let d = b.skiffDetached("exec", "-d", "--pid-file", b.dir + "/epid", b.id, "sleep", "200")
        #expect(d.status == 0)
        let epid = try #require(Int32(Files.read(b.dir + "/epid") ?? ""))
        #expect(Proc.run(b.cli(["ps", "--format", "json", b.id])).stdout.contains(String(epid)))
        #expect(Files.read("/proc/\(epid)/cgroup")?.contains("/" + b.id) == true)

        let missing = b.skiff("exec", b.id, "no-such-program")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("executable file not found"))

        // kill --all reaches the exec'd process too; then a plain delete is enough.
        #expect(b.skiff("kill", "--all", b.id, "KILL").status == 0)
        #expect(Proc.eventually { stateOf(b)?.status == .stopped })
        #expect(Proc.eventually { Files.read("/proc/\(epid)/stat").map { $0.contains(") Z ") } ?? true })
        #expect(b.skiff("delete", b.id).status == 0)
        let stopped = b.skiff("exec", b.id, "true")
        #expect(stopped.status == 1)
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func oomKillIsEnforcedAndDetectable() throws {
        // tail keeps every byte of a line that never ends: it grows until the limit kills it.
        let b = Bundle("oom", args: ["tail", "/dev/zero"])
        defer { b.cleanup() }
        b.spec.linux!.resources!.memory = MemoryResources(limit: 32 << 20, swap: 32 << 20)
        b.writeConfig()
        let m = Monitor(bundle: b, createArgs: ["create", "--bundle", b.dir, "--pid-file", b.dir + "/pid", b.id])
        try #require(m.createStatus() == 0)
        let pid = try #require(Int32(Files.read(b.dir + "/pid") ?? ""))
        let cg = try Cgroup(path: "/" + b.id)
        #expect(try cg.stats().oomKillCount == 0)
        #expect(b.skiff("start", b.id).status == 0)
        let res = try #require(m.result(timeout: 120))
        #expect(res.reaped.contains { $0.pid == pid && $0.code == 137 }, "reaped: \(res.reaped)")
        let stats = try cg.stats()
        #expect(stats.oomKillCount >= 1)
        #expect(stats.memoryLimitBytes == 32 << 20)
        #expect(stateOf(b)?.status == .stopped)
        #expect(b.skiff("delete", b.id).status == 0)
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func hooksRunWithTheState() throws {
        let b = Bundle("hooks", args: ["true"])
        defer { b.cleanup() }
        let out = b.dir + "/hooks"
        mkdir(out, 0o777)
        func hook(_ kind: String, dir: String = out) -> Hook {
            Hook(path: "/bin/sh", args: ["sh", "-c", "cat > \(dir)/\(kind).json"])
        }
        b.spec.mounts.append(.bind(out, to: "/hooks"))
        b.spec.hooks = Hooks(prestart: [hook("prestart")], createRuntime: [hook("createRuntime")],
                             createContainer: [hook("createContainer")], startContainer: [hook("startContainer", dir: "/hooks")],
                             poststart: [hook("poststart")], poststop: [hook("poststop")])
        let r = b.run()
        #expect(r.status == 0, "\(r)")
        for kind in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] {
            let text = Files.read("\(out)/\(kind).json") ?? ""
            let st = try? State(jsonText: text)
            #expect(st?.id == b.id, "\(kind) hook got \(text)")
            #expect(st?.bundle == b.dir)
        }
        #expect(try State(jsonText: Files.read(out + "/startContainer.json") ?? "").pid == 1)

        // A failing hook fails create and undoes it.
        b.spec.hooks = Hooks(createRuntime: [Hook(path: "/bin/sh", args: ["sh", "-c", "echo nope; exit 3"])])
        let f = b.run()
        #expect(f.status == 1)
        #expect(f.stderr.contains("createRuntime hook /bin/sh"))
        #expect(f.stderr.contains("exit status 3: nope"))
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func consoleSocketReceivesThePty() throws {
        let b = Bundle("tty", args: ["sh", "-c", "tty; echo hi"])
        defer { b.cleanup() }
        b.spec.process!.terminal = true
        b.spec.process!.consoleSize = ConsoleSize(height: 30, width: 100)
        b.spec.process!.args = ["sh", "-c", "tty; stty size; echo hi"]
        b.writeConfig()
        let sock = b.dir + "/console.sock"
        let script = """
        import array, os, socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
        open(sys.argv[1] + ".ready", "w").close()
        c, _ = s.accept()
        msg, fds, _, _ = socket.recv_fds(c, 1024, 1)
        out = b""
        while True:
            try:
                d = os.read(fds[0], 4096)
            except OSError:
                break
            if not d: break
            out += d
        open(sys.argv[2], "wb").write(out)
        """
        Files.write(b.dir + "/console.py", script)
        let receiver = Proc.start(["python3", b.dir + "/console.py", sock, b.dir + "/console.out"])
        defer { kill(receiver, SIGKILL); _ = Proc.wait(receiver, timeout: 5) }
        #expect(Proc.eventually { Files.exists(sock + ".ready") })
        let r = b.skiff("run", "--bundle", b.dir, "--console-socket", sock, b.id)
        #expect(r.status == 0, "\(r)")
        #expect(Proc.wait(receiver, timeout: 20) == 0)
        let text = Files.read(b.dir + "/console.out") ?? ""
        #expect(text.contains("/dev/pts/0"), "console output: \(text)")
        #expect(text.contains("30 100"))
        #expect(text.contains("hi"))
        // Without a socket, a terminal is refused up front.
        let no = b.skiff("run", "--bundle", b.dir, b.id)
        #expect(no.status == 1)
        #expect(no.stderr.contains("console-socket"))
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }
}

/// Each way create can fail after doing part of its work; none may leave anything behind.
struct FailureCase: Sendable, CustomTestStringConvertible {
    let name: String
    let expectInError: String
    let configure: @Sendable (inout Spec) -> Void
    var testDescription: String { name }
}

let failureCases: [FailureCase] = [
    FailureCase(name: "program not found", expectInError: "executable file not found") { s in
        s.process!.args = ["no-such-program"]
    },
    FailureCase(name: "program path missing", expectInError: "/no/such/binary") { s in
        s.process!.args = ["/no/such/binary"]
    },
    FailureCase(name: "bind source missing", expectInError: "stat /nonexistent-skiff-source") { s in
        s.mounts.append(.bind("/nonexistent-skiff-source", to: "/data"))
    },
    FailureCase(name: "impossible cpuset", expectInError: "cpuset.cpus") { s in
        s.linux!.resources!.cpu = CPUResources(cpus: "4095")
    },
    FailureCase(name: "namespace path missing", expectInError: "/proc/999999999/ns/net") { s in
        s.linux!.namespaces.removeAll { $0.type == .network }
        s.linux!.namespaces.append(Namespace(.network, path: "/proc/999999999/ns/net"))
    },
    FailureCase(name: "sysctl outside the container's namespaces", expectInError: "kernel.panic") { s in
        s.linux!.sysctl = ["kernel.panic": "1"]
    },
    FailureCase(name: "cwd is a file", expectInError: "chdir /etc/passwd") { s in
        s.process!.cwd = "/etc/passwd"
    },
    FailureCase(name: "mount fails after others succeeded", expectInError: "mount /bad") { s in
        s.mounts.append(Mount(destination: "/bad", type: "no-such-fs", source: "none"))
    },
    FailureCase(name: "createContainer hook fails inside the new namespaces", expectInError: "createContainer hook") { s in
        s.hooks = Hooks(createContainer: [Hook(path: "/bin/false")])
    },
    FailureCase(name: "unsupported user namespace", expectInError: "user namespaces") { s in
        s.linux!.namespaces.append(Namespace(.user))
    },
]

@Suite("Failed create leaves nothing", .enabled(if: TestEnv.isRoot))
struct FailedCreateTests {
    @Test(arguments: failureCases)
    func nothingLeftBehind(_ c: FailureCase) throws {
        let b = Bundle("fail", args: ["true"])
        defer { b.cleanup() }
        c.configure(&b.spec)
        b.writeConfig()
        let r = b.skiff("create", "--bundle", b.dir, b.id)
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("skiff-runc: "), "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1, "error is not one line: \(r.stderr)")
        #expect(r.stderr.contains(c.expectInError), "\(r.stderr)")
        #expect(processesMentioning(b.id).isEmpty)
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
        // The id is free again.
        #expect(b.skiff("state", b.id).status == 1)
    }
}
