// The OCI runtime operations (runtime.md): create, start, state, kill, delete, plus run, exec and
// list. One method per verb; the CLI (SkiffRuncCLI) maps command lines onto them.
//
// create/run/exec fork and enter namespaces: call them only from a single-threaded process (the
// skiff-runc executable). state/kill/delete/list never fork.
//
//            create                 start                  (exit)                delete
//   (none) ─────────▶ created ─────────────▶ running ──────────────▶ stopped ─────────────▶ (none)
//                        │    kill KILL / delete --force   ▲    delete --force (SIGKILL)  ▲
//                        └─────────────────────────────────┴──────────────────────────────┘

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

public struct CreateOptions: Sendable {
    public var bundle: String
    public var pidFile: String?
    public var consoleSocket: String?
    /// Extra inherited descriptors (3, 4, ...) passed to the container process.
    public var preserveFDs: Int
    public init(bundle: String = ".", pidFile: String? = nil, consoleSocket: String? = nil, preserveFDs: Int = 0) {
        self.bundle = bundle
        self.pidFile = pidFile
        self.consoleSocket = consoleSocket
        self.preserveFDs = preserveFDs
    }
}

public struct ExecOptions: Sendable {
    /// A full process (from --process FILE); otherwise one is built from the container's process
    /// with the fields below (like runc).
    public var process: Process?
    public var args: [String] = []
    public var cwd: String?
    public var env: [String] = []
    public var uid: UInt32?
    public var gid: UInt32?
    public var additionalGids: [UInt32] = []
    public var tty = false
    public var capabilities: [String] = []
    public var noNewPrivileges = false
    public var consoleSocket: String?
    public var detach = false
    public var pidFile: String?
    public var preserveFDs = 0
    public init() {}
}

/// Undo actions for a half-done operation, run newest first.
final class Rollback {
    private var actions: [() -> Void] = []
    func add(_ a: @escaping () -> Void) { actions.append(a) }
    func run() {
        for a in actions.reversed() { a() }
        actions = []
    }
}

/// Target of forwarded signals (run / exec in the foreground). A global because a signal handler
/// cannot capture context.
nonisolated(unsafe) private var forwardPid: Int32 = 0

private func forwardSignal(_ sig: Int32) {
    if forwardPid > 0 { kill(forwardPid, sig) }
}

public struct Launcher: Sendable {
    public let store: ContainerStore

    public init(root: String = "/run/skiff-runc") {
        store = ContainerStore(root: root)
    }

    static func requireSingleThreaded(_ step: String) throws(LauncherError) {
        let n = Sys.threadCount()
        if n != 1 {
            throw LauncherError(.invalidState, step: step,
                                detail: "must run in a single-threaded process (found \(n) threads): namespaces cannot be entered otherwise")
        }
    }

    // MARK: create

    struct Launched {
        var pid: Int32
        var sync: Int32
        var record: ContainerRecord
        var spec: Spec
        var rollback: Rollback
    }

    /// Creates the container: namespaces, cgroup, mounts, user and capabilities all applied; the
    /// init waits for `start`. Returns the init's host pid. On failure nothing is left behind.
    @discardableResult
    public func create(id: String, options: CreateOptions) throws(LauncherError) -> Int32 {
        let l = try launch(id: id, options: options, runMode: false)
        close(l.sync)
        return l.pid
    }

    private func launch(id: String, options: CreateOptions, runMode: Bool) throws(LauncherError) -> Launched {
        try Launcher.requireSingleThreaded("create")
        try ContainerStore.validate(id: id)
        let bundle = Sys.absolute(options.bundle)
        let configPath = bundle + "/config.json"
        let configText = try Sys.readString(configPath, step: "load config")
        let spec: Spec
        do throws(JSONError) {
            spec = try Spec(json: try JSON(parsing: configText))
        } catch {
            throw LauncherError(.invalidConfig, step: "load config", path: configPath, detail: error.description)
        }
        let v = try ValidatedSpec(spec, bundle: bundle, id: id)
        Trace.mark("config parsed and validated")
        if v.process.terminal && options.consoleSocket == nil {
            throw .config("process.terminal is true: a --console-socket is required")
        }
        if !v.process.terminal && options.consoleSocket != nil {
            throw .config("--console-socket was given but process.terminal is false")
        }
        try store.ensureRoot()
        try store.reserve(id)
        let rb = Rollback()
        let store = self.store
        rb.add { store.remove(id) }
        do throws(LauncherError) {
            try Sys.writeAtomic(store.configPath(id), configText, step: "save config")
            var fifo: Int32 = -1
            if !runMode {
                if clx_mkfifo(store.fifoPath(id), 0o622) != 0 { throw .sys("create", "mkfifo", store.fifoPath(id)) }
                // O_RDWR: never blocks, and keeps a writer so the init's read waits for a byte.
                fifo = try Sys.open(store.fifoPath(id), O_RDWR, step: "create")
            }
            var joinFDs: [(kind: NamespaceKind, fd: Int32, path: String)] = []
            for j in v.joins {
                let fd = Sys.retrying { open(j.path, O_RDONLY | O_CLOEXEC) }
                if fd < 0 {
                    let e = LauncherError.sys("join \(j.kind.rawValue) namespace", "open", j.path)
                    joinFDs.forEach { close($0.fd) }
                    if fifo >= 0 { close(fifo) }
                    throw e
                }
                joinFDs.append((j.kind, fd, j.path))
            }
            let closeParentFDs = {
                joinFDs.forEach { close($0.fd) }
                if fifo >= 0 { close(fifo) }
            }

            let cg: Cgroup
            let existed: Bool
            // v2: the group must exist before the init is cloned into it. v1: the init joins by
            // itself after "G", so fork first and create the group while the kernel schedules
            // the new process (on a busy host that wait is the longest step of create).
            let createBeforeFork: Bool
            do throws(LauncherError) {
                cg = try Cgroup(path: v.cgroupPath)
                Trace.mark("cgroup topology")
                existed = cg.exists
                if existed && !cg.isEmpty {
                    throw LauncherError(.busy, step: "create cgroup \(cg.path)", detail: "the cgroup already holds processes")
                }
                createBeforeFork = cg.version == .v2
                if createBeforeFork { try cg.createDirectories(resources: spec.linux?.resources) }
            } catch {
                closeParentFDs()
                throw error
            }
            rb.add { if !existed { try? cg.delete(force: true) } }
            let cgMount = v.hasCgroupMount ? Rootfs.cgroupSource(for: cg) : CgroupMountSource()

            var sp: [Int32] = [-1, -1]
            if clx_socketpair_seqpacket(&sp) != 0 { closeParentFDs(); throw .sys("create", "socketpair") }

            // A new or joined PID namespace applies to the children of the caller: switch, fork,
            // switch back.
            var ownPidNS: Int32 = -1
            switch v.pidMode {
            case .host:
                break
            case .new:
                ownPidNS = try Sys.open("/proc/self/ns/pid", O_RDONLY, step: "pid namespace")
                if clx_unshare(Int32(CLX_CLONE_NEWPID)) != 0 {
                    let e = LauncherError.sys("pid namespace", "unshare", "CLONE_NEWPID")
                    close(ownPidNS); close(sp[0]); close(sp[1]); closeParentFDs()
                    throw e
                }
            case .join(let path):
                let fd = Sys.retrying { open(path, O_RDONLY | O_CLOEXEC) }
                if fd < 0 {
                    let e = LauncherError.sys("join pid namespace", "open", path)
                    close(sp[0]); close(sp[1]); closeParentFDs()
                    throw e
                }
                ownPidNS = try Sys.open("/proc/self/ns/pid", O_RDONLY, step: "pid namespace")
                if clx_setns(fd, Int32(CLX_CLONE_NEWPID)) != 0 {
                    let e = LauncherError.sys("join pid namespace", "setns", path)
                    close(fd); close(ownPidNS); close(sp[0]); close(sp[1]); closeParentFDs()
                    throw e
                }
                close(fd)
            }

            let hooks = spec.hooks ?? SkiffOCI.Hooks()
            var plan = InitPlan(
                id: id, spec: spec, process: v.process, bundle: bundle, rootfs: v.rootfs, mounts: v.mounts,
                cgroupMount: cgMount, joins: joinFDs, unshareFlags: v.unshareFlags,
                newCgroupNamespace: v.newCgroupNamespace, newNetworkNamespace: v.newNetworkNamespace,
                caps: v.caps, rlimits: v.rlimits, seccomp: v.seccomp, consoleSocket: options.consoleSocket,
                sync: sp[1], fifo: fifo, preserveFDs: options.preserveFDs,
                hasRuntimeHooks: !(hooks.prestart.isEmpty && hooks.createRuntime.isEmpty),
                selfAttach: [])
            let (pid, parentAttach) = Launcher.forkEntering(cg, plan: &plan)
            if pid == 0 {
                close(sp[0])
                ContainerInit.run(plan)
            }
            let forkErrno = errno
            if ownPidNS >= 0 {
                _ = clx_setns(ownPidNS, Int32(CLX_CLONE_NEWPID))
                close(ownPidNS)
            }
            close(sp[1])
            closeParentFDs()
            let sync = sp[0]
            rb.add { close(sync) }
            if pid < 0 { throw .sys("create", "fork", errno: forkErrno) }
            rb.add {
                Glibc.kill(pid, SIGKILL)
                var st: Int32 = 0
                while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
            }

            Trace.mark("forked")
            if !createBeforeFork {
                try cg.createDirectories(resources: spec.linux?.resources)
                Trace.mark("cgroup created")
            }
            if parentAttach { try cg.addProcess(pid) }
            SyncChannel.send(sync, "G")
            while true {
                guard let m = SyncChannel.receive(sync) else {
                    var st: Int32 = 0
                    let r = waitpid(pid, &st, 0)
                    throw LauncherError(.initFailed, step: "create",
                                        detail: "the container init exited during setup" + (r == pid ? " (status \(Exec.exitCode(st)))" : ""))
                }
                if m == "R" { break }
                if m == "H" {
                    let state = State(id: id, status: .creating, pid: pid, bundle: bundle, annotations: spec.annotations)
                    for h in hooks.prestart { try HookRunner.run(h, kind: "prestart", state: state) }
                    for h in hooks.createRuntime { try HookRunner.run(h, kind: "createRuntime", state: state) }
                    SyncChannel.send(sync, "C")
                    continue
                }
                if m.hasPrefix("E") { throw LauncherError(.initFailed, step: "container init", detail: String(m.dropFirst())) }
                throw LauncherError(.initFailed, step: "create", detail: "unexpected message from init: \(m)")
            }

            let record = ContainerRecord(
                id: id, pid: pid, pidStartTime: Sys.procStartTime(pid) ?? 0, bundle: bundle, rootfs: v.rootfs,
                created: Sys.rfc3339(), annotations: spec.annotations, cgroupPath: cg.path, createdCgroup: !existed)
            Trace.mark("init ready")
            try store.save(record)
            if let pf = options.pidFile {
                try Sys.writeAtomic(Sys.absolute(pf), String(pid), mode: 0o644, step: "pid file")
            }
            return Launched(pid: pid, sync: sync, record: record, spec: spec, rollback: rb)
        } catch {
            rb.run()
            throw error
        }
    }

    // MARK: start

    /// Lets a created container's init exec the user's program.
    public func start(id: String) throws(LauncherError) {
        let lock = try store.lock(id)
        defer { close(lock) }
        let record = try store.load(id)
        switch store.status(record) {
        case .created: break
        case .running: throw LauncherError(.invalidState, step: "start", detail: "container \"\(id)\" is already running")
        case .stopped: throw LauncherError(.invalidState, step: "start", detail: "cannot start container \"\(id)\": it has stopped")
        case .creating: throw LauncherError(.invalidState, step: "start", detail: "container \"\(id)\" is still being created")
        }
        let path = store.fifoPath(id)
        let fd = Sys.retrying { open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC) }
        if fd < 0 {
            if errno == ENXIO {
                throw LauncherError(.invalidState, step: "start", path: path, detail: "the container init is not waiting (it exited)")
            }
            throw .sys("start", "open", path)
        }
        var b: UInt8 = 0
        let n = Sys.retrying { write(fd, &b, 1) }
        let e = errno
        close(fd)
        unlink(path)
        if n != 1 { throw .sys("start", "write", path, errno: e) }
        let spec = try? store.loadSpec(id)
        let state = State(id: id, status: .running, pid: record.pid, bundle: record.bundle, annotations: record.annotations)
        do throws(LauncherError) {
            for h in spec?.hooks?.poststart ?? [] { try HookRunner.run(h, kind: "poststart", state: state) }
        } catch {
            // The spec: a failed poststart hook stops the container.
            Glibc.kill(record.pid, SIGKILL)
            throw error
        }
    }

    // MARK: state, list

    public func state(id: String) throws(LauncherError) -> State {
        store.state(try store.load(id))
    }

    public func list() -> [State] {
        store.ids().compactMap { id in (try? store.load(id)).map { store.state($0) } }
    }

    // MARK: kill

    /// Sends `signal` to the init (or with `all`, to every process in the container's cgroup).
    public func kill(id: String, signal: Int32, all: Bool = false) throws(LauncherError) {
        let record = try store.load(id)
        let st = store.status(record)
        guard st == .created || st == .running else {
            throw LauncherError(.invalidState, step: "kill", detail: "container \"\(id)\" is not running (\(st.rawValue))")
        }
        if all, let p = record.cgroupPath {
            let cg = try Cgroup(path: p)
            cg.signalAll(signal)
            return
        }
        // A pidfd pins the process: after checking its start time, the signal cannot hit a reused pid.
        let pidfd = clx_pidfd_open(record.pid)
        if pidfd < 0 {
            if errno == ESRCH { throw LauncherError(.invalidState, step: "kill", detail: "container \"\(id)\" is not running") }
            throw .sys("kill", "pidfd_open", String(record.pid))
        }
        defer { close(pidfd) }
        guard Sys.procStartTime(record.pid) == record.pidStartTime else {
            throw LauncherError(.invalidState, step: "kill", detail: "container \"\(id)\" is not running")
        }
        if clx_pidfd_send_signal(pidfd, signal) != 0 { throw .sys("kill", "pidfd_send_signal", String(record.pid)) }
    }

    // MARK: delete

    /// Removes a stopped (or created) container: its processes, cgroup and state. A running one is
    /// refused unless `force`, which SIGKILLs it first. Missing + force is success.
    public func delete(id: String, force: Bool = false) throws(LauncherError) {
        try ContainerStore.validate(id: id)
        guard store.exists(id) else {
            if force { return }
            throw LauncherError(.notFound, step: "delete", detail: "container \"\(id)\" does not exist")
        }
        let lock = try store.lock(id)
        defer { close(lock) }
        let record: ContainerRecord
        do throws(LauncherError) {
            record = try store.load(id)
        } catch {
            // No state.json: a create that was killed half-way. Only --force cleans it up.
            guard force else { throw error }
            if let spec = try? store.loadSpec(id) {
                let path = spec.linux?.cgroupsPath.flatMap { $0.isEmpty ? nil : $0 } ?? "/skiff/\(id)"
                if let cg = try? Cgroup(path: path) { try cg.delete(force: true) }
            }
            store.remove(id)
            return
        }
        let st = store.status(record)
        if st == .running && !force {
            throw LauncherError(.invalidState, step: "delete", detail: "cannot delete container \"\(id)\" that is not stopped: running")
        }
        if st == .running || st == .created {
            let pidfd = clx_pidfd_open(record.pid)
            if pidfd >= 0 {
                if Sys.procStartTime(record.pid) == record.pidStartTime { _ = clx_pidfd_send_signal(pidfd, SIGKILL) }
                close(pidfd)
            }
            try waitStopped(record, timeoutMilliseconds: 10_000)
        }
        if let p = record.cgroupPath {
            // Also kills what is left when the container shared a PID namespace.
            try Cgroup(path: p).delete(force: true)
        }
        if let spec = try? store.loadSpec(id) {
            let state = State(id: id, status: .stopped, pid: 0, bundle: record.bundle, annotations: record.annotations)
            for h in spec.hooks?.poststop ?? [] {
                do throws(LauncherError) {
                    try HookRunner.run(h, kind: "poststop", state: state)
                } catch {
                    // The spec: poststop failures are warnings only.
                    Log.warn(error.description)
                }
            }
        }
        store.remove(id)
    }

    private func waitStopped(_ r: ContainerRecord, timeoutMilliseconds: Int) throws(LauncherError) {
        let deadline = Sys.monotonicNanos() + UInt64(timeoutMilliseconds) * 1_000_000
        var pause = 1
        while store.status(r) != .stopped {
            if Sys.monotonicNanos() > deadline {
                throw LauncherError(.timeout, step: "delete", detail: "container init \(r.pid) did not exit after SIGKILL")
            }
            Sys.sleep(milliseconds: pause)
            pause = min(pause * 2, 20)
        }
    }

    // MARK: run

    /// create + start; in the foreground, waits and returns the container's exit code (128+signal
    /// when killed), then deletes the container. `detach` returns 0 once the program runs.
    public func run(id: String, options: CreateOptions, detach: Bool = false) throws(LauncherError) -> Int32 {
        let l = try launch(id: id, options: options, runMode: true)
        if !detach { installForwarding(to: l.pid) }
        SyncChannel.send(l.sync, "S")
        // EOF: the program was exec'd (the socket is close-on-exec).
        if let m = SyncChannel.receive(l.sync) {
            l.rollback.run()
            throw LauncherError(.initFailed, step: "container init", detail: m.hasPrefix("E") ? String(m.dropFirst()) : m)
        }
        close(l.sync)
        Trace.mark("program exec'd")
        let state = State(id: id, status: .running, pid: l.pid, bundle: l.record.bundle, annotations: l.record.annotations)
        do throws(LauncherError) {
            for h in l.spec.hooks?.poststart ?? [] { try HookRunner.run(h, kind: "poststart", state: state) }
        } catch {
            Glibc.kill(l.pid, SIGKILL)
            if !detach { var st: Int32 = 0; while waitpid(l.pid, &st, 0) < 0 && errno == EINTR {} }
            try? delete(id: id, force: true)
            throw error
        }
        if detach { return 0 }
        var status: Int32 = 0
        while waitpid(l.pid, &status, 0) < 0 {
            if errno != EINTR { break }
        }
        forwardPid = 0
        Trace.mark("program exited")
        try delete(id: id, force: true)
        Trace.mark("deleted")
        return Exec.exitCode(status)
    }

    private func installForwarding(to pid: Int32) {
        forwardPid = pid
        let sigs: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]
        _ = sigs.withUnsafeBufferPointer { clx_install_forwarder($0.baseAddress, Int32($0.count), forwardSignal) }
    }

    // MARK: exec

    /// Runs another process in a created or running container: its namespaces, cgroup, and the
    /// container's seccomp profile. In the foreground returns the process's exit code; with
    /// `detach`, returns 0 once it has been exec'd.
    public func exec(id: String, options o: ExecOptions) throws(LauncherError) -> Int32 {
        try Launcher.requireSingleThreaded("exec")
        let record = try store.load(id)
        let st = store.status(record)
        guard st == .created || st == .running else {
            throw LauncherError(.invalidState, step: "exec", detail: "cannot exec in container \"\(id)\": it is \(st.rawValue)")
        }
        let spec = try store.loadSpec(id)
        let process = try buildExecProcess(spec.process, o)
        try ValidatedSpec.check(process: process)
        if process.terminal && o.consoleSocket == nil { throw .config("exec with a terminal needs --console-socket") }
        let caps = try Caps.Sets(process.capabilities)
        let rlimits = try Rlimits.resolve(process.rlimits)
        let seccomp = try spec.linux?.seccomp.map { (s) throws(LauncherError) in try SeccompProgram(s) }

        let pidfd = clx_pidfd_open(record.pid)
        if pidfd < 0 { throw LauncherError(.invalidState, step: "exec", detail: "container \"\(id)\" is not running") }
        defer { close(pidfd) }
        guard Sys.procStartTime(record.pid) == record.pidStartTime else {
            throw LauncherError(.invalidState, step: "exec", detail: "container \"\(id)\" is not running")
        }
        // Namespaces that differ from ours; mount last (it changes our root).
        var joins: [(kind: NamespaceKind, fd: Int32, path: String)] = []
        var pidNS: Int32 = -1
        let order: [(NamespaceKind, String)] = [(.ipc, "ipc"), (.uts, "uts"), (.network, "net"), (.cgroup, "cgroup"),
                                                 (.pid, "pid"), (.mount, "mnt")]
        for (kind, file) in order {
            let theirs = "/proc/\(record.pid)/ns/\(file)"
            var a = stat(), b = stat()
            guard stat(theirs, &a) == 0 else { continue }
            if stat("/proc/self/ns/\(file)", &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev { continue }
            let fd = Sys.retrying { open(theirs, O_RDONLY | O_CLOEXEC) }
            if fd < 0 {
                let e = LauncherError.sys("exec: join \(kind.rawValue) namespace", "open", theirs)
                joins.forEach { close($0.fd) }
                if pidNS >= 0 { close(pidNS) }
                throw e
            }
            if kind == .pid { pidNS = fd } else { joins.append((kind, fd, theirs)) }
        }
        let closeFDs = {
            joins.forEach { close($0.fd) }
            if pidNS >= 0 { close(pidNS) }
        }
        // The descriptors must belong to our container, not to a process that reused its pid.
        if clx_pidfd_send_signal(pidfd, 0) != 0 {
            closeFDs()
            throw LauncherError(.invalidState, step: "exec", detail: "container \"\(id)\" exited")
        }
        let cg = try record.cgroupPath.map { (p) throws(LauncherError) in try Cgroup(path: p) }

        var sp: [Int32] = [-1, -1]
        if clx_socketpair_seqpacket(&sp) != 0 { closeFDs(); throw .sys("exec", "socketpair") }
        var ownPidNS: Int32 = -1
        if pidNS >= 0 {
            ownPidNS = Sys.retrying { open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC) }
            if clx_setns(pidNS, Int32(CLX_CLONE_NEWPID)) != 0 {
                let e = LauncherError.sys("exec: join pid namespace", "setns", "/proc/\(record.pid)/ns/pid")
                closeFDs(); close(sp[0]); close(sp[1])
                throw e
            }
        }
        var plan = ExecPlan(process: process, joins: joins, caps: caps, rlimits: rlimits, seccomp: seccomp,
                            consoleSocket: o.consoleSocket, sync: sp[1], preserveFDs: o.preserveFDs,
                            dieWithParent: !o.detach, selfAttach: [])
        if !o.detach { installForwarding(to: 0) }
        var pid: pid_t
        var parentAttach = false
        if let cg {
            (pid, parentAttach) = Launcher.forkEntering(cg, plan: &plan)
        } else {
            pid = fork()
        }
        if pid == 0 {
            close(sp[0])
            ExecInit.run(plan)
        }
        let forkErrno = errno
        if ownPidNS >= 0 { _ = clx_setns(ownPidNS, Int32(CLX_CLONE_NEWPID)); close(ownPidNS) }
        close(sp[1])
        closeFDs()
        let sync = sp[0]
        defer { close(sync) }
        if pid < 0 { throw .sys("exec", "fork", errno: forkErrno) }
        forwardPid = pid
        do throws(LauncherError) {
            if parentAttach { try cg?.addProcess(pid) }
        } catch {
            Glibc.kill(pid, SIGKILL)
            var s: Int32 = 0
            while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
            throw error
        }
        SyncChannel.send(sync, "G")
        if let m = SyncChannel.receive(sync) {
            var s: Int32 = 0
            while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
            throw LauncherError(.initFailed, step: "exec process", detail: m.hasPrefix("E") ? String(m.dropFirst()) : m)
        }
        if let pf = o.pidFile { try Sys.writeAtomic(Sys.absolute(pf), String(pid), mode: 0o644, step: "pid file") }
        if o.detach { return 0 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { break }
        }
        forwardPid = 0
        return Exec.exitCode(status)
    }

    /// Forks a child that enters `cg` without the parent migrating it when the kernel allows
    /// (see Cgroup.Entry). Returns fork's result and whether the parent must still attach it.
    static func forkEntering<P: EntersCgroup>(_ cg: Cgroup, plan: inout P) -> (pid_t, Bool) {
        switch cg.entry {
        case .selfAttach(let files):
            plan.selfAttach = files
            return (fork(), false)
        case .cloneInto(let dir):
            let fd = Sys.retrying { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            if fd >= 0 {
                let pid = clx_fork_into_cgroup(fd)
                let e = errno
                if pid != 0 { close(fd) }
                if pid >= 0 { return (pid, false) }
                // Kernels before 5.7 (or seccomp filters) refuse clone3: fork and attach instead.
                guard e == ENOSYS || e == E2BIG || e == EINVAL || e == EPERM else {
                    errno = e
                    return (-1, false)
                }
            }
            return (fork(), true)
        }
    }

    func buildExecProcess(_ base: Process?, _ o: ExecOptions) throws(LauncherError) -> Process {
        if let p = o.process { return p }
        guard !o.args.isEmpty else { throw .config("exec needs a command (or --process FILE)") }
        var p = base ?? Process(args: o.args)
        p.args = o.args
        p.terminal = o.tty
        p.consoleSize = nil
        if let c = o.cwd { p.cwd = c }
        p.env += o.env
        if let u = o.uid { p.user.uid = u }
        if let g = o.gid { p.user.gid = g }
        if !o.additionalGids.isEmpty { p.user.additionalGids = o.additionalGids }
        if !o.capabilities.isEmpty {
            var c = p.capabilities ?? Capabilities()
            c.bounding += o.capabilities
            c.effective += o.capabilities
            c.permitted += o.capabilities
            c.ambient += o.capabilities
            p.capabilities = c
        }
        if o.noNewPrivileges { p.noNewPrivileges = true }
        p.oomScoreAdj = nil
        return p
    }
}

/// A child plan that can carry the v1 self-attach list.
protocol EntersCgroup {
    var selfAttach: [String] { get set }
}

extension InitPlan: EntersCgroup {}
extension ExecPlan: EntersCgroup {}

/// What an exec'd process needs, prepared before fork.
struct ExecPlan {
    var process: Process
    var joins: [(kind: NamespaceKind, fd: Int32, path: String)]
    var caps: Caps.Sets
    var rlimits: [(Int32, UInt64, UInt64)]
    var seccomp: SeccompProgram?
    var consoleSocket: String?
    var sync: Int32
    var preserveFDs: Int
    var dieWithParent: Bool
    /// v1: `tasks` files to write "0" into (see Cgroup.Entry).
    var selfAttach: [String]
}

enum ExecInit {
    static func run(_ p: ExecPlan) -> Never {
        do {
            try main(p)
        } catch {
            SyncChannel.send(p.sync, "E" + error.description)
            _exit(1)
        }
    }

    private static func main(_ p: ExecPlan) throws(LauncherError) -> Never {
        _ = clx_reset_signal_handlers()
        _ = clx_unblock_all_signals()
        try SyncChannel.expect(p.sync, "G", step: "exec")
        try Cgroup.attachSelf(p.selfAttach)
        if p.dieWithParent {
            // A foreground exec dies with skiff-runc exec, so a caller's timeout kill reaches it.
            _ = clx_set_pdeathsig(SIGKILL)
        }
        if clx_setsid() != 0 { throw .sys("exec", "setsid") }
        var consoleSock: Int32 = -1
        if let cs = p.consoleSocket {
            consoleSock = clx_connect_unix(cs, Int32(SOCK_STREAM.rawValue))
            if consoleSock < 0 { throw .sys("console", "connect", cs) }
        }
        for j in p.joins {
            if clx_setns(j.fd, ContainerInit.nsFlag(j.kind)) != 0 { throw .sys("exec: join \(j.kind.rawValue) namespace", "setns", j.path) }
            close(j.fd)
        }
        if consoleSock >= 0 {
            try Console.setup(socket: consoleSock, size: p.process.consoleSize, bindConsole: false)
            close(consoleSock)
        }
        try Rlimits.apply(p.rlimits)
        if let adj = p.process.oomScoreAdj {
            try Sys.writeString("/proc/self/oom_score_adj", String(adj), step: "oomScoreAdj")
        }
        var env = p.process.env
        if !env.contains(where: { $0.hasPrefix("HOME=") }) {
            env.append("HOME=" + ContainerInit.homeDirectory(uid: p.process.user.uid))
        }
        if let m = p.process.user.umask { umask(mode_t(m)) }
        if let s = p.seccomp, !p.process.noNewPrivileges { try s.load() }
        try Caps.applyUserAndCapabilities(user: p.process.user, caps: p.caps)
        if chdir(p.process.cwd) != 0 { throw .sys("cwd", "chdir", p.process.cwd) }
        let path = try Exec.lookPath(p.process.args[0], env: env)
        if p.process.noNewPrivileges && clx_set_no_new_privs() != 0 { throw .sys("noNewPrivileges", "prctl(PR_SET_NO_NEW_PRIVS)") }
        if let s = p.seccomp, p.process.noNewPrivileges { try s.load() }
        _ = clx_close_range(UInt32(3 + p.preserveFDs), UInt32.max, 4 /* CLOSE_RANGE_CLOEXEC */)
        Exec.execve(path, p.process.args, env, report: p.sync)
    }
}
