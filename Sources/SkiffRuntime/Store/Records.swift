import CRI
import Foundation
import SkiffSupport

/// What skiffd persists about a sandbox. Written atomically after every state change, read back on start.
/// The CRI config is kept as its protobuf bytes so that nothing the client sent is lost.
public struct SandboxRecord: Codable, Sendable {
    public enum State: String, Codable, Sendable { case ready, notReady }

    public var id: String
    public var name: String
    public var namespace: String
    public var uid: String
    public var attempt: UInt32
    public var createdAt: Int64
    public var state: State
    public var labels: [String: String]
    public var annotations: [String: String]
    public var runtimeHandler: String
    public var logDirectory: String
    /// NamespaceMode raw values from the CRI (0 POD, 1 CONTAINER, 2 NODE, 3 TARGET).
    public var networkMode: Int32
    public var pidMode: Int32
    public var ipcMode: Int32
    /// The infra process and the start time the kernel gave it (guards against pid reuse).
    public var infraPid: Int32
    public var infraStartTime: UInt64
    /// The pod's cgroup (relative to the hierarchy root) and whether skiffd created it.
    public var podCgroup: String
    public var createdPodCgroup: Bool
    public var config: Data
    /// The pod's CNI attachment while it has one (absent in records written before CNI support: the
    /// synthesized decoder reads a missing optional as nil).
    public var network: CNIAttachment?

    public var hostNetwork: Bool { networkMode == NamespaceMode.node.rawValue }

    public init(
        id: String, name: String, namespace: String, uid: String, attempt: UInt32, createdAt: Int64, state: State,
        labels: [String: String], annotations: [String: String], runtimeHandler: String, logDirectory: String,
        networkMode: Int32, pidMode: Int32, ipcMode: Int32, infraPid: Int32, infraStartTime: UInt64,
        podCgroup: String, createdPodCgroup: Bool, config: Data
    ) {
        self.id = id; self.name = name; self.namespace = namespace; self.uid = uid; self.attempt = attempt
        self.createdAt = createdAt; self.state = state; self.labels = labels; self.annotations = annotations
        self.runtimeHandler = runtimeHandler; self.logDirectory = logDirectory; self.networkMode = networkMode
        self.pidMode = pidMode; self.ipcMode = ipcMode; self.infraPid = infraPid; self.infraStartTime = infraStartTime
        self.podCgroup = podCgroup; self.createdPodCgroup = createdPodCgroup; self.config = config
    }
}

/// What skiffd persists about a container.
public struct ContainerRecord: Codable, Sendable {
    public enum State: String, Codable, Sendable { case created, running, exited, unknown }

    public var id: String
    public var sandboxId: String
    public var name: String
    public var attempt: UInt32
    public var createdAt: Int64
    public var startedAt: Int64
    public var finishedAt: Int64
    public var state: State
    public var exitCode: Int32
    public var reason: String
    public var message: String
    public var labels: [String: String]
    public var annotations: [String: String]
    public var image: String
    public var imageRef: String
    public var imageId: String
    public var logPath: String
    public var initPid: Int32
    public var initStartTime: UInt64
    public var cgroup: String
    public var stopSignal: Int32
    public var config: Data
    /// The LinuxContainerResources in force (protobuf bytes), updated by UpdateContainerResources.
    public var resources: Data = Data()
    /// The CRI config's stdin, stdin_once and tty, which its monitor was started with. nil in records
    /// written before attach support (the synthesized decoder reads a missing optional as nil): false.
    public var stdin: Bool?
    public var stdinOnce: Bool?
    public var tty: Bool?

    /// A freshly created container: the rest is filled in as it starts and exits.
    public init(
        id: String, sandboxId: String, name: String, attempt: UInt32, labels: [String: String],
        annotations: [String: String], image: String, imageRef: String, imageId: String, logPath: String,
        cgroup: String, stopSignal: Int32, config: Data
    ) {
        self.id = id; self.sandboxId = sandboxId; self.name = name; self.attempt = attempt
        self.createdAt = unixNanos(); self.startedAt = 0; self.finishedAt = 0; self.state = .created
        self.exitCode = 0; self.reason = ""; self.message = ""; self.labels = labels; self.annotations = annotations
        self.image = image; self.imageRef = imageRef; self.imageId = imageId; self.logPath = logPath
        self.initPid = 0; self.initStartTime = 0; self.cgroup = cgroup; self.stopSignal = stopSignal; self.config = config
    }
}

/// How a monitor reports a finished process (`exit.json`).
public struct ExitRecord: Codable, Sendable {
    public var exitCode: Int32
    public var signal: Int32
    public var finishedAt: Int64
    public var oomKilled: Bool

    enum CodingKeys: String, CodingKey {
        case exitCode = "exit_code", signal, finishedAt = "finished_at", oomKilled = "oom_killed"
    }

    public static func read(directory: String) -> ExitRecord? {
        guard let data = FileManager.default.contents(atPath: directory + "/exit.json") else { return nil }
        return try? JSONDecoder().decode(ExitRecord.self, from: data)
    }
}

/// Reads and writes records as JSON files, atomically.
public enum RecordFile {
    public static func write<T: Encodable>(_ value: T, to path: String) throws(SkiffError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            let data = try encoder.encode(value)
            try AtomicFile.write(Array(data), to: path)
        } catch let error as SystemError {
            throw .internal("persist \(path): \(error)")
        } catch {
            throw .internal("encode \(path): \(error)")
        }
    }

    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(type, from: data)
    }
}

/// Facts about live processes from /proc.
public enum ProcFS {
    /// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or nil if gone.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0, let stat = try? FileSystem.readString("/proc/\(pid)/stat") else { return nil }
        // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is state (field 3); start time is field 22 → index 19.
        guard fields.count > 19, let value = UInt64(fields[19]) else { return nil }
        if fields[0] == "Z" || fields[0] == "X" { return nil }
        return value
    }

    /// True if `pid` is alive and is the same process that started at `startTime`.
    public static func isAlive(_ pid: Int32, startTime: UInt64) -> Bool {
        guard let now = self.startTime(of: pid) else { return false }
        return startTime == 0 || now == startTime
    }
}
