// The container's first process, between fork and the user's program.
//
// It runs in a freshly forked, single-threaded copy of skiff-runc and talks to its parent over a
// SOCK_SEQPACKET pair (one message per datagram):
//
//   parent -> init   G  go (the parent set up what it must first); on v1 the init then moves
//                       itself into its cgroup (Cgroup.Entry)
//   init -> parent   H  namespaces exist: run prestart/createRuntime hooks now
//   parent -> init   C  hooks done, continue
//   init -> parent   R  ready: everything is applied, waiting for start
//   parent -> init   S  start now (`run`; `create` uses the exec fifo instead)
//   init -> parent   E<text>  failed; the init exits 1
//
// After `R` in create mode the init closes the socket and blocks reading the exec fifo (opened
// O_RDWR by the parent before fork, so it exists without a host path after pivot_root); `start`
// writes one byte into it. The socket is close-on-exec, so in run mode the parent sees EOF once
// the user's program has been exec'd.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

/// Everything the init needs, prepared and validated by the parent before fork.
struct InitPlan {
    var id: String
    var spec: Spec
    var process: Process
    var bundle: String
    var rootfs: String
    var mounts: [PlannedMount]
    var cgroupMount: CgroupMountSource
    /// Namespaces to join (not pid: the parent handles that), opened before fork.
    var joins: [(kind: NamespaceKind, fd: Int32, path: String)]
    /// CLONE_NEW* flags for unshare (not pid).
    var unshareFlags: Int32
    var newCgroupNamespace: Bool
    var newNetworkNamespace: Bool
    var caps: Caps.Sets
    var rlimits: [(Int32, UInt64, UInt64)]
    var seccomp: SeccompProgram?
    var consoleSocket: String?
    var sync: Int32
    /// Exec fifo (create mode) or -1 (run mode: wait for `S` on the socket).
    var fifo: Int32
    var preserveFDs: Int
    var hasRuntimeHooks: Bool
    /// v1: `tasks` files to write "0" into (see Cgroup.Entry).
    var selfAttach: [String]
}

enum SyncChannel {
    static func send(_ fd: Int32, _ message: String) {
        let bytes = Array(message.utf8)
        _ = bytes.withUnsafeBytes { p in Sys.retrying { Glibc.send(fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL)) } }
    }

    /// One message, or nil at EOF (peer closed or exec'd).
    static func receive(_ fd: Int32) -> String? {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { p in Sys.retrying { recv(fd, p.baseAddress, p.count, 0) } }
        if n <= 0 { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }

    static func expect(_ fd: Int32, _ want: String, step: String) throws(LauncherError) {
        guard let m = receive(fd) else {
            throw LauncherError(.initFailed, step: step, detail: "the parent went away")
        }
        guard m == want else { throw LauncherError(.initFailed, step: step, detail: "unexpected message \"\(m)\"") }
    }
}

enum ContainerInit {
    static func run(_ p: InitPlan) -> Never {
        do {
            try main(p)
        } catch {
            SyncChannel.send(p.sync, "E" + error.description)
            _exit(1)
        }
    }

    private static func main(_ p: InitPlan) throws(LauncherError) -> Never {
        _ = clx_reset_signal_handlers()
        _ = clx_unblock_all_signals()
        try SyncChannel.expect(p.sync, "G", step: "init")
        // Into the cgroup first, so that the namespaces below are charged to the container.
        try Cgroup.attachSelf(p.selfAttach)
        Trace.mark("init: in cgroup")
        // Session leader, so a terminal can become our controlling tty and so we do not share the
        // caller's process group.
        if clx_setsid() != 0 { throw .sys("init", "setsid") }

        for j in p.joins where j.kind != .mount {
            if clx_setns(j.fd, nsFlag(j.kind)) != 0 { throw .sys("join \(j.kind.rawValue) namespace", "setns", j.path) }
            close(j.fd)
        }
        if p.unshareFlags != 0 && clx_unshare(p.unshareFlags) != 0 {
            throw .sys("namespaces", "unshare", nsNames(p.unshareFlags))
        }

        // Per-namespace settings go through the host's /proc while we still see it.
        if let h = p.spec.hostname {
            if clx_sethostname(h, h.utf8.count) != 0 { throw .sys("hostname", "sethostname", h) }
        }
        if let d = p.spec.domainname {
            if clx_setdomainname(d, d.utf8.count) != 0 { throw .sys("domainname", "setdomainname", d) }
        }
        for key in (p.spec.linux?.sysctl ?? [:]).keys.sorted() {
            let path = "/proc/sys/" + key.replacingDots()
            try Sys.writeString(path, p.spec.linux!.sysctl[key]!, step: "sysctl \(key)")
        }
        if let adj = p.process.oomScoreAdj {
            try Sys.writeString("/proc/self/oom_score_adj", String(adj), step: "oomScoreAdj")
        }

        Trace.mark("init: namespaces")
        if p.hasRuntimeHooks {
            SyncChannel.send(p.sync, "H")
            try SyncChannel.expect(p.sync, "C", step: "hooks")
        }

        var consoleSock: Int32 = -1
        if let cs = p.consoleSocket {
            consoleSock = clx_connect_unix(cs, Int32(SOCK_STREAM.rawValue))
            if consoleSock < 0 { throw .sys("console", "connect", cs) }
        }

        try Rootfs.setup(p) { () throws(LauncherError) in
            for h in p.spec.hooks?.createContainer ?? [] {
                try HookRunner.run(h, kind: "createContainer", state: containerState(p))
            }
        }

        Trace.mark("init: rootfs")
        if consoleSock >= 0 {
            try Console.setup(socket: consoleSock, size: p.process.consoleSize)
            close(consoleSock)
        }

        if let l = p.spec.linux {
            try Rootfs.makeReadonly(l.readonlyPaths)
            try Rootfs.mask(l.maskedPaths, mountLabel: l.mountLabel)
        }
        if p.spec.root?.readonly == true { try Rootfs.remountReadonly("/", step: "readonly root") }

        try Rlimits.apply(p.rlimits)
        if let per = p.spec.linux?.personality {
            let v: UInt = per.domain == "LINUX32" ? 0x0008 : 0
            if clx_personality(v) != 0 { throw .sys("personality", "personality", per.domain) }
        }
        if let io = p.process.ioPriority { try applyIOPriority(io) }

        var env = p.process.env
        if !env.contains(where: { $0.hasPrefix("HOME=") }) {
            env.append("HOME=" + homeDirectory(uid: p.process.user.uid))
        }
        if let m = p.process.user.umask { umask(mode_t(m)) } else { umask(0o022) }

        if let s = p.seccomp, !p.process.noNewPrivileges { try s.load() }
        try Caps.applyUserAndCapabilities(user: p.process.user, caps: p.caps)
        if chdir(p.process.cwd) != 0 { throw .sys("cwd", "chdir", p.process.cwd) }
        let path = try Exec.lookPath(p.process.args[0], env: env)
        if p.process.noNewPrivileges && clx_set_no_new_privs() != 0 { throw .sys("noNewPrivileges", "prctl(PR_SET_NO_NEW_PRIVS)") }
        if let s = p.seccomp, p.process.noNewPrivileges { try s.load() }
        // Inherited descriptors beyond stdio (and --preserve-fds) must not reach the program.
        _ = clx_close_range(UInt32(3 + p.preserveFDs), UInt32.max, 4 /* CLOSE_RANGE_CLOEXEC */)

        Trace.mark("init: process setup")
        SyncChannel.send(p.sync, "R")
        if p.fifo >= 0 {
            close(p.sync)
            var b: UInt8 = 0
            let n = Sys.retrying { read(p.fifo, &b, 1) }
            if n != 1 { _exit(1) }
            close(p.fifo)
        } else {
            try SyncChannel.expect(p.sync, "S", step: "start")
        }

        for h in p.spec.hooks?.startContainer ?? [] {
            try HookRunner.run(h, kind: "startContainer", state: containerState(p))
        }
        Exec.execve(path, p.process.args, env, report: p.fifo >= 0 ? -1 : p.sync)
    }

    /// State as the container sees it (hooks run inside it).
    static func containerState(_ p: InitPlan) -> State {
        State(id: p.id, status: .created, pid: getpid(), bundle: p.bundle, annotations: p.spec.annotations)
    }

    static func nsFlag(_ k: NamespaceKind) -> Int32 {
        switch k {
        case .pid: return Int32(CLX_CLONE_NEWPID)
        case .network: return Int32(CLX_CLONE_NEWNET)
        case .mount: return Int32(CLX_CLONE_NEWNS)
        case .ipc: return Int32(CLX_CLONE_NEWIPC)
        case .uts: return Int32(CLX_CLONE_NEWUTS)
        case .user: return Int32(CLX_CLONE_NEWUSER)
        case .cgroup: return Int32(CLX_CLONE_NEWCGROUP)
        case .time: return Int32(CLX_CLONE_NEWTIME)
        }
    }

    static func nsNames(_ flags: Int32) -> String {
        NamespaceKind.allCases.filter { flags & nsFlag($0) != 0 }.map(\.rawValue).joined(separator: ",")
    }

    /// HOME from the container's /etc/passwd, "/" when the uid is not listed.
    static func homeDirectory(uid: UInt32) -> String {
        for line in (Sys.readStringIfPresent("/etc/passwd") ?? "").split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 6, UInt32(f[2]) == uid, !f[5].isEmpty { return String(f[5]) }
        }
        return "/"
    }

    static func applyIOPriority(_ io: IOPriority) throws(LauncherError) {
        let cls: Int32
        switch io.ioClass {
        case "IOPRIO_CLASS_RT": cls = 1
        case "IOPRIO_CLASS_BE": cls = 2
        case "IOPRIO_CLASS_IDLE": cls = 3
        default: throw .config("unknown ioPriority class \"\(io.ioClass)\"")
        }
        if clx_ioprio_set(1 /* IOPRIO_WHO_PROCESS */, 0, (cls << 13) | Int32(io.priority)) != 0 {
            throw .sys("ioPriority", "ioprio_set", io.ioClass)
        }
    }
}

extension String {
    /// sysctl key to /proc/sys path: dots become slashes (a key given with slashes stays).
    func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
}

/// The console: a pty created inside the container, its master sent to --console-socket.
enum Console {
    static func setup(socket: Int32, size: ConsoleSize?, bindConsole: Bool = true) throws(LauncherError) {
        let master = Sys.retrying { open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC) }
        if master < 0 { throw .sys("console", "open", "/dev/ptmx") }
        defer { close(master) }
        if clx_unlockpt(master) != 0 { throw .sys("console", "ioctl(TIOCSPTLCK)", "/dev/ptmx") }
        let peer = clx_open_pty_peer(master, O_RDWR | O_NOCTTY)
        if peer < 0 { throw .sys("console", "ioctl(TIOCGPTPEER)", "/dev/ptmx") }
        if let s = size { _ = clx_set_winsize(master, UInt16(clamping: s.height), UInt16(clamping: s.width)) }
        if bindConsole && Sys.exists("/dev/console") {
            if Glibc.mount(Rootfs.fdPath(peer), "/dev/console", nil, MS.bind, nil) != 0 {
                throw .sys("console", "mount", "/dev/console")
            }
        }
        if clx_send_fd(socket, master, "/dev/ptmx", 9) != 0 { throw .sys("console", "sendmsg", "console socket") }
        for target: Int32 in 0...2 where dup2(peer, target) < 0 { throw .sys("console", "dup2", "pty") }
        if peer > 2 { close(peer) }
        if clx_set_controlling_tty(0) != 0 { throw .sys("console", "ioctl(TIOCSCTTY)", "pty") }
    }
}
