// Pure pieces, checked without containers: the v1/v2 resource translation (both versions, on any
// host), mount options, path cleaning, signal names.

@testable import SkiffLauncher
import SkiffOCI
import Testing

@Suite("Cgroup dialects")
struct DialectTests {
    var none: CgroupCurrent { CgroupCurrent(read: { _, _ in nil }, hasFile: { _, _ in true }) }

    func files(_ w: [CgroupWrite]) -> [String] { w.map { "\($0.file)=\($0.value)" } }

    @Test func v1Translation() throws {
        let r = Resources(memory: MemoryResources(limit: 100, reservation: 50, swap: 200, swappiness: 10),
                          cpu: CPUResources(shares: 512, quota: 20_000, period: 100_000, cpus: "0-1", mems: "0"),
                          pids: PidsResources(limit: 0), hugepageLimits: [HugepageLimit(pageSize: "2MB", limit: 4096)])
        let w = try CgroupDialect.writes(.v1, r, current: none)
        #expect(files(w) == [
            "cpuset.cpus=0-1", "cpuset.mems=0",
            "memory.limit_in_bytes=100", "memory.memsw.limit_in_bytes=200", "memory.soft_limit_in_bytes=50",
            "memory.swappiness=10",
            "cpu.shares=512", "cpu.cfs_period_us=100000", "cpu.cfs_quota_us=20000",
            "pids.max=max", "hugetlb.2MB.limit_in_bytes=4096",
        ])
    }

    @Test func v1RaisesMemswFirstWhenTheNewLimitIsAboveIt() throws {
        let cur = CgroupCurrent(read: { _, f in f == "memory.memsw.limit_in_bytes" ? "1000\n" : nil }, hasFile: { _, _ in true })
        let w = try CgroupDialect.writes(.v1, Resources(memory: MemoryResources(limit: 2000, swap: 3000)), current: cur)
        #expect(files(w) == ["memory.memsw.limit_in_bytes=3000", "memory.limit_in_bytes=2000"])
        let down = try CgroupDialect.writes(.v1, Resources(memory: MemoryResources(limit: 500, swap: 800)), current: cur)
        #expect(files(down) == ["memory.limit_in_bytes=500", "memory.memsw.limit_in_bytes=800"])
    }

    @Test func v1WithoutSwapAccountingAcceptsSwapEqualToLimitOnly() throws {
        let noSwap = CgroupCurrent(read: { _, _ in nil }, hasFile: { _, f in !f.contains("memsw") })
        let same = try CgroupDialect.writes(.v1, Resources(memory: MemoryResources(limit: 100, swap: 100)), current: noSwap)
        #expect(files(same) == ["memory.limit_in_bytes=100"])
        #expect(throws: LauncherError.self) {
            try CgroupDialect.writes(.v1, Resources(memory: MemoryResources(limit: 100, swap: 300)), current: noSwap)
        }
    }

    @Test func v1DeviceRulesKeepOrderAndAddTheDefaults() throws {
        let w = try CgroupDialect.writes(.v1, Resources(devices: [
            DeviceRule(allow: false, access: "rwm"),
            DeviceRule(allow: true, type: "c", major: 10, minor: 229, access: "rw"),
        ]), current: none)
        #expect(Array(files(w).prefix(3)) == ["devices.deny=a", "devices.allow=c 10:229 rw", "devices.allow=b *:* m"])
        #expect(files(w).last == "devices.allow=c 136:* rwm")
        #expect(throws: LauncherError.self) {
            try CgroupDialect.writes(.v1, Resources(devices: [DeviceRule(allow: true, type: "x")]), current: none)
        }
    }

    @Test func v2Translation() throws {
        let r = Resources(memory: MemoryResources(limit: 100, reservation: 50, swap: 300, swappiness: 10, disableOOMKiller: true),
                          cpu: CPUResources(shares: 1024, quota: 20_000, period: 50_000, cpus: "1"),
                          pids: PidsResources(limit: 7), unified: ["memory.high": "90", "cgroup.max.depth": "3"])
        let w = try CgroupDialect.writes(.v2, r, current: none)
        #expect(files(w) == [
            "cpuset.cpus=1", "memory.max=100", "memory.swap.max=200", "memory.low=50",
            "cpu.weight=39", "cpu.max=20000 50000", "pids.max=7",
            "cgroup.max.depth=3", "memory.high=90",
        ])
        #expect(w.first { $0.file == "cgroup.max.depth" }?.controller == "cgroup")
    }

    @Test func v2KeepsTheHalfOfCpuMaxItWasNotGiven() throws {
        let cur = CgroupCurrent(read: { _, f in f == "cpu.max" ? "max 250000\n" : nil }, hasFile: { _, _ in true })
        let q = try CgroupDialect.writes(.v2, Resources(cpu: CPUResources(quota: 10_000)), current: cur)
        #expect(files(q) == ["cpu.max=10000 250000"])
        let unlimited = try CgroupDialect.writes(.v2, Resources(memory: MemoryResources(limit: -1, swap: -1)), current: cur)
        #expect(files(unlimited) == ["memory.max=max", "memory.swap.max=max"])
        #expect(throws: LauncherError.self) {
            try CgroupDialect.writes(.v2, Resources(memory: MemoryResources(swap: 100)), current: cur)
        }
    }

    @Test(arguments: [(2, 1), (1024, 39), (262144, 10000), (512, 20)])
    func cpuWeightFromShares(_ shares: UInt64, _ weight: UInt64) {
        #expect(CgroupDialect.cpuWeight(fromShares: shares) == weight)
    }

    @Test func refusesWhatItCannotApply() {
        var r = Resources()
        r.blockIO = .object(["weight": .int(10)])
        #expect(throws: LauncherError.self) { try CgroupDialect.writes(.v1, r, current: none) }
        #expect(throws: LauncherError.self) {
            try CgroupDialect.writes(.v1, Resources(unified: ["memory.high": "1"]), current: none)
        }
        var k = Resources(memory: MemoryResources(limit: 1))
        k.memory!.kernel = 10
        #expect(throws: LauncherError.self) { try CgroupDialect.writes(.v2, k, current: none) }
    }

    @Test func statsParsing() {
        let v1 = CgroupDialect.stats(.v1) { _, f in
            switch f {
            case "cpuacct.usage": return "123456789\n"
            case "memory.usage_in_bytes": return "1000\n"
            case "memory.stat": return "cache 5\ntotal_inactive_file 300\n"
            case "memory.limit_in_bytes": return "9223372036854771712\n"
            case "memory.oom_control": return "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
            case "pids.current": return "3\n"
            case "pids.max": return "max\n"
            default: return nil
            }
        }
        #expect(v1.cpuUsageNanoseconds == 123_456_789)
        #expect(v1.memoryWorkingSetBytes == 700)
        #expect(v1.memoryLimitBytes == nil)
        #expect(v1.oomKillCount == 2)
        #expect(v1.pidsCurrent == 3)
        #expect(v1.pidsLimit == nil)
        let v2 = CgroupDialect.stats(.v2) { _, f in
            switch f {
            case "cpu.stat": return "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
            case "memory.current": return "4096\n"
            case "memory.stat": return "anon 1024\ninactive_file 96\n"
            case "memory.max": return "8192\n"
            case "memory.events": return "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"
            case "pids.max": return "20\n"
            default: return nil
            }
        }
        #expect(v2.cpuUsageNanoseconds == 1_500_000)
        #expect(v2.memoryWorkingSetBytes == 4000)
        #expect(v2.memoryLimitBytes == 8192)
        #expect(v2.oomKillCount == 1)
        #expect(v2.memoryFailCount == 4)
        #expect(v2.pidsLimit == 20)
    }
}

@Suite("Launcher helpers")
struct HelperTests {
    @Test(arguments: [
        ("/", "/"), ("", "/"), ("a/b", "/a/b"), ("/a//b/", "/a/b"), ("/a/./b/../c", "/a/c"), ("/../..", "/"),
        ("/a/b/../../..", "/"), ("/..a/b.", "/..a/b."),
    ])
    func cleanPath(_ input: String, _ expected: String) {
        #expect(Sys.cleanPath(input) == expected)
    }

    @Test func mountOptions() throws {
        let o = try MountOptions(["nosuid", "ro", "rw", "noexec", "rbind", "rslave", "mode=755", "size=1m", "defaults"],
                                 destination: "/x")
        #expect(o.flags == MS.nosuid | MS.noexec | MS.bind | MS.rec)
        #expect(o.propagation == MS.slave | MS.rec)
        #expect(o.dataString == "mode=755,size=1m")
        #expect(o.isBind && o.recursive)
        #expect(throws: LauncherError.self) { try MountOptions(["tmpcopyup"], destination: "/x") }
        #expect(throws: LauncherError.self) { try MountOptions(["rro"], destination: "/x") }
    }

    @Test(arguments: [("TERM", 15), ("SIGKILL", 9), ("9", 9), ("usr1", 10), ("RTMIN", 34), ("RTMIN+2", 36), ("RTMAX-1", 63)])
    func signals(_ name: String, _ number: Int32) throws {
        #expect(try Signals.parse(name) == number)
    }

    @Test func badSignalsAndIDs() {
        #expect(throws: LauncherError.self) { try Signals.parse("NOPE") }
        #expect(throws: LauncherError.self) { try Signals.parse("65") }
        for bad in ["", ".", "..", "a/b", "x y", String(repeating: "a", count: 1025)] {
            #expect(throws: LauncherError.self) { try ContainerStore.validate(id: bad) }
        }
        #expect(throws: Never.self) { try ContainerStore.validate(id: "skiff_ok-1.2+x") }
    }

    @Test func errorsRenderAsOneLine() {
        let e = LauncherError(.system, step: "rootfs", syscall: "pivot_root", path: "/b/rootfs", errno: 22)
        #expect(e.description == "rootfs: pivot_root /b/rootfs: Invalid argument")
        let d = LauncherError(.invalidConfig, step: "config", detail: "process.args must not be empty")
        #expect(d.description == "config: process.args must not be empty")
    }
}

@Suite("Container cgroup mounts")
struct CgroupMountSourceTests {
    /// The statfs fast path finds exactly what mountinfo lists (v1 hosts; a v2 host never reads either).
    @Test func conventionalV1LayoutMatchesMountinfo() throws {
        guard CgroupVersion.detect() == .v1 else { return }
        let own = Sys.readStringIfPresent("/proc/self/cgroup") ?? ""
        let fast = try #require(Rootfs.conventionalV1Source(for: nil, ownCgroups: own))
        let slow = Rootfs.mountinfoV1Source(for: nil, ownCgroups: own)
        #expect(!slow.v1.isEmpty)
        #expect(fast.v1.map { "\($0.name)=\($0.hostDir)" }.sorted() == slow.v1.map { "\($0.name)=\($0.hostDir)" }.sorted())
        #expect(fast.v1Links.map { "\($0.name)>\($0.target)" }.sorted() == slow.v1Links.map { "\($0.name)>\($0.target)" }.sorted())
    }

    /// A hierarchy that is not at its conventional place sends the launcher to mountinfo.
    @Test func unconventionalLayoutFallsBack() {
        #expect(Rootfs.conventionalV1Source(for: nil, ownCgroups: "7:skiff-no-such-controller:/\n") == nil)
        #expect(Rootfs.conventionalV1Source(for: nil, ownCgroups: "0::/\n") == nil)
    }
}
