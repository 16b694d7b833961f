// Test support: spawning processes, the busybox rootfs, bundles, and a subreaper "monitor".
//
// Everything a test creates carries "skiff" in its name (ids skiff-t-*, cgroups /skiff-t-*,
// directories /tmp/skiff-t-*), so leaks are easy to find.

import CLinux
import SkiffLauncher
import SkiffOCI
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Processes

struct Output: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var description: String { "status \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

enum Proc {
    /// Runs a command, capturing stdout and stderr (or sending them to a file), waiting at most
    /// `timeout` seconds (then SIGKILL). The child's exit code (128+signal when killed).
    static func run(_ args: [String], stdoutFile: String? = nil, timeout: Int = 120) -> Output {
        var outP: [Int32] = [-1, -1], errP: [Int32] = [-1, -1]
        precondition(clx_pipe2(&outP, O_CLOEXEC) == 0 && clx_pipe2(&errP, O_CLOEXEC) == 0)
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        if let f = stdoutFile {
            posix_spawn_file_actions_addopen(&fa, 1, f, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&fa, 1, 2)
        } else {
            posix_spawn_file_actions_adddup2(&fa, outP[1], 1)
            posix_spawn_file_actions_adddup2(&fa, errP[1], 2)
        }
        let pid = spawn(args, &fa)
        close(outP[1])
        close(errP[1])
        var out: [UInt8] = [], err: [UInt8] = []
        let deadline = now() + Double(timeout)
        var open = [outP[0], errP[0]]
        var buf = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty && now() < deadline {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let r = poll(&fds, nfds_t(fds.count), 200)
            if r <= 0 { continue }
            for f in fds where f.revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(f.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if f.fd == outP[0] { out += buf[0..<n] } else { err += buf[0..<n] }
                } else {
                    open.removeAll { $0 == f.fd }
                }
            }
        }
        close(outP[0])
        close(errP[0])
        let status = wait(pid, timeout: max(1, deadline - now()))
        return Output(status: status, stdout: String(decoding: out, as: UTF8.self),
                      stderr: String(decoding: err, as: UTF8.self))
    }

    /// Starts a command in the background with stdio from/to /dev/null (or a file).
    static func start(_ args: [String], stdoutFile: String? = nil) -> pid_t {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, stdoutFile ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fa, 1, 2)
        return spawn(args, &fa)
    }

    private static func spawn(_ args: [String], _ fa: inout posix_spawn_file_actions_t) -> pid_t {
        var pid: pid_t = 0
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // Test threads block signals; children get a clean mask and default handlers.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let rc = posix_spawnp(&pid, args[0], &fa, &attr, argv, clx_environ())
        precondition(rc == 0, "posix_spawnp \(args[0]) failed: \(rc)")
        return pid
    }

    /// Waits for a child; SIGKILLs it after `timeout` seconds. Returns the shell-style exit code.
    static func wait(_ pid: pid_t, timeout: Double) -> Int32 {
        let deadline = now() + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return -1 }
            if now() > deadline { kill(pid, SIGKILL) }
            usleep(2000)
        }
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Polls `cond` every 10 ms for up to `timeout` seconds.
    static func eventually(timeout: Double = 20, _ cond: () -> Bool) -> Bool {
        let deadline = now() + timeout
        while now() < deadline {
            if cond() { return true }
            usleep(10_000)
        }
        return cond()
    }
}

// MARK: - Files

enum Files {
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        precondition(fd >= 0, "open \(path): \(errno)")
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func mkdtemp(_ prefix: String) -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { Glibc.mkdtemp($0.baseAddress!) }
        precondition(p != nil)
        return String(cString: p!)
    }

    static func removeTree(_ path: String) {
        _ = Proc.run(["rm", "-rf", "--one-file-system", path])
    }
}

// MARK: - Environment

enum TestEnv {
    /// The package root (three levels above this file).
    static let packageRoot: String = {
        var parts = #filePath.split(separator: "/").map(String.init)
        parts.removeLast(3)
        return "/" + parts.joined(separator: "/")
    }()

    /// skiff-runc next to the test bundle (same build directory), or $SKIFF_RUNC.
    static let skiffRunc: String = {
        if let e = getenv("SKIFF_RUNC") { return String(cString: e) }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var dir = exe
        while !dir.isEmpty {
            dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)])
            if Files.exists(dir + "/skiff-runc") { return dir + "/skiff-runc" }
            if dir.hasSuffix("/debug") || dir.hasSuffix("/release") { break }
        }
        return packageRoot + "/.build-launcher/debug/skiff-runc"
    }()

    static let runc: String? = ["/usr/sbin/runc", "/usr/bin/runc"].first { Files.exists($0) }

    static var isRoot: Bool { geteuid() == 0 }

    /// One busybox rootfs for the whole test run, removed at exit.
    static let rootfs: String = {
        let dir = Files.mkdtemp("skiff-t-rootfs") + "/rootfs"
        let r = Proc.run([packageRoot + "/scripts/build-rootfs", dir])
        precondition(r.status == 0, "build-rootfs failed: \(r)")
        rootfsToRemove = String(dir.dropLast("/rootfs".count))
        atexit { if let d = TestEnv.rootfsToRemove { Files.removeTree(d) } }
        return dir
    }()
    nonisolated(unsafe) static var rootfsToRemove: String?

    static var cgroupVersion: CgroupVersion { CgroupVersion.detect() }

    static func uniqueID(_ tag: String) -> String {
        let r = UInt64.random(in: 0...UInt64.max)
        return "skiff-t-\(tag)-\(String(r & 0xFFFF_FFFF, radix: 16))"
    }
}

// MARK: - Bundles and runtimes

/// A bundle directory with config.json, a state root for each runtime, and cleanup of all of it.
final class Bundle {
    let id: String
    let dir: String
    let stateRoot: String
    var spec: Spec

    init(_ tag: String, args: [String]) {
        id = TestEnv.uniqueID(tag)
        dir = Files.mkdtemp(id)
        stateRoot = dir + "/state"
        // As `runc spec` writes it on this host (a cgroup namespace on v2).
        spec = Spec.defaultLinux(args: args, rootfs: TestEnv.rootfs, cgroupNamespace: TestEnv.cgroupVersion == .v2)
        spec.linux!.cgroupsPath = "/" + id
    }

    var configPath: String { dir + "/config.json" }

    func writeConfig() { Files.write(configPath, spec.json.prettyText) }

    /// `skiff-runc --root <state> ARGS` (or runc with its own state root).
    func cli(_ args: [String], runtime: String = TestEnv.skiffRunc) -> [String] {
        [runtime, "--root", runtime == TestEnv.skiffRunc ? stateRoot : stateRoot + "-runc"] + args
    }

    func skiff(_ args: String...) -> Output { Proc.run(cli(args)) }

    /// For commands that leave a process running (run -d, exec -d): its output goes to a file, so
    /// we wait for the command, not for EOF on pipes the container keeps open.
    func skiffDetached(_ args: String...) -> Output {
        let log = dir + "/detached.log"
        unlink(log)
        let r = Proc.run(cli(args), stdoutFile: log)
        return Output(status: r.status, stdout: "", stderr: Files.read(log) ?? "")
    }

    /// `run` with the spec as it is now, under `id` (+ suffix) for the given runtime.
    func run(runtime: String = TestEnv.skiffRunc, suffix: String = "") -> Output {
        var s = spec
        s.linux!.cgroupsPath = "/" + id + suffix
        Files.write(configPath, s.json.prettyText)
        return Proc.run(cli(["run", "--bundle", dir, id + suffix], runtime: runtime))
    }

    /// Removes containers (both runtimes), cgroups, and the directory.
    func cleanup() {
        for (rt, root) in [(TestEnv.skiffRunc, stateRoot), (TestEnv.runc ?? "", stateRoot + "-runc")] where !rt.isEmpty {
            for name in listDir(root) { _ = Proc.run([rt, "--root", root, "delete", "--force", name]) }
        }
        Files.removeTree(dir)
    }

    func listDir(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }
}

/// Whether `pid` has a handler installed for `sig` (SigCgt in /proc/PID/status): a shell's trap
/// is in place and a signal sent now will be caught.
func catches(_ pid: Int32, _ sig: Int32) -> Bool {
    for line in (Files.read("/proc/\(pid)/status") ?? "").split(separator: "\n") where line.hasPrefix("SigCgt:") {
        let hex = line.dropFirst(7).filter { !$0.isWhitespace }
        guard let mask = UInt64(hex, radix: 16) else { return false }
        return mask & (1 << UInt64(sig - 1)) != 0
    }
    return false
}

/// Asserts nothing of a container remains: state directory, cgroup directories, mounts of its
/// rootfs, processes in its cgroup.
func expectNoLeftovers(id: String, stateRoot: String, cgroupPath: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!Files.exists(stateRoot + "/" + id), "state directory left behind", sourceLocation: sourceLocation)
    let roots: [String]
    if TestEnv.cgroupVersion == .v2 {
        roots = ["/sys/fs/cgroup"]
    } else {
        roots = ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio"].map { "/sys/fs/cgroup/" + $0 }
    }
    for r in roots {
        #expect(!Files.exists(r + cgroupPath), "cgroup \(r + cgroupPath) left behind", sourceLocation: sourceLocation)
    }
    let mounts = Files.read("/proc/self/mountinfo") ?? ""
    #expect(!mounts.contains(id), "a mount mentioning \(id) is left", sourceLocation: sourceLocation)
}

// MARK: - Monitor (subreaper)

/// A stand-in for skiffd's per-container monitor: a Python process that makes itself a child
/// subreaper, runs `skiff-runc create` with pipes as the container's stdout/stderr, and after
/// create returns reaps the re-parented container init, recording its pid, exit code and output.
final class Monitor {
    static let script = #"""
    import ctypes, json, os, selectors, sys
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0          # PR_SET_CHILD_SUBREAPER
    result_path, created_path = sys.argv[1], sys.argv[2]
    cmd = sys.argv[3:]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(out_w, 1); os.dup2(err_w, 2)
        os.execvp(cmd[0], cmd)
    os.close(out_w); os.close(err_w)
    _, st = os.waitpid(pid, 0)
    create_rc = os.waitstatus_to_exitcode(st)
    with open(created_path + ".tmp", "w") as f: f.write(str(create_rc))
    os.rename(created_path + ".tmp", created_path)
    out, err = b"", b""
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ); sel.register(err_r, selectors.EVENT_READ)
    openfds = 2
    while openfds:
        for key, _ in sel.select():
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fd); openfds -= 1
            elif key.fd == out_r: out += data
            else: err += data
    reaped = []
    while True:
        try:
            p, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        code = os.waitstatus_to_exitcode(st)
        reaped.append([p, 128 - code if code < 0 else code])
    res = {"create": create_rc, "reaped": reaped, "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}
    with open(result_path + ".tmp", "w") as f: json.dump(res, f)
    os.rename(result_path + ".tmp", result_path)
    """#

    let pid: pid_t
    let dir: String

    struct Result {
        var create: Int64
        var reaped: [(pid: Int32, code: Int32)]
        var stdout: String
        var stderr: String
    }

    /// Starts `create` (args after the runtime) under the monitor.
    init(bundle: Bundle, createArgs: [String]) {
        dir = bundle.dir
        unlink(dir + "/created")
        unlink(dir + "/monitor.json")
        let scriptPath = dir + "/monitor.py"
        Files.write(scriptPath, Monitor.script)
        pid = Proc.start(["python3", scriptPath, dir + "/monitor.json", dir + "/created"] + bundle.cli(createArgs),
                         stdoutFile: dir + "/monitor.log")
    }

    /// create's exit code, once it has returned.
    func createStatus(timeout: Double = 60) -> Int? {
        guard Proc.eventually(timeout: timeout, { Files.exists(dir + "/created") }) else { return nil }
        return Int(Files.read(dir + "/created") ?? "")
    }

    /// Waits for the monitor to finish (every reparented process reaped).
    func result(timeout: Double = 60) -> Result? {
        let st = Proc.wait(pid, timeout: timeout)
        guard st == 0, let text = Files.read(dir + "/monitor.json"),
              let j = try? JSON(parsing: text) else { return nil }
        let reaped = (j["reaped"]?.arrayValue ?? []).compactMap { e -> (Int32, Int32)? in
            guard let a = e.arrayValue, a.count == 2, let p = a[0].int64Value, let c = a[1].int64Value else { return nil }
            return (Int32(p), Int32(c))
        }
        return Result(create: j["create"]?.int64Value ?? -1, reaped: reaped.map { (pid: $0.0, code: $0.1) },
                      stdout: j["stdout"]?.stringValue ?? "", stderr: j["stderr"]?.stringValue ?? "")
    }
}
