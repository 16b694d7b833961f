// The command line: error format, --log in JSON, features, list, update, spec, signals.

import SkiffLauncher
import SkiffOCI
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("CLI", .enabled(if: TestEnv.isRoot))
struct CLITests {
    @Test func errorsAreOneLineOnStderrAndJSONInTheLog() throws {
        let dir = Files.mkdtemp("skiff-t-cli")
        defer { Files.removeTree(dir) }
        let log = dir + "/log.json"
        let r = Proc.run([TestEnv.skiffRunc, "--root", dir + "/state", "--log", log, "--log-format", "json",
                          "state", "skiff-t-nosuch"])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "skiff-runc: container: container \"skiff-t-nosuch\" does not exist\n")
        let line = try #require(Files.read(log)?.split(separator: "\n").first)
        let j = try JSON(parsing: String(line))
        #expect(j["level"] == .string("error"))
        #expect(j["msg"] == .string("container: container \"skiff-t-nosuch\" does not exist"))
        #expect(j["time"]?.stringValue?.hasSuffix("Z") == true)

        let u = Proc.run([TestEnv.skiffRunc, "--root", dir, "frobnicate"])
        #expect(u.status == 1)
        #expect(u.stderr.contains("unknown command"))
        let bad = Proc.run([TestEnv.skiffRunc, "--root", dir, "create", "--bundle", dir, "../escape"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("invalid id"))
    }

    @Test func featuresDescribeThisBuild() throws {
        let r = Proc.run([TestEnv.skiffRunc, "features"])
        #expect(r.status == 0)
        let j = try JSON(parsing: r.stdout)
        #expect(j["ociVersionMax"] == .string(SkiffOCI.ociVersion))
        #expect(j["linux"]?["cgroup"]?["v1"] == .bool(true))
        #expect(j["linux"]?["cgroup"]?["v2"] == .bool(true))
        #expect(j["linux"]?["namespaces"]?.arrayValue?.contains(.string("pid")) == true)
        #expect(j["mountOptions"]?.arrayValue?.contains(.string("rbind")) == true)
    }

    @Test func specWritesTheDefaultConfig() throws {
        let dir = Files.mkdtemp("skiff-t-spec")
        defer { Files.removeTree(dir) }
        #expect(Proc.run([TestEnv.skiffRunc, "spec", "--bundle", dir]).status == 0)
        let s = try Spec(jsonText: Files.read(dir + "/config.json") ?? "")
        #expect(s == Spec.defaultLinux(args: ["sh"], cgroupNamespace: TestEnv.cgroupVersion == .v2))
        #expect(Proc.run([TestEnv.skiffRunc, "spec", "--bundle", dir]).status == 1)
    }

    @Test func listAndUpdateARunningContainer() throws {
        let b = Bundle("upd", args: ["sleep", "300"])
        defer { b.cleanup() }
        b.spec.linux!.resources!.pids = PidsResources(limit: 10)
        b.writeConfig()
        #expect(b.skiffDetached("run", "-d", "--bundle", b.dir, b.id).status == 0)
        let list = Proc.run(b.cli(["list"]))
        #expect(list.stdout.hasPrefix("ID"))
        #expect(list.stdout.contains(b.id))
        #expect(list.stdout.contains("running"))
        #expect(Proc.run(b.cli(["list", "-q"])).stdout == b.id + "\n")

        #expect(b.skiff("update", "--pids-limit", "20", "--memory", String(96 << 20), b.id).status == 0)
        let cg = try Cgroup(path: "/" + b.id)
        var st = try cg.stats()
        #expect(st.pidsLimit == 20)
        #expect(st.memoryLimitBytes == 96 << 20)
        Files.write(b.dir + "/res.json", Resources(pids: PidsResources(limit: 30)).json.compactText)
        #expect(b.skiff("update", "--resources", b.dir + "/res.json", b.id).status == 0)
        st = try cg.stats()
        #expect(st.pidsLimit == 30)
        #expect(st.pidsCurrent >= 1)
        #expect(b.skiff("delete", "-f", b.id).status == 0)
        expectNoLeftovers(id: b.id, stateRoot: b.stateRoot, cgroupPath: "/" + b.id)
    }

    @Test func killAcceptsSignalNamesAndNumbers() throws {
        let b = Bundle("sig", args: ["sh", "-c", "trap 'exit 10' USR1; trap 'exit 11' HUP; while true; do sleep 0.05; done"])
        defer { b.cleanup() }
        b.writeConfig()
        for (sig, code) in [("SIGUSR1", 10), ("1", 11)] {
            let m = Monitor(bundle: b, createArgs: ["create", "--bundle", b.dir, "--pid-file", b.dir + "/pid", b.id])
            try #require(m.createStatus() == 0)
            #expect(b.skiff("start", b.id).status == 0)
            let pid = Int32(Files.read(b.dir + "/pid") ?? "") ?? 0
            #expect(Proc.eventually { catches(pid, SIGUSR1) && catches(pid, SIGHUP) })
            #expect(b.skiff("kill", b.id, sig).status == 0)
            let res = try #require(m.result())
            #expect(res.reaped.contains { $0.code == Int32(code) }, "\(sig): \(res.reaped)")
            #expect(b.skiff("delete", b.id).status == 0)
        }
        #expect(b.skiff("kill", "x", "NOSUCHSIG").status == 1)
    }
}
