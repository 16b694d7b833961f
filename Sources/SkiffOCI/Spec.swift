// OCI runtime-spec configuration (config.json) as plain Swift values.
//
// Field names and meanings follow the runtime-spec text (config.md, config-linux.md). Every type
// decodes with `init(json:path:)` (unknown fields are ignored, as the spec asks) and encodes with
// `json`, leaving out empty fields. Rarely used sections that skiff-runc does not apply are kept
// as raw `JSON` so that they survive a round trip and can be rejected by name.

public let ociVersion = "1.0.2"

/// The whole config.json.
public struct Spec: JSONCodable, Equatable {
    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var domainname: String?
    public var mounts: [Mount]
    public var hooks: Hooks?
    public var annotations: [String: String]
    public var linux: Linux?

    public init(ociVersion: String = SkiffOCI.ociVersion, process: Process? = nil, root: Root? = nil,
                hostname: String? = nil, domainname: String? = nil, mounts: [Mount] = [],
                hooks: Hooks? = nil, annotations: [String: String] = [:], linux: Linux? = nil) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.hooks = hooks
        self.annotations = annotations
        self.linux = linux
    }

    public init(json: JSON, path: String = "") throws(JSONError) {
        let r = try JSONReader(json, path: path)
        ociVersion = try r.string("ociVersion")
        process = try r.decode("process")
        root = try r.decode("root")
        hostname = try r.optionalString("hostname")
        domainname = try r.optionalString("domainname")
        mounts = try r.decodeArray("mounts")
        hooks = try r.decode("hooks")
        annotations = try r.stringMap("annotations")
        linux = try r.decode("linux")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("ociVersion", ociVersion)
        b.set("process", process)
        b.set("root", root)
        b.set("hostname", hostname)
        b.set("domainname", domainname)
        b.set("mounts", mounts)
        b.set("hooks", hooks)
        b.set("annotations", annotations)
        b.set("linux", linux)
        return b.json
    }
}

/// `process`: what runs in the container.
public struct Process: JSONCodable, Equatable {
    public var terminal: Bool
    public var consoleSize: ConsoleSize?
    public var user: User
    public var args: [String]
    public var env: [String]
    public var cwd: String
    public var capabilities: Capabilities?
    public var rlimits: [Rlimit]
    public var noNewPrivileges: Bool
    public var apparmorProfile: String?
    public var oomScoreAdj: Int?
    public var selinuxLabel: String?
    public var ioPriority: IOPriority?
    /// `scheduler` and `execCPUAffinity` are carried but not applied (skiff-runc rejects them).
    public var scheduler: JSON?
    public var execCPUAffinity: JSON?

    public init(terminal: Bool = false, consoleSize: ConsoleSize? = nil, user: User = User(),
                args: [String], env: [String] = [], cwd: String = "/", capabilities: Capabilities? = nil,
                rlimits: [Rlimit] = [], noNewPrivileges: Bool = false, apparmorProfile: String? = nil,
                oomScoreAdj: Int? = nil, selinuxLabel: String? = nil, ioPriority: IOPriority? = nil) {
        self.terminal = terminal
        self.consoleSize = consoleSize
        self.user = user
        self.args = args
        self.env = env
        self.cwd = cwd
        self.capabilities = capabilities
        self.rlimits = rlimits
        self.noNewPrivileges = noNewPrivileges
        self.apparmorProfile = apparmorProfile
        self.oomScoreAdj = oomScoreAdj
        self.selinuxLabel = selinuxLabel
        self.ioPriority = ioPriority
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        terminal = try r.bool("terminal")
        consoleSize = try r.decode("consoleSize")
        user = try r.decode("user") ?? User()
        args = try r.strings("args")
        env = try r.strings("env")
        cwd = try r.optionalString("cwd") ?? "/"
        capabilities = try r.decode("capabilities")
        rlimits = try r.decodeArray("rlimits")
        noNewPrivileges = try r.bool("noNewPrivileges")
        apparmorProfile = try r.optionalString("apparmorProfile")
        oomScoreAdj = try r.optionalInt("oomScoreAdj")
        selinuxLabel = try r.optionalString("selinuxLabel")
        ioPriority = try r.decode("ioPriority")
        scheduler = r.object["scheduler"]
        execCPUAffinity = r.object["execCPUAffinity"]
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.setTrue("terminal", terminal)
        b.set("consoleSize", consoleSize)
        b.set("user", user)
        b.set("args", args)
        b.set("env", env)
        b.set("cwd", cwd)
        b.set("capabilities", capabilities)
        b.set("rlimits", rlimits)
        b.setTrue("noNewPrivileges", noNewPrivileges)
        b.set("apparmorProfile", apparmorProfile)
        b.set("oomScoreAdj", oomScoreAdj)
        b.set("selinuxLabel", selinuxLabel)
        b.set("ioPriority", ioPriority)
        if let scheduler { b.set("scheduler", scheduler) }
        if let execCPUAffinity { b.set("execCPUAffinity", execCPUAffinity) }
        return b.json
    }
}

public struct ConsoleSize: JSONCodable, Equatable {
    public var height: UInt32
    public var width: UInt32
    public init(height: UInt32, width: UInt32) { self.height = height; self.width = width }
    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        height = try r.uint32("height")
        width = try r.uint32("width")
    }
    public var json: JSON { .object(["height": JSON(height), "width": JSON(width)]) }
}

public struct User: JSONCodable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var umask: UInt32?
    public var additionalGids: [UInt32]

    public init(uid: UInt32 = 0, gid: UInt32 = 0, umask: UInt32? = nil, additionalGids: [UInt32] = []) {
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additionalGids = additionalGids
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        uid = try r.optionalUInt32("uid") ?? 0
        gid = try r.optionalUInt32("gid") ?? 0
        umask = try r.optionalUInt32("umask")
        additionalGids = try r.uint32s("additionalGids")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("uid", .int(Int64(uid)))
        b.set("gid", .int(Int64(gid)))
        b.set("umask", umask)
        b.set("additionalGids", additionalGids)
        return b.json
    }
}

/// Capability names such as `CAP_KILL`, per set.
public struct Capabilities: JSONCodable, Equatable {
    public var bounding: [String]
    public var effective: [String]
    public var inheritable: [String]
    public var permitted: [String]
    public var ambient: [String]

    public init(bounding: [String] = [], effective: [String] = [], inheritable: [String] = [],
                permitted: [String] = [], ambient: [String] = []) {
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient
    }

    /// The same list in bounding, effective and permitted (what CRI runtimes usually produce).
    public init(all caps: [String]) {
        self.init(bounding: caps, effective: caps, permitted: caps)
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        bounding = try r.strings("bounding")
        effective = try r.strings("effective")
        inheritable = try r.strings("inheritable")
        permitted = try r.strings("permitted")
        ambient = try r.strings("ambient")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("bounding", bounding)
        b.set("effective", effective)
        b.set("inheritable", inheritable)
        b.set("permitted", permitted)
        b.set("ambient", ambient)
        return b.json
    }
}

/// One POSIX rlimit, e.g. `RLIMIT_NOFILE`.
public struct Rlimit: JSONCodable, Equatable {
    public var type: String
    public var hard: UInt64
    public var soft: UInt64

    public init(type: String, hard: UInt64, soft: UInt64) {
        self.type = type
        self.hard = hard
        self.soft = soft
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        type = try r.string("type")
        hard = try r.uint64("hard")
        soft = try r.uint64("soft")
    }

    public var json: JSON { .object(["type": .string(type), "hard": JSON(hard), "soft": JSON(soft)]) }
}

public struct IOPriority: JSONCodable, Equatable {
    /// `IOPRIO_CLASS_RT`, `IOPRIO_CLASS_BE` or `IOPRIO_CLASS_IDLE`.
    public var ioClass: String
    public var priority: Int
    public init(ioClass: String, priority: Int) { self.ioClass = ioClass; self.priority = priority }
    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        ioClass = try r.string("class")
        priority = try r.optionalInt("priority") ?? 0
    }
    public var json: JSON { .object(["class": .string(ioClass), "priority": JSON(priority)]) }
}

public struct Root: JSONCodable, Equatable {
    /// Relative paths are relative to the bundle.
    public var path: String
    public var readonly: Bool

    public init(path: String, readonly: Bool = false) { self.path = path; self.readonly = readonly }

    public init(json: JSON, path p: String) throws(JSONError) {
        let r = try JSONReader(json, path: p)
        path = try r.string("path")
        readonly = try r.bool("readonly")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("path", path)
        b.setTrue("readonly", readonly)
        return b.json
    }
}

public struct Mount: JSONCodable, Equatable {
    public var destination: String
    public var type: String?
    public var source: String?
    public var options: [String]
    /// Id-mapped mounts: parsed so they can be rejected by name.
    public var uidMappings: [IDMapping]
    public var gidMappings: [IDMapping]

    public init(destination: String, type: String? = nil, source: String? = nil, options: [String] = []) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
        self.uidMappings = []
        self.gidMappings = []
    }

    /// A bind mount of a host path (`rbind`, plus `ro` when read-only).
    public static func bind(_ source: String, to destination: String, readOnly: Bool = false,
                            propagation: String? = "rprivate") -> Mount {
        var opts = ["rbind"]
        if let propagation { opts.append(propagation) }
        if readOnly { opts.append("ro") }
        return Mount(destination: destination, type: "bind", source: source, options: opts)
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        destination = try r.string("destination")
        type = try r.optionalString("type")
        source = try r.optionalString("source")
        options = try r.strings("options")
        uidMappings = try r.decodeArray("uidMappings")
        gidMappings = try r.decodeArray("gidMappings")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("destination", destination)
        b.set("type", type)
        b.set("source", source)
        b.set("options", options)
        b.set("uidMappings", uidMappings)
        b.set("gidMappings", gidMappings)
        return b.json
    }
}

public struct Hook: JSONCodable, Equatable {
    public var path: String
    public var args: [String]
    public var env: [String]
    /// Seconds.
    public var timeout: Int?

    public init(path: String, args: [String] = [], env: [String] = [], timeout: Int? = nil) {
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout
    }

    public init(json: JSON, path p: String) throws(JSONError) {
        let r = try JSONReader(json, path: p)
        path = try r.string("path")
        args = try r.strings("args")
        env = try r.strings("env")
        timeout = try r.optionalInt("timeout")
        if let t = timeout, t <= 0 { throw JSONError(path: r.sub("timeout"), message: "must be greater than zero") }
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("path", path)
        b.set("args", args)
        b.set("env", env)
        b.set("timeout", timeout)
        return b.json
    }
}

public struct Hooks: JSONCodable, Equatable {
    public var prestart: [Hook]
    public var createRuntime: [Hook]
    public var createContainer: [Hook]
    public var startContainer: [Hook]
    public var poststart: [Hook]
    public var poststop: [Hook]

    public init(prestart: [Hook] = [], createRuntime: [Hook] = [], createContainer: [Hook] = [],
                startContainer: [Hook] = [], poststart: [Hook] = [], poststop: [Hook] = []) {
        self.prestart = prestart
        self.createRuntime = createRuntime
        self.createContainer = createContainer
        self.startContainer = startContainer
        self.poststart = poststart
        self.poststop = poststop
    }

    public var isEmpty: Bool {
        prestart.isEmpty && createRuntime.isEmpty && createContainer.isEmpty && startContainer.isEmpty
            && poststart.isEmpty && poststop.isEmpty
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        prestart = try r.decodeArray("prestart")
        createRuntime = try r.decodeArray("createRuntime")
        createContainer = try r.decodeArray("createContainer")
        startContainer = try r.decodeArray("startContainer")
        poststart = try r.decodeArray("poststart")
        poststop = try r.decodeArray("poststop")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("prestart", prestart)
        b.set("createRuntime", createRuntime)
        b.set("createContainer", createContainer)
        b.set("startContainer", startContainer)
        b.set("poststart", poststart)
        b.set("poststop", poststop)
        return b.json
    }
}
