// The OCI container state document (runtime.md, "State"), as printed by `skiff-runc state`.

public struct State: JSONCodable, Equatable {
    public enum Status: String, Sendable {
        case creating, created, running, stopped
    }

    public var ociVersion: String
    public var id: String
    public var status: Status
    /// Required while created or running; 0 when stopped.
    public var pid: Int32
    public var bundle: String
    public var annotations: [String: String]
    /// Extra (allowed by the spec): when the container was created, RFC 3339.
    public var created: String?

    public init(ociVersion: String = SkiffOCI.ociVersion, id: String, status: Status, pid: Int32, bundle: String,
                annotations: [String: String] = [:], created: String? = nil) {
        self.ociVersion = ociVersion
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.annotations = annotations
        self.created = created
    }

    public init(json: JSON, path: String = "") throws(JSONError) {
        let r = try JSONReader(json, path: path)
        ociVersion = try r.string("ociVersion")
        id = try r.string("id")
        let s = try r.string("status")
        guard let st = Status(rawValue: s) else { throw JSONError(path: r.sub("status"), message: "unknown status \"\(s)\"") }
        status = st
        pid = Int32(truncatingIfNeeded: try r.optionalInt64("pid") ?? 0)
        bundle = try r.string("bundle")
        annotations = try r.stringMap("annotations")
        created = try r.optionalString("created")
    }

    public var json: JSON {
        var b = JSONBuilder()
        b.set("ociVersion", ociVersion)
        b.set("id", id)
        b.set("status", status.rawValue)
        b.set("pid", .int(Int64(pid)))
        b.set("bundle", bundle)
        b.set("annotations", annotations)
        b.set("created", created)
        return b.json
    }
}
