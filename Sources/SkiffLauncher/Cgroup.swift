// The cgroup API: create a group with OCI resources, update it live, read stats, kill its
// processes, delete it. Works on cgroup v1 and v2 (detected at run time; differences live in
// CgroupDialect.swift) and goes through libcgroup (LibCgroup.swift).
//
// Safe to call from a multi-threaded daemon: it never forks, keeps no mutable shared state, and
// libcgroup guards its tables with a lock and keeps errno per thread.
//
// libcgroup 2.0.2 traps this type absorbs:
// - a create that fails half-way leaves directories: we remove every directory we made;
// - v1 cpuset groups start with empty cpuset.cpus/mems, so nothing can join them: we copy the
//   parent's values down the chain;
// - delete of a busy group "succeeds" (moves tasks to the parent, or with EMPTY_ONLY keeps the
//   group): we check emptiness ourselves, refuse (`.busy`) or kill first, and verify the rmdir;
// - attach writes v1 `tasks` (one thread): we attach processes while they are single-threaded.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

public enum CgroupVersion: String, Sendable {
    case v1, v2

    /// v2 when /sys/fs/cgroup is a cgroup2 mount (pure v2), else v1 (legacy or hybrid).
    public static func detect(root: String = "/sys/fs/cgroup") -> CgroupVersion {
        clx_statfs_type(root) == 0x6367_7270 ? .v2 : .v1
    }
}

/// Point-in-time usage of a cgroup (all of its descendants included).
public struct CgroupStats: Sendable, Equatable {
    public var cpuUsageNanoseconds: UInt64 = 0
    public var cpuUserNanoseconds: UInt64 = 0
    public var cpuSystemNanoseconds: UInt64 = 0
    public var memoryUsageBytes: UInt64 = 0
    /// usage minus inactive file cache (what the kubelet calls the working set).
    public var memoryWorkingSetBytes: UInt64 = 0
    public var memoryRSSBytes: UInt64 = 0
    /// nil when unlimited.
    public var memoryLimitBytes: UInt64?
    /// How often the limit was hit (v1 memory.failcnt, v2 memory.events `max`).
    public var memoryFailCount: UInt64 = 0
    /// Processes killed by the OOM killer in this group (v1 memory.oom_control, v2 memory.events).
    public var oomKillCount: UInt64 = 0
    /// v1 only: the group is currently stuck at its limit with the OOM killer disabled.
    public var underOOM = false
    public var pidsCurrent: UInt64 = 0
    /// nil when unlimited.
    public var pidsLimit: UInt64?
    public init() {}
}

/// Where cgroup controllers are mounted on this host. Computed once per process.
struct CgroupTopology: Sendable {
    let version: CgroupVersion
    /// controller name -> hierarchy mount point, for the controllers we manage.
    let mounts: [(controller: String, mount: String)]

    static let current: Result<CgroupTopology, LauncherError> = {
        do throws(LauncherError) {
            let version = CgroupVersion.detect()
            let all = try LibCgroup.mountedControllers()
            var mounts: [(String, String)] = []
            for c in CgroupDialect.wantedControllers(version) {
                guard let m = all.first(where: { $0.name == c }) else { continue }
                // On a v1/v2 hybrid, libcgroup files controllers that no v1 hierarchy has under the
                // (controller-less) cgroup2 mount; they cannot be used there.
                if version == .v1 && clx_statfs_type(m.path) == 0x6367_7270 { continue }
                mounts.append((c, m.path))
            }
            if mounts.isEmpty {
                throw LauncherError(.system, step: "cgroup setup", detail: "no usable cgroup controllers are mounted")
            }
            return .success(CgroupTopology(version: version, mounts: mounts))
        } catch {
            return .failure(error)
        }
    }()

    static func get() throws(LauncherError) -> CgroupTopology {
        switch current {
        case .success(let t): return t
        case .failure(let e): throw e
        }
    }
}

/// A cgroup at the same relative path in every managed hierarchy (`/skiff/pod1/ctr`).
public struct Cgroup: Sendable, Equatable {
    /// Normalized path relative to the cgroup root, starting with `/`.
    public let path: String
    public let version: CgroupVersion
    let topology: CgroupTopology

    public static func == (a: Cgroup, b: Cgroup) -> Bool { a.path == b.path && a.version == b.version }

    /// The cgroup version of this host.
    public static var hostVersion: CgroupVersion { CgroupVersion.detect() }

    /// Refers to the group at `path` without creating it.
    public init(path: String) throws(LauncherError) {
        let clean = try Cgroup.normalize(path)
        topology = try CgroupTopology.get()
        version = topology.version
        self.path = clean
    }

    static func normalize(_ path: String) throws(LauncherError) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        if parts.isEmpty { throw LauncherError(.invalidConfig, step: "cgroup path", detail: "the root cgroup cannot be managed") }
        if parts.contains(where: { $0 == ".." || $0 == "." }) {
            throw LauncherError(.invalidConfig, step: "cgroup path", path: path, detail: "'.' and '..' are not allowed")
        }
        if path.contains(":") {
            throw LauncherError(.unsupported, step: "cgroup path", path: path,
                                detail: "systemd slice paths (slice:prefix:name) are not supported; use a cgroupfs path")
        }
        return "/" + parts.joined(separator: "/")
    }

    /// libcgroup names are relative to each hierarchy root.
    var name: String { String(path.dropFirst()) }

    var controllers: [String] { topology.mounts.map(\.controller) }

    /// Host directory of this group in the hierarchy that holds `controller`.
    public func directory(for controller: String) -> String? {
        topology.mounts.first { $0.controller == controller }.map { $0.mount + path }
    }

    /// Distinct host directories of this group (one per hierarchy; one in total on v2).
    public var directories: [String] {
        var seen: [String] = []
        for m in topology.mounts where !seen.contains(m.mount + path) { seen.append(m.mount + path) }
        return seen
    }

    public var exists: Bool { directories.contains { Sys.isDirectory($0) } }

    // MARK: create

    /// Creates the group (and missing parents) and applies `resources`. On failure nothing that
    /// this call created is left behind.
    @discardableResult
    public static func create(path: String, resources: Resources? = nil) throws(LauncherError) -> Cgroup {
        let cg = try Cgroup(path: path)
        try cg.createDirectories(resources: resources)
        return cg
    }

    func createDirectories(resources: Resources?) throws(LauncherError) {
        let step = "create cgroup \(path)"
        // Remember which directories already exist so that a failure removes only ours.
        var made: [String] = []
        for dir in directories {
            var chain: [String] = []
            var d = dir
            while !Sys.isDirectory(d) {
                chain.append(d)
                d = parentDirectory(d)
            }
            made += chain  // deepest first
        }
        do {
            if let r = resources { try CgroupDialect.validate(r) }
            Trace.mark("cgroup: chain checked")
            if version == .v2 { try enableAtRoot(step: step) }
            try LibCgroup.create(name, controllers: controllers, step: step)
            Trace.mark("cgroup: libcgroup create")
            if version == .v1 { try fillCpusetChain(step: step) }
            Trace.mark("cgroup: cpuset")
            if let r = resources { try apply(r, step: step) }
        } catch {
            for d in made { rmdir(d) }
            throw error
        }
    }

    /// libcgroup 2.0.2 enables a controller in the cgroup.subtree_control of every level below
    /// the root but never at the root itself; when the root does not delegate it yet, the
    /// create fails with ENOENT. Enable what is missing at the root first.
    private func enableAtRoot(step: String) throws(LauncherError) {
        guard let mount = topology.mounts.first?.mount else { return }
        let file = mount + "/cgroup.subtree_control"
        let enabled = Set((Sys.readStringIfPresent(file) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        let missing = controllers.filter { !enabled.contains($0) }
        if missing.isEmpty { return }
        try Sys.writeString(file, missing.map { "+" + $0 }.joined(separator: " "), step: step)
    }

    private func parentDirectory(_ d: String) -> String {
        guard let slash = d.lastIndex(of: "/"), slash != d.startIndex else { return "/" }
        return String(d[..<slash])
    }

    /// v1 cpuset groups are born with empty cpus/mems, so no task could join them: copy the
    /// parent's values into every empty level of the chain, top-down.
    private func fillCpusetChain(step: String) throws(LauncherError) {
        guard let mount = topology.mounts.first(where: { $0.controller == "cpuset" })?.mount else { return }
        var rel = ""
        for comp in name.split(separator: "/") {
            let parentRel = rel
            rel += "/" + comp
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let here = Sys.readStringIfPresent(mount + rel + "/" + file)?.trimmed() ?? ""
                if !here.isEmpty { continue }
                let up = Sys.readStringIfPresent(mount + parentRel + "/" + file)?.trimmed() ?? ""
                if up.isEmpty { continue }
                try LibCgroup.set(String(rel.dropFirst()), controller: "cpuset", file: file, value: up, step: step)
            }
        }
    }

    // MARK: update

    /// Applies new limits to a live group (only the fields that are set).
    public func update(_ resources: Resources) throws(LauncherError) {
        try apply(resources, step: "update cgroup \(path)")
    }

    func apply(_ r: Resources, step: String) throws(LauncherError) {
        let current = CgroupCurrent(
            read: { c, f in self.directory(for: c).flatMap { Sys.readStringIfPresent($0 + "/" + f) } },
            hasFile: { c, f in self.directory(for: c).map { Sys.exists($0 + "/" + f) } ?? false })
        var writes = try CgroupDialect.writes(version, r, current: current)
        for i in writes.indices {
            let c = writes[i].controller
            if controllers.contains(c) { continue }
            // v2 has one hierarchy: files of controllers libcgroup does not list (cgroup.*) go
            // through any of them.
            guard version == .v2 else {
                throw LauncherError(.unsupported, step: step, path: writes[i].file,
                                    detail: "the \(c) controller is not available on this host")
            }
            writes[i].controller = controllers[0]
        }
        // One libcgroup call per run of writes to one controller (each call re-resolves paths and
        // allocates its structures); consecutive writes to one file become one multi-line value.
        var i = 0
        while i < writes.count {
            var batch: [(file: String, value: String)] = []
            var j = i
            while j < writes.count && writes[j].controller == writes[i].controller {
                if let last = batch.last, last.file == writes[j].file {
                    batch[batch.count - 1].value += "\n" + writes[j].value
                } else if batch.contains(where: { $0.file == writes[j].file }) {
                    break  // libcgroup takes each file once per call
                } else {
                    batch.append((writes[j].file, writes[j].value))
                }
                j += 1
            }
            do throws(LauncherError) {
                try LibCgroup.setMany(name, controller: writes[i].controller, values: batch, step: step)
            } catch {
                // Find the file that failed (earlier values are rewritten with the same content).
                for w in writes[i..<j] {
                    try LibCgroup.set(name, controller: w.controller, file: w.file, value: w.value, step: step)
                }
                throw error
            }
            i = j
        }
    }

    // MARK: processes

    /// How a new process should enter this group without the kernel's global migration lock
    /// (which costs an RCU grace period per attach, ~10 ms on a busy host):
    /// - v1: the process writes "0" (itself) to each hierarchy's `tasks` while single-threaded;
    /// - v2: it is cloned straight into the group (clone3 CLONE_INTO_CGROUP).
    enum Entry {
        case selfAttach(tasksFiles: [String])
        case cloneInto(directory: String)
    }

    var entry: Entry {
        switch version {
        case .v1: return .selfAttach(tasksFiles: directories.map { $0 + "/tasks" })
        case .v2: return .cloneInto(directory: directories[0])
        }
    }

    /// The current (single-threaded) process moves itself into the group: see `entry`.
    static func attachSelf(_ tasksFiles: [String]) throws(LauncherError) {
        for f in tasksFiles { try Sys.writeString(f, "0", step: "join cgroup") }
    }

    /// Moves a process into the group in every hierarchy. Attach processes while they are
    /// single-threaded: on v1 only the given thread moves.
    public func addProcess(_ pid: Int32) throws(LauncherError) {
        try LibCgroup.attach(name, controllers: controllers, pid: pid, step: "join cgroup \(path)")
    }

    /// Pids in this group and (when `recursive`) its descendants, from every hierarchy.
    public func processes(recursive: Bool = true) -> [Int32] {
        var pids = Set<Int32>()
        for dir in directories {
            for d in recursive ? Cgroup.subtree(dir) : [dir] {
                for line in (Sys.readStringIfPresent(d + "/" + CgroupDialect.procsFile) ?? "").split(separator: "\n") {
                    if let p = Int32(line) { pids.insert(p) }
                }
            }
        }
        return pids.sorted()
    }

    public var isEmpty: Bool { processes().isEmpty }

    /// Directories of a group and its descendants, deepest first.
    static func subtree(_ dir: String) -> [String] {
        var out: [String] = []
        for child in Sys.listSubdirectories(dir) { out += subtree(dir + "/" + child) }
        out.append(dir)
        return out
    }

    /// Sends `signal` to every process in the group and its descendants (one pass).
    public func signalAll(_ signal: Int32) {
        for pid in processes() { kill(pid, signal) }
    }

    /// SIGKILLs everything in the group until it is empty (v2: cgroup.kill when available; v1:
    /// frozen first so nothing forks while we kill). Zombies do not count: they have left the group.
    public func killAll(timeoutMilliseconds: Int = 5_000) throws(LauncherError) {
        let step = "kill processes in cgroup \(path)"
        if version == .v2, let dir = directories.first, Sys.exists(dir + "/cgroup.kill") {
            try? Sys.writeString(dir + "/cgroup.kill", "1", step: step)
        } else if version == .v1, let fz = directory(for: "freezer"), Sys.exists(fz + "/freezer.state") {
            try? Sys.writeString(fz + "/freezer.state", "FROZEN", step: step)
            signalAll(SIGKILL)
            try? Sys.writeString(fz + "/freezer.state", "THAWED", step: step)
        }
        let deadline = Sys.monotonicNanos() + UInt64(timeoutMilliseconds) * 1_000_000
        var pause = 1
        while true {
            let pids = processes()
            if pids.isEmpty { return }
            for p in pids { kill(p, SIGKILL) }
            if Sys.monotonicNanos() > deadline {
                throw LauncherError(.timeout, step: step, detail: "processes still present: \(pids.prefix(10).map(String.init).joined(separator: " "))")
            }
            Sys.sleep(milliseconds: pause)
            pause = min(pause * 2, 50)
        }
    }

    // MARK: delete

    /// Removes the group and its descendants. A group that still holds processes is refused with
    /// `.busy` unless `force`, which kills them first. Deleting a missing group succeeds.
    public func delete(force: Bool = false, timeoutMilliseconds: Int = 5_000) throws(LauncherError) {
        let step = "delete cgroup \(path)"
        // Each hierarchy's subtree, listed once (deepest first).
        let trees = directories.map { Cgroup.subtree($0) }.filter { Sys.isDirectory($0.last!) }
        if trees.isEmpty { return }
        var pids = Set<Int32>()
        for t in trees {
            for d in t {
                for line in (Sys.readStringIfPresent(d + "/" + CgroupDialect.procsFile) ?? "").split(separator: "\n") {
                    if let p = Int32(line) { pids.insert(p) }
                }
            }
        }
        if !pids.isEmpty {
            if !force {
                throw LauncherError(.busy, step: step,
                                    detail: "still holds processes \(pids.sorted().prefix(10).map(String.init).joined(separator: " "))")
            }
            try killAll(timeoutMilliseconds: timeoutMilliseconds)
        }
        // Descendant names (relative to the cgroup root), deepest first, from every hierarchy.
        var names: [String] = []
        for t in trees {
            let dir = t.last!
            for d in t {
                let rel = String(d.dropFirst(dir.count - path.count))
                if !names.contains(rel) { names.append(rel) }
            }
        }
        names.sort { $0.split(separator: "/").count > $1.split(separator: "/").count }
        let deadline = Sys.monotonicNanos() + UInt64(timeoutMilliseconds) * 1_000_000
        var pause = 1
        while true {
            for rel in names {
                try LibCgroup.deleteIfEmpty(String(rel.dropFirst()), controllers: controllers, step: step)
            }
            // libcgroup says "done" even when it kept a group: look.
            let left = directories.filter { Sys.isDirectory($0) }
            if left.isEmpty { return }
            if Sys.monotonicNanos() > deadline {
                // A plain rmdir tells us why (usually EBUSY).
                let e: Int32 = rmdir(left[0]) == 0 ? EBUSY : errno
                throw LauncherError(.busy, step: step, syscall: "rmdir", path: left[0], errno: e)
            }
            // Killed tasks leave the group asynchronously.
            Sys.sleep(milliseconds: pause)
            pause = min(pause * 2, 50)
        }
    }

    // MARK: stats

    public func stats() throws(LauncherError) -> CgroupStats {
        guard exists else {
            throw LauncherError(.notFound, step: "cgroup stats", path: path, detail: "no such cgroup")
        }
        return CgroupDialect.stats(version) { c, f in
            self.directory(for: c).flatMap { Sys.readStringIfPresent($0 + "/" + f) }
        }
    }

    /// Raw text of one control file, e.g. `memory.events`.
    public func read(_ file: String, controller: String) -> String? {
        directory(for: controller).flatMap { Sys.readStringIfPresent($0 + "/" + file) }
    }
}
