import CRI

/// crictl prints messages with protojson's `EmitDefaultValues`: a ready pod shows `"state": "SANDBOX_READY"`
/// and a fresh container `"exitCode": 0`, where the CRI module's JSON (proto3 default) leaves them out.
/// These tables name, in field order, the scalar, list and map fields of the messages skiffctl prints, so
/// their zero values can be put back. Unset sub-messages stay absent, as with `EmitDefaultValues`.
struct Field {
    let key: String
    let zero: ProtoJSON?
    let message: [Field]?

    static func string(_ key: String) -> Field { Field(key: key, zero: .string(""), message: nil) }
    static func bool(_ key: String) -> Field { Field(key: key, zero: .bool(false), message: nil) }
    static func int32(_ key: String) -> Field { Field(key: key, zero: .int(0), message: nil) }
    /// 64-bit integers are JSON strings in protojson.
    static func int64(_ key: String) -> Field { Field(key: key, zero: .string("0"), message: nil) }
    static func list(_ key: String, of element: [Field]? = nil) -> Field { Field(key: key, zero: .array([]), message: element) }
    static func map(_ key: String) -> Field { Field(key: key, zero: .object([]), message: nil) }
    static func enumeration(_ key: String, zero name: String) -> Field { Field(key: key, zero: .string(name), message: nil) }
    static func message(_ key: String, _ fields: [Field]) -> Field { Field(key: key, zero: nil, message: fields) }
}

enum Schema {
    static let podSandboxMetadata: [Field] = [.string("name"), .string("uid"), .string("namespace"), .int32("attempt")]
    static let containerMetadata: [Field] = [.string("name"), .int32("attempt")]
    static let imageSpec: [Field] = [
        .string("image"), .map("annotations"), .string("userSpecifiedImage"), .string("runtimeHandler"), .string("imageRef"),
    ]
    static let uint64Value: [Field] = [.int64("value")]

    static let podSandbox: [Field] = [
        .string("id"), .message("metadata", podSandboxMetadata), .enumeration("state", zero: "SANDBOX_READY"),
        .int64("createdAt"), .map("labels"), .map("annotations"), .string("runtimeHandler"),
    ]

    static let namespaceOption: [Field] = [
        .enumeration("network", zero: "POD"), .enumeration("pid", zero: "POD"), .enumeration("ipc", zero: "POD"),
        .string("targetId"),
    ]

    static let podSandboxStatus: [Field] = [
        .string("id"), .message("metadata", podSandboxMetadata), .enumeration("state", zero: "SANDBOX_READY"),
        .int64("createdAt"),
        .message("network", [.list("additionalIps", of: [.string("ip")]), .string("ip")]),
        .message("linux", [.message("namespaces", [.message("options", namespaceOption)])]),
        .map("labels"), .map("annotations"), .string("runtimeHandler"),
    ]

    static let container: [Field] = [
        .string("id"), .string("podSandboxId"), .message("metadata", containerMetadata), .message("image", imageSpec),
        .string("imageRef"), .enumeration("state", zero: "CONTAINER_CREATED"), .int64("createdAt"), .map("labels"),
        .map("annotations"), .string("imageId"),
    ]

    static let mount: [Field] = [
        .string("containerPath"), .string("hostPath"), .bool("readonly"), .bool("selinuxRelabel"),
        .enumeration("propagation", zero: "PROPAGATION_PRIVATE"), .list("uidMappings"), .list("gidMappings"),
        .bool("recursiveReadOnly"), .message("image", imageSpec), .string("imageSubPath"),
    ]

    static let linuxContainerResources: [Field] = [
        .int64("cpuPeriod"), .int64("cpuQuota"), .int64("cpuShares"), .int64("memoryLimitInBytes"),
        .int64("oomScoreAdj"), .string("cpusetCpus"), .string("cpusetMems"), .list("hugepageLimits"), .map("unified"),
        .int64("memorySwapLimitInBytes"),
    ]

    static let containerStatus: [Field] = [
        .string("id"), .message("metadata", containerMetadata), .enumeration("state", zero: "CONTAINER_CREATED"),
        .int64("createdAt"), .int64("startedAt"), .int64("finishedAt"), .int32("exitCode"),
        .message("image", imageSpec), .string("imageRef"), .string("reason"), .string("message"), .map("labels"),
        .map("annotations"), .list("mounts", of: mount), .string("logPath"),
        .message("resources", [.message("linux", linuxContainerResources)]), .string("imageId"),
        .message("user", [.message("linux", [.int64("uid"), .int64("gid"), .list("supplementalGroups")])]),
        .enumeration("stopSignal", zero: "RUNTIME_DEFAULT"),
    ]

    static let image: [Field] = [
        .string("id"), .list("repoTags"), .list("repoDigests"), .int64("size"), .message("uid", [.int64("value")]),
        .string("username"), .message("spec", imageSpec), .bool("pinned"),
    ]

    static let filesystemUsage: [Field] = [
        .int64("timestamp"), .message("fsId", [.string("mountpoint")]), .message("usedBytes", uint64Value),
        .message("inodesUsed", uint64Value),
    ]

    static let containerStats: [Field] = [
        .message(
            "attributes",
            [.string("id"), .message("metadata", containerMetadata), .map("labels"), .map("annotations")]),
        .message(
            "cpu",
            [.int64("timestamp"), .message("usageCoreNanoSeconds", uint64Value), .message("usageNanoCores", uint64Value)]),
        .message(
            "memory",
            [
                .int64("timestamp"), .message("workingSetBytes", uint64Value), .message("availableBytes", uint64Value),
                .message("usageBytes", uint64Value), .message("rssBytes", uint64Value),
                .message("pageFaults", uint64Value), .message("majorPageFaults", uint64Value),
            ]),
        .message("writableLayer", filesystemUsage),
        .message(
            "swap",
            [.int64("timestamp"), .message("swapAvailableBytes", uint64Value), .message("swapUsageBytes", uint64Value)]),
    ]

    /// `json` with every field of `fields` present, in field order; keys the table does not know follow.
    static func withDefaults(_ json: ProtoJSON, _ fields: [Field]) -> ProtoJSON {
        guard case .object(let members) = json else { return json }
        var out: [(String, ProtoJSON)] = []
        for field in fields {
            if let value = members.first(where: { $0.0 == field.key })?.1 {
                out.append((field.key, filled(value, field)))
            } else if let zero = field.zero {
                out.append((field.key, zero))
            }
        }
        for (key, value) in members where !fields.contains(where: { $0.key == key }) {
            out.append((key, value))
        }
        return .object(out)
    }

    private static func filled(_ value: ProtoJSON, _ field: Field) -> ProtoJSON {
        guard let sub = field.message else { return value }
        if case .array(let items) = value { return .array(items.map { withDefaults($0, sub) }) }
        return withDefaults(value, sub)
    }

    /// A list response (`{"items": [...]}`) as crictl prints it: the list always present, each element filled.
    static func list(_ key: String, _ items: [ProtoJSON], _ fields: [Field]) -> ProtoJSON {
        .object([(key, .array(items.map { withDefaults($0, fields) }))])
    }
}
