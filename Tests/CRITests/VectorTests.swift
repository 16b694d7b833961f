import CRI
import Testing

@Suite("Golden wire vectors")
struct VectorTests {
    @Test("every vector has a message type", arguments: Vector.all)
    func typeExists(_ v: Vector) {
        #expect(messageTypesByName["runtime.v1." + v.name] != nil)
    }

    @Test("decodes, equals its JSON, round-trips", arguments: Vector.all)
    func decodeMatchesJSONAndRoundTrips(_ v: Vector) throws {
        let type = try #require(messageTypesByName["runtime.v1." + v.name])
        try check(type, v)
    }

    private func check<M: CRIMessage>(_: M.Type, _ v: Vector) throws {
        let decoded = try M(serializedBytes: v.bin)
        let fromJSON = try M(jsonText: v.json)
        #expect(decoded == fromJSON)
        #expect(decoded != M() || v.bin.isEmpty)
        let again = try M(serializedBytes: decoded.serializedBytes())
        #expect(again == decoded)
        // Our JSON (both key styles) reads back to the same value.
        #expect(try M(protoJSON: decoded.protoJSON(useProtoNames: true)) == decoded)
        #expect(try M(jsonText: decoded.jsonText(useProtoNames: false, pretty: true)) == decoded)
    }

    @Test("byte-identical re-encoding where map order cannot differ")
    func byteIdentical() throws {
        var identical = 0
        for v in Vector.all {
            let type = try #require(messageTypesByName["runtime.v1." + v.name])
            if try reencode(type, v.bin) == v.bin { identical += 1 }
        }
        // Map entries are written sorted by key; the reference writes them in insertion order,
        // so only some vectors can match byte for byte. All without multi-entry maps must.
        for name in ["VersionRequest", "VersionResponse", "ExecSyncRequest", "ExecSyncResponse",
                     "StopContainerRequest", "PullImageResponse", "StatusResponse", "ListContainersRequest"] {
            let v = Vector.named(name)
            let type = try #require(messageTypesByName["runtime.v1." + name])
            #expect(try reencode(type, v.bin) == v.bin, "\(name)")
        }
        #expect(identical >= 8)
    }

    private func reencode<M: CRIMessage>(_: M.Type, _ bytes: [UInt8]) throws -> [UInt8] {
        try M(serializedBytes: bytes).serializedBytes()
    }

    @Test("spot checks: values decoded from the reference bytes")
    func spotChecks() throws {
        let version = try VersionResponse(serializedBytes: Vector.named("VersionResponse").bin)
        #expect(version.runtimeName == "example")
        #expect(version.runtimeVersion == "1.2.3")
        #expect(version.runtimeApiVersion == "v1")

        let run = try RunPodSandboxRequest(serializedBytes: Vector.named("RunPodSandboxRequest").bin)
        let config = try #require(run.config)
        #expect(config.labels["app"] == "myapp")
        #expect(config.labels["tier"] == "frontend")
        #expect(config.metadata?.namespace == "default")
        #expect(config.metadata?.attempt == 1)
        #expect(config.portMappings.first?.hostPort == 8080)
        #expect(config.portMappings.first?.protocol == .tcp)
        let security = try #require(config.linux?.securityContext)
        #expect(security.runAsUser?.value == 1000)
        #expect(security.runAsGroup == nil)
        #expect(security.supplementalGroups == [2000, 3000])
        #expect(security.namespaceOptions?.pid == .container)
        #expect(security.namespaceOptions?.network == .pod)
        #expect(security.seccomp != nil && security.seccomp?.profileType == .runtimeDefault)
        #expect(config.linux?.sysctls["net.ipv4.ip_unprivileged_port_start"] == "0")

        // uid {} on the wire: present with value 0 (root), unlike an absent uid.
        let image = try ImageStatusResponse(serializedBytes: Vector.named("ImageStatusResponse").bin)
        #expect(image.image?.uid == Int64Value())
        #expect(image.image?.uid?.value == 0)

        let list = try ListPodSandboxRequest(serializedBytes: Vector.named("ListPodSandboxRequest").bin)
        #expect(list.filter?.state?.state == .sandboxReady)

        let status = try ContainerStatusResponse(serializedBytes: Vector.named("ContainerStatusResponse").bin)
        #expect(status.status?.state == .containerExited)
        #expect(status.status?.exitCode == 137)
        #expect(status.status?.reason == "OOMKilled")
        #expect(status.status?.finishedAt == 1_763_800_030_200_000_003)

        let exec = try ExecSyncResponse(serializedBytes: Vector.named("ExecSyncResponse").bin)
        #expect(exec.stdout == Array("out\n".utf8))
        #expect(exec.exitCode == 3)

        let create = try CreateContainerRequest(serializedBytes: Vector.named("CreateContainerRequest").bin)
        let envs = try #require(create.config?.envs)
        #expect(envs.first == KeyValue(key: "NAME", value: Array("test".utf8)))
        #expect(envs.contains { $0.key == "EMPTY" && $0.value.isEmpty })
    }

    @Test("run_as_user: unset and 0 are different on the wire")
    func wrapperPresence() throws {
        var unset = LinuxContainerSecurityContext()
        unset.privileged = true
        var root = unset
        root.runAsUser = Int64Value()
        #expect(unset.serializedBytes() != root.serializedBytes())
        #expect(try LinuxContainerSecurityContext(serializedBytes: root.serializedBytes()).runAsUser?.value == 0)
        #expect(try LinuxContainerSecurityContext(serializedBytes: unset.serializedBytes()).runAsUser == nil)
        // Field 5, length 0: an empty Int64Value.
        #expect(root.serializedBytes().suffix(2) == [0x2A, 0x00])
    }

    @Test("hand-built wire bytes decode into the expected fields")
    func handBuilt() throws {
        var w = Wire()
        w.lengthDelimited(1, Array("abc".utf8))  // container_id
        w.varintField(2, 30)  // timeout
        let stop = try StopContainerRequest(serializedBytes: w.bytes)
        #expect(stop.containerId == "abc")
        #expect(stop.timeout == 30)
        #expect(stop.serializedBytes() == w.bytes)

        // Negative int64 is a 10-byte varint.
        var neg = StopContainerRequest()
        neg.timeout = -1
        #expect(neg.serializedBytes() == [0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }

    @Test("unknown enum numbers are preserved")
    func unknownEnum() throws {
        var w = Wire()
        w.varintField(3, 7)  // PodSandboxStatus.state = 7 (not in the schema)
        let s = try PodSandboxStatus(serializedBytes: w.bytes)
        #expect(s.state.rawValue == 7)
        #expect(s.state.name == "7")
        #expect(s.serializedBytes() == w.bytes)
        #expect(s.protoJSON(useProtoNames: false).serialized() == #"{"state":7}"#)
        #expect(PodSandboxState.sandboxNotready.name == "SANDBOX_NOTREADY")
        #expect(PodSandboxState(name: "SANDBOX_READY") == .sandboxReady)
        #expect(ContainerState.containerRunning.rawValue == 1)
        #expect(NamespaceMode.target.rawValue == 3)
        #expect(CRIProtocol.sctp.name == "SCTP")
        #expect(Signal.signalSigkill.rawValue == 13)
        #expect(SecurityProfile.ProfileType.localhost.rawValue == 2)
    }

    @Test("every message type: default value encodes to nothing and decodes from nothing")
    func defaults() throws {
        for type in CRIMessageTypes.all {
            try checkDefault(type)
        }
        #expect(CRIMessageTypes.all.count == 175)
    }

    private func checkDefault<M: CRIMessage>(_: M.Type) throws {
        #expect(M().serializedBytes().isEmpty, "\(M.protoName)")
        #expect(try M(serializedBytes: []) == M(), "\(M.protoName)")
        #expect(M().protoJSON(useProtoNames: false).serialized() == "{}")
        #expect(try M(jsonText: "{}") == M())
        #expect(M.protoName.hasPrefix("runtime.v1."))
    }
}

extension KeyValue {
    init(key: String, value: [UInt8]) {
        self.init()
        self.key = key
        self.value = value
    }
}
