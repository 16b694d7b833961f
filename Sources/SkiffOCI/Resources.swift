// `linux.resources`: cgroup limits. Values keep the spec's (cgroup v1) units; the launcher converts
// them for cgroup v2 (see SkiffLauncher/CgroupV2.swift).

public struct Resources: JSONCodable, Equatable {
    public var devices: [DeviceRule]
    public var memory: MemoryResources?
    public var cpu: CPUResources?
    public var pids: PidsResources?
    public var hugepageLimits: [HugepageLimit]
    /// cgroup v2 files written verbatim (`"memory.high": "1G"`). v2 only.
    public var unified: [String: String]
    /// Carried verbatim; skiff-runc refuses specs that set them.
    public var blockIO: JSON?
    public var network: JSON?
    public var rdma: JSON?

    public init(devices: [DeviceRule] = [], memory: MemoryResources? = nil, cpu: CPUResources? = nil,
                pids: PidsResources? = nil, hugepageLimits: [HugepageLimit] = [], unified: [String: String] = [:]) {
        self.devices = devices
        self.memory = memory
        self.cpu = cpu
        self.pids = pids
        self.hugepageLimits = hugepageLimits
        self.unified = unified
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        devices = try r.decodeArray("devices")
        memory = try r.decode("memory")
        cpu = try r.decode("cpu")
        pids = try r.decode("pids")
        hugepageLimits = try r.decodeArray("hugepageLimits")
        unified = try r.stringMap("unified")
        blockIO = r.object["blockIO"].flatMap { $0 == .null ? nil : $0 }
        network = r.object["network"].flatMap { $0 == .null ? nil : $0 }
        rdma = r.object["rdma"].flatMap { $0 == .null ? nil : $0 }
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("devices", devices)
        b.set("memory", memory)
        b.set("cpu", cpu)
        b.set("pids", pids)
        b.set("hugepageLimits", hugepageLimits)
        b.set("unified", unified)
        if let blockIO { b.set("blockIO", blockIO) }
        if let network { b.set("network", network) }
        if let rdma { b.set("rdma", rdma) }
        return b.json
    }
}

public struct MemoryResources: JSONCodable, Equatable {
    /// Bytes; -1 means unlimited.
    public var limit: Int64?
    public var reservation: Int64?
    /// Memory plus swap, bytes (v1 `memsw` semantics); -1 means unlimited.
    public var swap: Int64?
    public var kernel: Int64?
    public var kernelTCP: Int64?
    public var swappiness: UInt64?
    public var disableOOMKiller: Bool?
    public var useHierarchy: Bool?
    public var checkBeforeUpdate: Bool?

    public init(limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil, swappiness: UInt64? = nil,
                disableOOMKiller: Bool? = nil) {
        self.limit = limit
        self.reservation = reservation
        self.swap = swap
        self.swappiness = swappiness
        self.disableOOMKiller = disableOOMKiller
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        limit = try r.optionalInt64("limit")
        reservation = try r.optionalInt64("reservation")
        swap = try r.optionalInt64("swap")
        kernel = try r.optionalInt64("kernel")
        kernelTCP = try r.optionalInt64("kernelTCP")
        swappiness = try r.optionalUInt64("swappiness")
        disableOOMKiller = try r.optionalBool("disableOOMKiller")
        useHierarchy = try r.optionalBool("useHierarchy")
        checkBeforeUpdate = try r.optionalBool("checkBeforeUpdate")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("limit", limit)
        b.set("reservation", reservation)
        b.set("swap", swap)
        b.set("kernel", kernel)
        b.set("kernelTCP", kernelTCP)
        b.set("swappiness", swappiness)
        b.set("disableOOMKiller", disableOOMKiller)
        b.set("useHierarchy", useHierarchy)
        b.set("checkBeforeUpdate", checkBeforeUpdate)
        return b.json
    }
}

public struct CPUResources: JSONCodable, Equatable {
    /// v1 shares (2..262144); converted to a v2 weight on cgroup v2.
    public var shares: UInt64?
    /// Microseconds per period; -1 or absent means no limit.
    public var quota: Int64?
    public var burst: UInt64?
    /// Microseconds.
    public var period: UInt64?
    public var realtimeRuntime: Int64?
    public var realtimePeriod: UInt64?
    public var cpus: String?
    public var mems: String?
    public var idle: Int64?

    public init(shares: UInt64? = nil, quota: Int64? = nil, period: UInt64? = nil, cpus: String? = nil,
                mems: String? = nil) {
        self.shares = shares
        self.quota = quota
        self.period = period
        self.cpus = cpus
        self.mems = mems
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        shares = try r.optionalUInt64("shares")
        quota = try r.optionalInt64("quota")
        burst = try r.optionalUInt64("burst")
        period = try r.optionalUInt64("period")
        realtimeRuntime = try r.optionalInt64("realtimeRuntime")
        realtimePeriod = try r.optionalUInt64("realtimePeriod")
        cpus = try r.optionalString("cpus")
        mems = try r.optionalString("mems")
        idle = try r.optionalInt64("idle")
        if cpus == "" { cpus = nil }
        if mems == "" { mems = nil }
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("shares", shares)
        b.set("quota", quota)
        b.set("burst", burst)
        b.set("period", period)
        b.set("realtimeRuntime", realtimeRuntime)
        b.set("realtimePeriod", realtimePeriod)
        b.set("cpus", cpus)
        b.set("mems", mems)
        b.set("idle", idle)
        return b.json
    }
}

public struct PidsResources: JSONCodable, Equatable {
    /// 0 or negative means unlimited.
    public var limit: Int64
    public init(limit: Int64) { self.limit = limit }
    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        limit = try r.optionalInt64("limit") ?? 0
    }
    public var json: JSON { .object(["limit": .int(limit)]) }
}

/// One device cgroup rule (`allow`, type `a`/`c`/`b`, major/minor, access `rwm`).
public struct DeviceRule: JSONCodable, Equatable {
    public var allow: Bool
    public var type: String?
    public var major: Int64?
    public var minor: Int64?
    public var access: String?

    public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access
    }

    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        allow = try r.bool("allow")
        type = try r.optionalString("type")
        major = try r.optionalInt64("major")
        minor = try r.optionalInt64("minor")
        access = try r.optionalString("access")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("allow", .bool(allow))
        b.set("type", type)
        b.set("major", major)
        b.set("minor", minor)
        b.set("access", access)
        return b.json
    }
}

public struct HugepageLimit: JSONCodable, Equatable {
    /// `2MB`, `1GB`, ...
    public var pageSize: String
    public var limit: UInt64
    public init(pageSize: String, limit: UInt64) { self.pageSize = pageSize; self.limit = limit }
    public init(json: JSON, path: String) throws(JSONError) {
        let r = try JSONReader(json, path: path)
        pageSize = try r.string("pageSize")
        limit = try r.uint64("limit")
    }
    public var json: JSON { .object(["pageSize": .string(pageSize), "limit": JSON(limit)]) }
}
