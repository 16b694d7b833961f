import CRI
import Testing

@Suite("proto3 JSON")
struct JSONTests {
    static func samplePodConfig() -> PodSandboxConfig {
        var meta = PodSandboxMetadata()
        meta.name = "n"
        meta.uid = "u"
        meta.namespace = "ns"
        meta.attempt = 1
        var port = PortMapping()
        port.protocol = .udp
        port.containerPort = 53
        var security = LinuxSandboxSecurityContext()
        security.runAsUser = Int64Value()  // present, value 0
        security.supplementalGroups = [5]
        var linux = LinuxPodSandboxConfig()
        linux.securityContext = security
        var c = PodSandboxConfig()
        c.metadata = meta
        c.logDirectory = "/tmp"
        c.portMappings = [port]
        c.labels = ["b": "2", "a": "1"]
        c.linux = linux
        return c
    }

    @Test("lowerCamelCase output, pretty, like protojson + MarshalIndent")
    func camelPretty() {
        let expected = """
            {
              "metadata": {
                "name": "n",
                "uid": "u",
                "namespace": "ns",
                "attempt": 1
              },
              "logDirectory": "/tmp",
              "portMappings": [
                {
                  "protocol": "UDP",
                  "containerPort": 53
                }
              ],
              "labels": {
                "a": "1",
                "b": "2"
              },
              "linux": {
                "securityContext": {
                  "runAsUser": {},
                  "supplementalGroups": [
                    "5"
                  ]
                }
              }
            }
            """
        #expect(Self.samplePodConfig().protoJSON(useProtoNames: false).serialized(pretty: true) == expected)
    }

    @Test("proto names, compact")
    func protoNamesCompact() {
        let text = Self.samplePodConfig().jsonText(useProtoNames: true)
        #expect(text == #"{"metadata":{"name":"n","uid":"u","namespace":"ns","attempt":1},"log_directory":"/tmp","#
            + #""port_mappings":[{"protocol":"UDP","container_port":53}],"labels":{"a":"1","b":"2"},"#
            + #""linux":{"security_context":{"run_as_user":{},"supplemental_groups":["5"]}}}"#)
    }

    @Test("field names that are not plain snake_case keep the schema's json_name")
    func oddNames() {
        var c = ContainerConfig()
        var cdi = CDIDevice()
        cdi.name = "vendor.com/gpu=0"
        c.cdiDevices = [cdi]
        var mount = Mount()
        var idm = IDMapping()
        idm.length = 65536
        mount.uidMappings = [idm]
        c.mounts = [mount]
        #expect(c.jsonText() == #"{"mounts":[{"uidMappings":[{"length":65536}]}],"CDIDevices":[{"name":"vendor.com/gpu=0"}]}"#)
        #expect(c.jsonText(useProtoNames: true)
            == #"{"mounts":[{"uidMappings":[{"length":65536}]}],"CDI_devices":[{"name":"vendor.com/gpu=0"}]}"#)
        #expect(try! ContainerConfig(jsonText: c.jsonText()) == c)
        #expect(try! ContainerConfig(jsonText: c.jsonText(useProtoNames: true)) == c)

        var psi = PsiStats()
        var full = PsiData()
        full.total = 12
        full.avg10 = 0.5
        psi.full = full
        #expect(psi.jsonText() == #"{"Full":{"Total":"12","Avg10":0.5}}"#)
    }

    @Test("crictl pod config, snake_case and camelCase forms")
    func crictlPodConfig() throws {
        let snake = #"{"metadata":{"name":"n","namespace":"ns","uid":"u","attempt":1},"log_directory":"/tmp","linux":{}}"#
        let camel = #"{"metadata":{"name":"n","namespace":"ns","uid":"u","attempt":1},"logDirectory":"/tmp","linux":{}}"#
        let a = try PodSandboxConfig(jsonText: snake)
        let b = try PodSandboxConfig(jsonText: camel)
        #expect(a == b)
        #expect(a.metadata?.name == "n")
        #expect(a.metadata?.namespace == "ns")
        #expect(a.metadata?.uid == "u")
        #expect(a.metadata?.attempt == 1)
        #expect(a.logDirectory == "/tmp")
        #expect(a.linux == LinuxPodSandboxConfig())  // present but empty
        #expect(a.windows == nil)
    }

    @Test("lenient input: numbers for 64-bit ints and enums, strings for ints, null, unknown keys")
    func lenientInput() throws {
        let text = """
            {
              "container_id": "c1", "timeout": "30", "unknownKey": {"x": [1, 2]}
            }
            """
        let stop = try StopContainerRequest(jsonText: text)
        #expect(stop.containerId == "c1")
        #expect(stop.timeout == 30)
        #expect(try StopContainerRequest(jsonText: #"{"timeout": 30}"#).timeout == 30)
        #expect(try StopContainerRequest(jsonText: #"{"timeout": -9223372036854775808}"#).timeout == .min)
        #expect(try StopContainerRequest(jsonText: #"{"timeout": 1e3}"#).timeout == 1000)
        #expect(try StopContainerRequest(jsonText: #"{"containerId": null}"#) == StopContainerRequest())

        let ns = try NamespaceOption(jsonText: #"{"network": 2, "pid": "CONTAINER", "ipc": "POD"}"#)
        #expect(ns.network == .node)
        #expect(ns.pid == .container)
        #expect(ns.ipc == .pod)

        var hp = HugepageLimit()
        hp.limit = .max
        #expect(hp.jsonText() == #"{"limit":"18446744073709551615"}"#)
        #expect(try HugepageLimit(jsonText: #"{"limit": 18446744073709551615}"#) == hp)
        #expect(try HugepageLimit(jsonText: #"{"limit": "18446744073709551615"}"#) == hp)
    }

    @Test("bad input is a CRICodecError naming the field")
    func badInput() {
        func message(_ text: String) -> String? {
            do {
                _ = try PodSandboxConfig(jsonText: text)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(message(#"{"metadata": {"attempt": -1}}"#)?.contains("runtime.v1.PodSandboxMetadata.attempt") == true)
        #expect(message(#"{"metadata": {"attempt": 1.5}}"#)?.contains("attempt") == true)
        #expect(message(#"{"hostname": 5}"#)?.contains("runtime.v1.PodSandboxConfig.hostname: expected a string") == true)
        #expect(message(#"{"labels": {"a": 1}}"#)?.contains("labels") == true)
        #expect(message(#"{"port_mappings": [{"protocol": "QUIC"}]}"#)?.contains("QUIC") == true)
        #expect(message(#"[]"#)?.contains("expected an object") == true)
        #expect(message(#"{"hostname": "x",}"#)?.contains("line 1") == true)
        #expect(message("{\n\"hostname\": tru}")?.contains("line 2") == true)
        #expect(message(#"{"a": "\ud800"}"#) != nil)
        #expect(message(String(repeating: "[", count: 1000)) != nil)
        #expect(message("") != nil)
        #expect(message(#"{} {}"#) != nil)
    }

    @Test("bytes are base64; NaN and infinities are strings")
    func bytesAndFloats() throws {
        var r = ExecSyncResponse()
        r.stdout = [0, 1, 2, 0xFF, 0xFE]
        r.stderr = Array("hi".utf8)
        #expect(r.jsonText() == #"{"stdout":"AAEC//4=","stderr":"aGk="}"#)
        #expect(try ExecSyncResponse(jsonText: r.jsonText()) == r)
        #expect(try ExecSyncResponse(jsonText: #"{"stdout":"AAEC__4"}"#).stdout == r.stdout)  // URL-safe, unpadded
        #expect(throws: CRICodecError.self) { try ExecSyncResponse(jsonText: #"{"stdout":"A"}"#) }
        #expect(throws: CRICodecError.self) { try ExecSyncResponse(jsonText: #"{"stdout":"AA=A"}"#) }

        var d = PsiData()
        d.avg10 = .nan
        d.avg60 = .infinity
        d.avg300 = -0.25
        #expect(d.jsonText() == #"{"Avg10":"NaN","Avg60":"Infinity","Avg300":-0.25}"#)
        let back = try PsiData(jsonText: d.jsonText())
        #expect(back.avg10.isNaN && back.avg60 == .infinity && back.avg300 == -0.25)
        d.avg10 = 100
        #expect(d.jsonText().hasPrefix(#"{"Avg10":100,"#))
    }

    @Test("JSON text: escapes, unicode, nesting, parse/serialize round trip")
    func text() throws {
        let s = "quote\" backslash\\ nl\n tab\t ctl\u{01} é 😀"
        let v = ProtoJSON.object([("k", .string(s)), ("a", .array([.int(-1), .uint(UInt64.max), .number(0.5), .bool(true), .null]))])
        let text = v.serialized()
        #expect(text == #"{"k":"quote\" backslash\\ nl\n tab\t ctl\u0001 é 😀","a":[-1,18446744073709551615,0.5,true,null]}"#)
        #expect(try ProtoJSON.parse(text) == v)
        #expect(try ProtoJSON.parse(v.serialized(pretty: true)) == v)
        #expect(try ProtoJSON.parse(#""\u00e9\ud83d\ude00\/""#) == .string("é😀/"))
        #expect(ProtoJSON.array([]).serialized(pretty: true) == "[]")
        #expect(ProtoJSON.object([]).serialized(pretty: true) == "{}")
        #expect(v["k"] == .string(s))
    }
}
