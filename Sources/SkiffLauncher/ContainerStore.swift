// Per-container state on disk: `<root>/<id>/` holds state.json (what we know about the running
// container), config.json (the spec as created: later edits of the bundle must not matter) and,
// between create and start, exec.fifo.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

/// What skiff-runc records about a container.
public struct ContainerRecord: JSONCodable, Equatable {
    public var id: String
    /// Host pid of the container's init.
    public var pid: Int32
    /// Start time of `pid` (clock ticks since boot): tells our init apart from a reused pid.
    public var pidStartTime: UInt64
    public var bundle: String
    public var rootfs: String
    /// RFC 3339.
    public var created: String
    public var annotations: [String: String]
    /// The container's cgroup (relative to the cgroup root).
    public var cgroupPath: String?
    /// False when the group existed before create; it is still removed on delete (like runc), but
    /// a failed create leaves it alone.
    public var createdCgroup: Bool

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        id = try r.string("id")
        pid = Int32(truncatingIfNeeded: try r.int64("pid"))
        pidStartTime = try r.uint64("pidStartTime")
        bundle = try r.string("bundle")
        rootfs = try r.string("rootfs")
        created = try r.string("created")
        annotations = try r.stringMap("annotations")
        cgroupPath = try r.optionalString("cgroupPath")
        createdCgroup = try r.bool("createdCgroup")
    }

    init(id: String, pid: Int32, pidStartTime: UInt64, bundle: String, rootfs: String, created: String,
         annotations: [String: String], cgroupPath: String?, createdCgroup: Bool) {
        self.id = id
        self.pid = pid
        self.pidStartTime = pidStartTime
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.annotations = annotations
        self.cgroupPath = cgroupPath
        self.createdCgroup = createdCgroup
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("id", id)
        b.set("pid", .int(Int64(pid)))
        b.set("pidStartTime", pidStartTime)
        b.set("bundle", bundle)
        b.set("rootfs", rootfs)
        b.set("created", created)
        b.set("annotations", annotations)
        b.set("cgroupPath", cgroupPath)
        b.set("createdCgroup", .bool(createdCgroup))
        return b.json
    }
}

public struct ContainerStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public func directory(_ id: String) -> String { root + "/" + id }
    func statePath(_ id: String) -> String { directory(id) + "/state.json" }
    func configPath(_ id: String) -> String { directory(id) + "/config.json" }
    func fifoPath(_ id: String) -> String { directory(id) + "/exec.fifo" }

    /// Ids are file names: letters, digits and `_ + - .`, not `.` or `..`, at most 1024 bytes.
    public static func validate(id: String) throws(LauncherError) {
        let ok = !id.isEmpty && id.utf8.count <= 1024 && id != "." && id != ".."
            && id.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "_+-.".unicodeScalars.contains($0) }
        if !ok { throw LauncherError(.invalidConfig, step: "container id", detail: "invalid id \"\(id)\"") }
    }

    func ensureRoot() throws(LauncherError) {
        try Sys.mkdirAll(root, mode: 0o700, step: "state root")
    }

    /// Claims the id: mkdir is atomic, so two creates with one id cannot both win.
    func reserve(_ id: String) throws(LauncherError) {
        if mkdir(directory(id), 0o700) != 0 {
            if errno == EEXIST {
                throw LauncherError(.exists, step: "create", path: nil, detail: "container with id \"\(id)\" already exists")
            }
            throw .sys("create", "mkdir", directory(id))
        }
    }

    func remove(_ id: String) { Sys.removeTree(directory(id)) }

    func save(_ r: ContainerRecord) throws(LauncherError) {
        try Sys.writeAtomic(statePath(r.id), r.json.compactText, step: "save state")
    }

    public func exists(_ id: String) -> Bool { Sys.isDirectory(directory(id)) }

    /// The record, or `.notFound` (a directory without state.json is a create in progress or a
    /// create that was killed: `.notFound` with status "creating").
    public func load(_ id: String) throws(LauncherError) -> ContainerRecord {
        try ContainerStore.validate(id: id)
        guard exists(id) else {
            throw LauncherError(.notFound, step: "container", detail: "container \"\(id)\" does not exist")
        }
        guard let text = Sys.readStringIfPresent(statePath(id)) else {
            throw LauncherError(.notFound, step: "container", detail: "container \"\(id)\" is still being created")
        }
        do throws(JSONError) {
            return try ContainerRecord(json: try JSON(parsing: text), path: "")
        } catch {
            throw LauncherError(.invalidConfig, step: "load state", path: statePath(id), detail: error.description)
        }
    }

    /// The spec the container was created with.
    public func loadSpec(_ id: String) throws(LauncherError) -> Spec {
        let path = configPath(id)
        let text = try Sys.readString(path, step: "load config")
        do throws(JSONError) {
            return try Spec(json: try JSON(parsing: text))
        } catch {
            throw LauncherError(.invalidConfig, step: "load config", path: path, detail: error.description)
        }
    }

    /// created: init alive and the exec fifo still there; running: alive, fifo gone;
    /// stopped: the pid is gone, a zombie, or a different process now.
    public func status(_ r: ContainerRecord) -> State.Status {
        guard r.pid > 0, let start = Sys.procStartTime(r.pid), start == r.pidStartTime else { return .stopped }
        if let s = Sys.procState(r.pid), s == "Z" || s == "X" { return .stopped }
        return Sys.exists(fifoPath(r.id)) ? .created : .running
    }

    public func state(_ r: ContainerRecord) -> State {
        let st = status(r)
        return State(id: r.id, status: st, pid: st == .stopped ? 0 : r.pid, bundle: r.bundle,
                     annotations: r.annotations, created: r.created)
    }

    public func ids() -> [String] {
        Sys.listDirectory(root).filter { Sys.isDirectory(directory($0)) }.sorted()
    }

    /// Exclusive lock on the container directory for the life of the process (or until closed),
    /// so start/delete/kill of one id do not interleave.
    func lock(_ id: String) throws(LauncherError) -> Int32 {
        let fd = Sys.retrying { open(directory(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 {
            if errno == ENOENT { throw LauncherError(.notFound, step: "container", detail: "container \"\(id)\" does not exist") }
            throw .sys("lock", "open", directory(id))
        }
        if Sys.retrying({ flock(fd, LOCK_EX) }) != 0 { close(fd); throw .sys("lock", "flock", directory(id)) }
        return fd
    }
}
