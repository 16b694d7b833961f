import Foundation
import Logging
import SkiffLauncher
import SkiffSupport
import Synchronization

/// Where skiffd keeps things. Records (what must survive a skiffd restart) live under `root`; runtime
/// state (bundles, monitor files, launcher state) under `state`, which may be a tmpfs.
public struct RuntimePaths: Sendable {
    public let root: String
    public let state: String

    public init(root: String, state: String) {
        self.root = root
        self.state = state
    }

    public func sandboxRecordDirectory(_ id: String) -> String { root + "/sandboxes/" + id }
    public func sandboxStateDirectory(_ id: String) -> String { state + "/sandboxes/" + id }
    public func containerRecordDirectory(_ id: String) -> String { root + "/containers/" + id }
    public func containerStateDirectory(_ id: String) -> String { state + "/containers/" + id }
    public var infraRootfs: String { root + "/infra-rootfs" }
    public func runtimeRoot(_ name: String) -> String { state + "/runtimes/" + name }
}

/// Everything the CRI handlers share: paths, launchers, stores, per-object locks.
public final class RuntimeContext: Sendable {
    public let paths: RuntimePaths
    public let runtimes: [String: OCIRuntime]
    public let defaultRuntime: String
    public let monitor: MonitorLauncher
    public let pauseBinary: String
    public let cniPluginDirectories: [String]
    /// The pod network (CNI config from the conf dir, plugin ADD/DEL).
    public let network: CNIManager
    public let defaultCgroupParent: String
    /// Exits of infra and container processes, learnt from pidfds (List calls read no files).
    public let processes: ProcessWatch
    public let sandboxes: SandboxStore
    public let containers: ContainerStore
    /// Lifecycle events for GetContainerEvents (Events/EventHub.swift).
    public let events: EventHub
    public let locks = KeyedLocks()
    public let logger: Logger

    public init(
        paths: RuntimePaths, runtimes: [String: OCIRuntime], defaultRuntime: String, binDirectory: String,
        cniPluginDirectories: [String], cniConfigDirectory: String = "/etc/cni/net.d", defaultCgroupParent: String, logger: Logger
    ) {
        self.paths = paths
        self.runtimes = runtimes
        self.defaultRuntime = defaultRuntime
        self.monitor = MonitorLauncher(monitorPath: binDirectory + "/skiff-monitor")
        self.pauseBinary = binDirectory + "/skiff-pause"
        self.cniPluginDirectories = cniPluginDirectories
        self.network = CNIManager(confDirectory: cniConfigDirectory, pluginDirectories: cniPluginDirectories, logger: logger)
        self.defaultCgroupParent = defaultCgroupParent
        self.logger = logger
        processes = ProcessWatch()
        sandboxes = SandboxStore(watch: processes)
        containers = ContainerStore(watch: processes)
        events = EventHub(logger: logger)
        processes.onExit { [weak self] id in self?.processExited(id) }
    }

    /// The launcher for a CRI runtime handler; "" means the default.
    public func runtime(forHandler handler: String) throws(SkiffError) -> OCIRuntime {
        let name = handler.isEmpty ? defaultRuntime : handler
        guard let runtime = runtimes[name] else {
            throw .invalidArgument("no runtime handler \"\(name)\" is configured (known: \(runtimes.keys.sorted().joined(separator: ", ")))")
        }
        return runtime
    }

    /// The directory holding skiffd's own executable (skiff-runc, skiff-monitor and skiff-pause sit beside it).
    public static var executableDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }
}

/// A record the in-memory index can hold: an id, and the name key that must be unique among records.
public protocol IndexedRecord: Sendable {
    var id: String { get }
    var nameKey: String { get }
    /// The process whose exit changes this record's state (infra of a ready sandbox, init of a created
    /// or running container), if any.
    var liveProcess: (pid: Int32, startTime: UInt64)? { get }
}

extension SandboxRecord: IndexedRecord {
    public var nameKey: String { SandboxStore.nameKey(name: name, namespace: namespace, uid: uid, attempt: attempt) }
    public var liveProcess: (pid: Int32, startTime: UInt64)? {
        state == .ready && infraPid > 0 ? (infraPid, infraStartTime) : nil
    }
}

extension ContainerRecord: IndexedRecord {
    public var nameKey: String { ContainerStore.nameKey(sandboxId: sandboxId, name: name, attempt: attempt) }
    public var liveProcess: (pid: Int32, startTime: UInt64)? {
        (state == .created || state == .running) && initPid > 0 ? (initPid, initStartTime) : nil
    }
}

/// The in-memory index of sandboxes or containers: List calls read it, never the disk. Names are
/// reserved while a creation runs so that two requests for one name cannot both proceed.
public final class RecordIndex<Record: IndexedRecord>: Sendable {
    /// Records are held boxed: a List call takes a thousand of them, and copying a box is one retain where
    /// copying a record retains each of its strings, arrays and dictionaries.
    private let state = Mutex<(byId: [String: RecordRef<Record>], names: [String: String])>(([:], [:]))

    /// Told of every record's live process, so `processExited` can answer from memory.
    private let watch: ProcessWatch?

    public init(watch: ProcessWatch? = nil) {
        self.watch = watch
    }

    /// Whether the live process of record `id` has exited: nil when that is not known from memory
    /// (no live process, or no pidfds on this kernel); then look at the exit file and /proc.
    public func processExited(_ id: String) -> Bool? { watch?.exited(id) }

    private func track(_ record: Record) {
        guard let watch else { return }
        if let live = record.liveProcess {
            watch.watch(record.id, pid: live.pid, startTime: live.startTime)
        } else {
            watch.forget(record.id)
        }
    }

    public func get(_ id: String) -> Record? { state.withLock { $0.byId[id]?.record } }
    public func all() -> [Record] { state.withLock { $0.byId.values.map(\.record) } }
    /// Every record, boxed (read fields through `.record`): for List calls, which read a few fields of many.
    public func refs() -> [RecordRef<Record>] { state.withLock { Array($0.byId.values) } }
    public func ref(_ id: String) -> RecordRef<Record>? { state.withLock { $0.byId[id] } }
    public var ids: [String] { state.withLock { Array($0.byId.keys) } }

    public func put(_ record: Record) {
        state.withLock {
            $0.byId[record.id] = RecordRef(record)
            $0.names[record.nameKey] = record.id
        }
        track(record)
    }

    /// Changes a record in place; nil if it is gone.
    public func update(_ id: String, _ body: (inout Record) -> Void) -> Record? {
        let updated: Record? = state.withLock { s in
            guard var r = s.byId[id]?.record else { return nil }
            body(&r)
            s.byId[id] = RecordRef(r)
            return r
        }
        if let updated { track(updated) }
        return updated
    }

    public func remove(_ id: String) {
        state.withLock { s in
            if let r = s.byId.removeValue(forKey: id) { s.names.removeValue(forKey: r.record.nameKey) }
        }
        watch?.forget(id)
    }

    /// Reserves a name for a record being created; returns the id already holding it, if any.
    public func reserve(nameKey: String, for id: String) -> String? {
        state.withLock { s in
            if let holder = s.names[nameKey] { return holder }
            s.names[nameKey] = id
            return nil
        }
    }

    public func releaseName(_ nameKey: String, heldBy id: String) {
        state.withLock { s in
            if s.names[nameKey] == id { s.names.removeValue(forKey: nameKey) }
        }
    }

    /// Resolves a full id or unique prefix.
    public func resolve(_ query: String) throws(SkiffError) -> Record? {
        guard let id = try resolveIdentifier(query, among: ids) else { return nil }
        return get(id)
    }
}

/// An immutable boxed record (see RecordIndex): an update replaces the box, so a reader's box never changes.
public final class RecordRef<Record: Sendable>: Sendable {
    public let record: Record
    public init(_ record: Record) { self.record = record }
}

public typealias SandboxStore = RecordIndex<SandboxRecord>
public typealias ContainerStore = RecordIndex<ContainerRecord>

extension RecordIndex where Record == SandboxRecord {
    public static func nameKey(name: String, namespace: String, uid: String, attempt: UInt32) -> String {
        "\(name)_\(namespace)_\(uid)_\(attempt)"
    }
}

extension RecordIndex where Record == ContainerRecord {
    public static func nameKey(sandboxId: String, name: String, attempt: UInt32) -> String {
        "\(sandboxId)_\(name)_\(attempt)"
    }

    public func inSandbox(_ sandboxId: String) -> [ContainerRecord] {
        all().filter { $0.sandboxId == sandboxId }
    }
}
