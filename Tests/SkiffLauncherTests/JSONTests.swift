// SkiffOCI: the JSON reader/writer and the spec types.

import SkiffOCI
import Testing

@Suite("JSON")
struct JSONTests {
    @Test func parsesScalarsAndKeepsIntegerPrecision() throws {
        let j = try JSON(parsing: #"{"a": 9223372036854775807, "b": 18446744073709551615, "c": -1, "d": 1.5, "e": 1e3, "f": true, "g": null}"#)
        #expect(j["a"] == .int(Int64.max))
        #expect(j["b"] == .uint(UInt64.max))
        #expect(j["c"] == .int(-1))
        #expect(j["d"] == .double(1.5))
        #expect(j["e"] == .double(1000))
        #expect(j["f"] == .bool(true))
        #expect(j["g"] == .null)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let j = try JSON(parsing: #"["a\"b\\c\/d\n\t", "\u00e9\ud83d\ude00", "plain ünïcödé"]"#)
        #expect(j.arrayValue?[0].stringValue == "a\"b\\c/d\n\t")
        #expect(j.arrayValue?[1].stringValue == "é😀")
        #expect(j.arrayValue?[2].stringValue == "plain ünïcödé")
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":}", "01", "1.", "-", "\"\\x\"", "\"\\ud800\"", "tru", "[1] 2", "{\"a\" 1}",
        "\"a\u{01}\"", "{1:2}", "1e", "[\"\\u12\"]",
    ])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSONError.self) { try JSON(parsing: text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONError.self) { try JSON(parsing: [0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func syntaxErrorsCarryTheOffset() {
        do {
            _ = try JSON(parsing: "[1, 2, x]")
            Issue.record("no error")
        } catch {
            #expect(error.path == "offset 7")
        }
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONError.self) { try JSON(parsing: deep) }
    }

    @Test func writesDeterministicallyAndRoundTrips() throws {
        var o = JSONObject()
        o["z"] = .string("line\nbreak \"q\" \u{1}")
        o["a"] = .array([.int(1), .double(2.5), .bool(false), .null, .uint(UInt64.max)])
        o["m"] = .object([:])
        let j = JSON.object(o)
        #expect(j.compactText == #"{"z":"line\nbreak \"q\" \u0001","a":[1,2.5,false,null,18446744073709551615],"m":{}}"#)
        #expect(try JSON(parsing: j.compactText) == j)
        #expect(try JSON(parsing: j.prettyText) == j)
    }
}

@Suite("OCI spec types")
struct SpecTests {
    /// What `runc spec` writes (runc 1.1), verbatim.
    static let runcSpec = #"""
    {"ociVersion":"1.0.2-dev","process":{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh"],
    "env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","TERM=xterm"],"cwd":"/",
    "capabilities":{"bounding":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],"effective":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
    "permitted":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],"ambient":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"]},
    "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},"root":{"path":"rootfs","readonly":true},
    "hostname":"runc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},
    {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
    {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
    {"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]},
    {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]},
    {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
    {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}],
    "linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],
    "maskedPaths":["/proc/acpi","/proc/asound","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/sys/firmware","/proc/scsi"],
    "readonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}}
    """#

    @Test func decodesRuncsDefaultSpecLikeOurDefault() throws {
        let runc = try Spec(jsonText: SpecTests.runcSpec)
        var ours = Spec.defaultLinux(args: ["sh"])
        ours.ociVersion = runc.ociVersion
        ours.process!.terminal = true
        #expect(runc == ours)
    }

    @Test func encodeDecodeRoundTrip() throws {
        var s = Spec.defaultLinux(args: ["sh", "-c", "echo hi"], rootfs: "/tmp/rootfs", hostname: "h")
        s.linux!.resources!.memory = MemoryResources(limit: 64 << 20, swap: 128 << 20)
        s.linux!.resources!.cpu = CPUResources(shares: 512, quota: 50_000, period: 100_000, cpus: "0")
        s.linux!.resources!.pids = PidsResources(limit: 32)
        s.linux!.resources!.unified = ["memory.high": "1G"]
        s.linux!.namespaces.append(Namespace(.cgroup, path: "/proc/1/ns/cgroup"))
        s.linux!.sysctl = ["net.ipv4.ip_forward": "1"]
        s.linux!.seccomp = Seccomp(defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64"],
                                   syscalls: [.init(names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 1,
                                                    args: [.init(index: 1, value: 0o700, op: "SCMP_CMP_EQ")])])
        s.hooks = Hooks(poststop: [Hook(path: "/bin/true", args: ["true"], timeout: 5)])
        s.annotations = ["k": "v"]
        s.mounts.append(.bind("/data", to: "/mnt", readOnly: true))
        s.process!.user = User(uid: 1000, gid: 1000, umask: 0o077, additionalGids: [10, 20])
        s.process!.oomScoreAdj = 100
        let back = try Spec(json: try JSON(parsing: s.json.compactText))
        #expect(back == s)
    }

    @Test func errorsNameTheJSONPath() {
        let text = #"{"ociVersion":"1.0.2","process":{"user":{"uid":-1},"args":["sh"],"cwd":"/"}}"#
        do {
            _ = try Spec(jsonText: text)
            Issue.record("no error")
        } catch {
            #expect(error.description == "process.user.uid: expected an unsigned integer")
        }
        #expect(throws: JSONError.self) { try Spec(jsonText: #"{"ociVersion":"1","linux":{"namespaces":[{"type":"bogus"}]}}"#) }
        #expect(throws: JSONError.self) { try Spec(jsonText: #"{"process":{"args":["sh"]}}"#) }
    }

    @Test func ignoresUnknownFields() throws {
        let s = try Spec(jsonText: #"{"ociVersion":"1.0.0","future":{"x":1},"root":{"path":"r","other":true}}"#)
        #expect(s.root == Root(path: "r"))
    }

    @Test func stateDocument() throws {
        let st = State(id: "c", status: .running, pid: 42, bundle: "/b", annotations: ["a": "b"])
        #expect(st.json.compactText == #"{"ociVersion":"1.0.2","id":"c","status":"running","pid":42,"bundle":"/b","annotations":{"a":"b"}}"#)
        #expect(try State(json: try JSON(parsing: st.json.compactText)) == st)
    }
}
