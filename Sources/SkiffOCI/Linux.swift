// The `linux` section of config.json (config-linux.md).

public struct Linux: JSONCodable, Equatable {
    public var namespaces: [Namespace]
    public var uidMappings: [IDMapping]
    public var gidMappings: [IDMapping]
    public var devices: [Device]
    /// Absolute: relative to the cgroup root. Relative: also taken from the cgroup root.
    /// Absent: `/skiff/<container id>`.
    public var cgroupsPath: String?
    public var resources: Resources?
    /// `private`, `shared`, `slave` or `unbindable` (the `r` forms are accepted too).
    public var rootfsPropagation: String?
    public var seccomp: Seccomp?
    public var sysctl: [String: String]
    public var maskedPaths: [String]
    public var readonlyPaths: [String]
    public var mountLabel: String?
    public var personality: Personality?
    /// Carried verbatim; skiff-runc refuses specs that set them.
    public var intelRdt: JSON?
    public var timeOffsets: JSON?
    public var netDevices: JSON?
    public var memoryPolicy: JSON?

    public init(namespaces: [Namespace] = [], uidMappings: [IDMapping] = [], gidMappings: [IDMapping] = [],
                devices: [Device] = [], cgroupsPath: String? = nil, resources: Resources? = nil,
                rootfsPropagation: String? = nil, seccomp: Seccomp? = nil, sysctl: [String: String] = [:],
                maskedPaths: [String] = [], readonlyPaths: [String] = [], mountLabel: String? = nil,
                personality: Personality? = nil) {
        self.namespaces = namespaces
        self.uidMappings = uidMappings
        self.gidMappings = gidMappings
        self.devices = devices
        self.cgroupsPath = cgroupsPath
        self.resources = resources
        self.rootfsPropagation = rootfsPropagation
        self.seccomp = seccomp
        self.sysctl = sysctl
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
        self.mountLabel = mountLabel
        self.personality = personality
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        namespaces = try r.decodeArray("namespaces")
        uidMappings = try r.decodeArray("uidMappings")
        gidMappings = try r.decodeArray("gidMappings")
        devices = try r.decodeArray("devices")
        cgroupsPath = try r.optionalString("cgroupsPath")
        resources = try r.decode("resources")
        rootfsPropagation = try r.optionalString("rootfsPropagation")
        seccomp = try r.decode("seccomp")
        sysctl = try r.stringMap("sysctl")
        maskedPaths = try r.strings("maskedPaths")
        readonlyPaths = try r.strings("readonlyPaths")
        mountLabel = try r.optionalString("mountLabel")
        personality = try r.decode("personality")
        intelRdt = r.object["intelRdt"]
        timeOffsets = r.object["timeOffsets"]
        netDevices = r.object["netDevices"]
        memoryPolicy = r.object["memoryPolicy"]
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("namespaces", namespaces)
        b.set("uidMappings", uidMappings)
        b.set("gidMappings", gidMappings)
        b.set("devices", devices)
        b.set("cgroupsPath", cgroupsPath)
        b.set("resources", resources)
        b.set("rootfsPropagation", rootfsPropagation)
        b.set("seccomp", seccomp)
        b.set("sysctl", sysctl)
        b.set("maskedPaths", maskedPaths)
        b.set("readonlyPaths", readonlyPaths)
        b.set("mountLabel", mountLabel)
        b.set("personality", personality)
        if let intelRdt { b.set("intelRdt", intelRdt) }
        if let timeOffsets { b.set("timeOffsets", timeOffsets) }
        if let netDevices { b.set("netDevices", netDevices) }
        if let memoryPolicy { b.set("memoryPolicy", memoryPolicy) }
        return b.json
    }

    /// The namespace entry of a kind, if any.
    public func namespace(_ kind: NamespaceKind) -> Namespace? { namespaces.first { $0.type == kind } }
}

public enum NamespaceKind: String, Sendable, CaseIterable {
    case pid, network, mount, ipc, uts, user, cgroup, time
}

/// A namespace to create (no `path`) or to join (`path`, e.g. `/proc/1234/ns/net`).
public struct Namespace: JSONCodable, Equatable {
    public var type: NamespaceKind
    public var path: String?

    public init(_ type: NamespaceKind, path: String? = nil) { self.type = type; self.path = path }

    public init(json: JSON, path p: String) throws(JSONError) {
        let r = try JSONReader(json, path: p)
        let t = try r.string("type")
        guard let kind = NamespaceKind(rawValue: t) else {
            throw JSONError(path: r.sub("type"), message: "unknown namespace type \"\(t)\"")
        }
        type = kind
        path = try r.optionalString("path")
        if path == "" { path = nil }
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("type", type.rawValue)
        b.set("path", path)
        return b.json
    }
}

public struct IDMapping: JSONCodable, Equatable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        containerID = try r.uint32("containerID")
        hostID = try r.uint32("hostID")
        size = try r.uint32("size")
    }

    public var json: JSON {
        .object(["containerID": JSON(containerID), "hostID": JSON(hostID), "size": JSON(size)])
    }
}

/// A device node to create in the container's /dev.
public struct Device: JSONCodable, Equatable {
    public var path: String
    /// `c`, `b`, `u` or `p`.
    public var type: String
    public var major: Int64
    public var minor: Int64
    public var fileMode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?

    public init(path: String, type: String, major: Int64, minor: Int64, fileMode: UInt32? = nil,
                uid: UInt32? = nil, gid: UInt32? = nil) {
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.fileMode = fileMode
        self.uid = uid
        self.gid = gid
    }

    public init(json: JSON, path p: String) throws(JSONError) {
        let r = try JSONReader(json, path: p)
        path = try r.string("path")
        type = try r.string("type")
        major = try r.optionalInt64("major") ?? 0
        minor = try r.optionalInt64("minor") ?? 0
        fileMode = try r.optionalUInt32("fileMode")
        uid = try r.optionalUInt32("uid")
        gid = try r.optionalUInt32("gid")
        guard ["c", "b", "u", "p"].contains(type) else {
            throw JSONError(path: r.sub("type"), message: "device type must be c, b, u or p, not \"\(type)\"")
        }
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("path", path)
        b.set("type", type)
        b.set("major", major)
        b.set("minor", minor)
        b.set("fileMode", fileMode)
        b.set("uid", uid)
        b.set("gid", gid)
        return b.json
    }
}

public struct Personality: JSONCodable, Equatable {
    /// `LINUX` or `LINUX32`.
    public var domain: String
    public var flags: [String]
    public init(domain: String, flags: [String] = []) { self.domain = domain; self.flags = flags }
    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        domain = try r.string("domain")
        flags = try r.strings("flags")
    }
    public var json: JSON {
        var b = JSONBuilder()
        b.set("domain", domain)
        b.set("flags", flags)
        return b.json
    }
}

// MARK: - Seccomp

public struct Seccomp: JSONCodable, Equatable {
    public var defaultAction: String
    public var defaultErrnoRet: UInt32?
    public var architectures: [String]
    public var flags: [String]
    public var listenerPath: String?
    public var listenerMetadata: String?
    public var syscalls: [Syscall]

    public init(defaultAction: String, defaultErrnoRet: UInt32? = nil, architectures: [String] = [],
                flags: [String] = [], syscalls: [Syscall] = []) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.flags = flags
        self.listenerPath = nil
        self.listenerMetadata = nil
        self.syscalls = syscalls
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        defaultAction = try r.string("defaultAction")
        defaultErrnoRet = try r.optionalUInt32("defaultErrnoRet")
        architectures = try r.strings("architectures")
        flags = try r.strings("flags")
        listenerPath = try r.optionalString("listenerPath")
        listenerMetadata = try r.optionalString("listenerMetadata")
        syscalls = try r.decodeArray("syscalls")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("defaultAction", defaultAction)
        b.set("defaultErrnoRet", defaultErrnoRet)
        b.set("architectures", architectures)
        b.set("flags", flags)
        b.set("listenerPath", listenerPath)
        b.set("listenerMetadata", listenerMetadata)
        b.set("syscalls", syscalls)
        return b.json
    }

    public struct Syscall: JSONCodable, Equatable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [Arg]

        public init(names: [String], action: String, errnoRet: UInt32? = nil, args: [Arg] = []) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }

        public init(json: JSON, path: String) throws(JSONError) {
            let r = try JSONReader(json, path: path)
            names = try r.strings("names")
            action = try r.string("action")
            errnoRet = try r.optionalUInt32("errnoRet")
            args = try r.decodeArray("args")
        }

        public var json: JSON {
            var b = JSONBuilder()
            b.set("names", names)
            b.set("action", action)
            b.set("errnoRet", errnoRet)
            b.set("args", args)
            return b.json
        }
    }

    public struct Arg: JSONCodable, Equatable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64
        public var op: String

        public init(index: UInt32, value: UInt64, valueTwo: UInt64 = 0, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }

        public init(json: JSON, path: String) throws(JSONError) {
            let r = try JSONReader(json, path: path)
            index = try r.uint32("index")
            value = try r.uint64("value")
            valueTwo = try r.optionalUInt64("valueTwo") ?? 0
            op = try r.string("op")
        }

        public var json: JSON {
            var b = JSONBuilder()
            b.set("index", index)
            b.set("value", value)
            if valueTwo != 0 { b.set("valueTwo", valueTwo) }
            b.set("op", op)
            return b.json
        }
    }
}
