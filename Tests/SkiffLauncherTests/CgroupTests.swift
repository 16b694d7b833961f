// The cgroup API skiffd uses for pod cgroups and stats, called from this (multi-threaded) test
// process: create with limits, update, stats, busy delete refused, forced delete, rollback.

import SkiffLauncher
import SkiffOCI
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Cgroup API", .enabled(if: TestEnv.isRoot))
struct CgroupTests {
    /// The file a limit lands in, per version.
    func file(_ cg: Cgroup, v1: (String, String), v2: String) -> String? {
        switch cg.version {
        case .v1: return cg.read(v1.1, controller: v1.0)?.trimmed
        case .v2: return cg.read(v2, controller: String(v2.split(separator: ".")[0]))?.trimmed
        }
    }

    @Test func createApplyUpdateDelete() throws {
        let path = "/" + TestEnv.uniqueID("cg") + "/child"
        var r = Resources(memory: MemoryResources(limit: 64 << 20),
                          cpu: CPUResources(shares: 512, quota: 50_000, period: 100_000),
                          pids: PidsResources(limit: 40))
        if TestEnv.cgroupVersion == .v1 { r.devices = [DeviceRule(allow: false, access: "rwm")] }
        let cg = try Cgroup.create(path: path, resources: r)
        defer {
            try? cg.delete(force: true)
            try? Cgroup(path: String(path.dropLast("/child".count))).delete(force: true)
        }
        #expect(cg.exists)
        #expect(file(cg, v1: ("memory", "memory.limit_in_bytes"), v2: "memory.max") == String(64 << 20))
        #expect(file(cg, v1: ("pids", "pids.max"), v2: "pids.max") == "40")
        #expect(file(cg, v1: ("cpu", "cpu.cfs_quota_us"), v2: "cpu.max") == (cg.version == .v1 ? "50000" : "50000 100000"))
        #expect(file(cg, v1: ("cpu", "cpu.shares"), v2: "cpu.weight") == (cg.version == .v1 ? "512" : "20"))

        // Live update: only the given fields change; v2 keeps cpu.max's period.
        try cg.update(Resources(memory: MemoryResources(limit: 128 << 20), cpu: CPUResources(quota: 20_000)))
        #expect(file(cg, v1: ("memory", "memory.limit_in_bytes"), v2: "memory.max") == String(128 << 20))
        #expect(file(cg, v1: ("cpu", "cpu.cfs_quota_us"), v2: "cpu.max") == (cg.version == .v1 ? "20000" : "20000 100000"))
        #expect(file(cg, v1: ("pids", "pids.max"), v2: "pids.max") == "40")
        try cg.update(Resources(pids: PidsResources(limit: 0)))
        #expect(file(cg, v1: ("pids", "pids.max"), v2: "pids.max") == "max")

        let st = try cg.stats()
        #expect(st.memoryLimitBytes == 128 << 20)
        #expect(st.pidsCurrent == 0)
        #expect(st.oomKillCount == 0)

        try cg.delete()
        #expect(!cg.exists)
        try cg.delete()  // idempotent
    }

    @Test func busyGroupIsRefusedThenForceKillsAndDeletes() throws {
        let cg = try Cgroup.create(path: "/" + TestEnv.uniqueID("busy"), resources: nil)
        let pid = Proc.start(["sleep", "60"])
        defer {
            kill(pid, SIGKILL)
            _ = Proc.wait(pid, timeout: 10)
            try? cg.delete(force: true)
        }
        try cg.addProcess(pid)
        #expect(cg.processes() == [pid])
        #expect(!cg.isEmpty)
        #expect(try cg.stats().pidsCurrent == 1)
        do {
            try cg.delete()
            Issue.record("delete of a busy cgroup succeeded")
        } catch {
            #expect(error.kind == .busy)
            #expect(error.description.contains(String(pid)))
        }
        #expect(cg.exists)
        // The process was not moved anywhere by the refused delete.
        #expect(cg.processes() == [pid])
        try cg.delete(force: true)
        #expect(!cg.exists)
        #expect(Proc.wait(pid, timeout: 10) == 128 + SIGKILL)
    }

    @Test func nestedGroupsAreDeletedDeepestFirst() throws {
        let top = "/" + TestEnv.uniqueID("nest")
        let pod = try Cgroup.create(path: top, resources: Resources(memory: MemoryResources(limit: 256 << 20)))
        _ = try Cgroup.create(path: top + "/a", resources: nil)
        _ = try Cgroup.create(path: top + "/b/c", resources: Resources(pids: PidsResources(limit: 5)))
        try pod.delete()
        #expect(!pod.exists)
        #expect(try !Cgroup(path: top + "/b/c").exists)
    }

    @Test func failedCreateLeavesNothing() throws {
        let top = "/" + TestEnv.uniqueID("fail")
        // cpuset.cpus naming a CPU this machine does not have is rejected by the kernel.
        let bad = Resources(cpu: CPUResources(cpus: "4095"))
        do {
            try Cgroup.create(path: top + "/x/y", resources: bad)
            Issue.record("create with an impossible cpuset succeeded")
        } catch {
            #expect(error.description.contains("cpuset.cpus"))
        }
        #expect(try !Cgroup(path: top).exists)
    }

    @Test func rejectsBadPaths() {
        #expect(throws: LauncherError.self) { try Cgroup(path: "/") }
        #expect(throws: LauncherError.self) { try Cgroup(path: "/a/../b") }
        #expect(throws: LauncherError.self) { try Cgroup(path: "system.slice:skiff:x") }
    }

    @Test func detectsTheHostVersion() {
        let unifiedOnly = (Files.read("/proc/self/mountinfo") ?? "").split(separator: "\n").contains {
            $0.contains(" /sys/fs/cgroup ") && $0.contains(" - cgroup2 ")
        }
        #expect(Cgroup.hostVersion == (unifiedOnly ? .v2 : .v1))
    }
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let l = s.last, l == "\n" || l == " " { s = s.dropLast() }
        return String(s)
    }
}
