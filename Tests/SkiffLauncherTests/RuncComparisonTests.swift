// skiff-runc against Debian's runc, the reference peer: the same bundle run by both must give the
// same stdout and exit status. Each case also checks one expected value, so that both runtimes
// being wrong the same way would still fail.

import SkiffLauncher
import SkiffOCI
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Resources a case may need: a host directory to bind, a running container to join.
struct Fixture {
    var dataDir: String
    var peerPid: Int32
}

struct ComparisonCase: Sendable, CustomTestStringConvertible {
    let name: String
    let script: String
    let configure: @Sendable (inout Spec, Fixture) -> Void
    /// Checks skiff-runc's output on its own: (stdout, status, fixture) -> ok.
    let expect: @Sendable (String, Int32, Fixture) -> Bool
    var testDescription: String { name }

    init(_ name: String, _ script: String, configure: @escaping @Sendable (inout Spec, Fixture) -> Void = { _, _ in },
         expect: @escaping @Sendable (String, Int32, Fixture) -> Bool) {
        self.name = name
        self.script = script
        self.configure = configure
        self.expect = expect
    }
}

let cgroupLimitScript = """
    cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
    cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max
    """

let comparisonCases: [ComparisonCase] = [
    ComparisonCase("hostname", "hostname", configure: { s, _ in s.hostname = "skiff-host" },
                   expect: { out, _, _ in out == "skiff-host\n" }),
    ComparisonCase("pid 1", "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo",
                   expect: { out, _, _ in out.hasPrefix("1\nsh -c ") }),
    ComparisonCase("env and cwd", "pwd; echo \"$FOO\"; echo $HOME; env | sort",
                   configure: { s, _ in s.process!.env.append("FOO=bar baz"); s.process!.cwd = "/home/skiff" },
                   expect: { out, _, _ in out.hasPrefix("/home/skiff\nbar baz\n/root\n") }),
    ComparisonCase("uid, gid, groups", "id; grep -E '^(Cap|NoNewPrivs|Groups)' /proc/self/status",
                   configure: { s, _ in s.process!.user = User(uid: 1000, gid: 1000, additionalGids: [100]) },
                   expect: { out, _, _ in out.hasPrefix("uid=1000(skiff) gid=1000(skiff) groups=100(users)") }),
    ComparisonCase("read-only root", "touch /x 2>&1; echo rc=$?",
                   expect: { out, _, _ in out.contains("Read-only file system") && out.hasSuffix("rc=1\n") }),
    ComparisonCase("writable root with tmpfs", "mount | grep -c ' / '; echo ok > /tmp/f && cat /tmp/f",
                   configure: { s, _ in
                       s.root!.readonly = false
                       s.mounts.append(Mount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "size=1m"]))
                   },
                   expect: { out, _, _ in out.hasSuffix("ok\n") }),
    ComparisonCase("bind mount read-only", "cat /data/hello; touch /data/new 2>&1; echo rc=$?; grep ' /data ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1",
                   configure: { s, f in s.mounts.append(.bind(f.dataDir, to: "/data", readOnly: true)) },
                   expect: { out, _, _ in out.hasPrefix("hello from the host\n") && out.contains("rc=1") && out.hasSuffix("ro\n") }),
    ComparisonCase("masked and read-only paths",
                   "for p in /proc/kcore /proc/keys /proc/timer_list; do [ -e $p ] && echo \"$p $(wc -c < $p) $(stat -c %t:%T $p)\"; done; ls -A /sys/firmware | wc -l; (echo 0 > /proc/sys/vm/overcommit_memory) 2>&1; echo rc=$?",
                   expect: { out, _, _ in out.contains("/proc/keys 0 1:3") && out.contains("Read-only file system") }),
    ComparisonCase("memory and pids limits in the container's cgroup files", cgroupLimitScript,
                   configure: { s, _ in
                       s.linux!.resources!.memory = MemoryResources(limit: 64 << 20)
                       s.linux!.resources!.pids = PidsResources(limit: 32)
                   },
                   expect: { out, _, _ in out == "\(64 << 20)\n32\n" }),
    ComparisonCase("capability dropped", "grep -E '^Cap' /proc/self/status; kill -0 1 && echo can-signal",
                   configure: { s, _ in
                       let caps = ["CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"]
                       s.process!.capabilities = Capabilities(bounding: caps, effective: caps, permitted: caps, ambient: caps)
                   },
                   expect: { out, _, _ in out.contains("CapBnd:\t0000000020000400") }),
    ComparisonCase("join another container's network namespace", "readlink /proc/self/ns/net; ip -o addr show dev lo | grep -o 'inet [0-9./]*'",
                   configure: { s, f in
                       s.linux!.namespaces.removeAll { $0.type == .network }
                       s.linux!.namespaces.append(Namespace(.network, path: "/proc/\(f.peerPid)/ns/net"))
                   },
                   expect: { out, _, f in
                       var buf = [CChar](repeating: 0, count: 256)
                       let n = readlink("/proc/\(f.peerPid)/ns/net", &buf, 255)
                       let peerNS = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
                       return out.hasPrefix(peerNS + "\n") && out.contains("inet 10.123.45.67/32")
                   }),
    // (The exact pid differs: runc forks intermediate processes inside the namespace.)
    ComparisonCase("join another container's pid namespace", "tr '\\0' ' ' < /proc/1/cmdline; echo; [ $$ -ne 1 ] && echo not-init",
                   configure: { s, f in
                       s.linux!.namespaces.removeAll { $0.type == .pid }
                       s.linux!.namespaces.append(Namespace(.pid, path: "/proc/\(f.peerPid)/ns/pid"))
                   },
                   expect: { out, _, _ in out == "sleep 120 \nnot-init\n" }),
    ComparisonCase("sysctl in the network namespace", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_default_ttl",
                   configure: { s, _ in s.linux!.sysctl = ["net.ipv4.ip_forward": "1", "net/ipv4/ip_default_ttl": "42"] },
                   expect: { out, _, _ in out == "1\n42\n" }),
    ComparisonCase("rlimits", "ulimit -n; ulimit -Hn; ulimit -s",
                   configure: { s, _ in
                       s.process!.rlimits = [Rlimit(type: "RLIMIT_NOFILE", hard: 512, soft: 256),
                                             Rlimit(type: "RLIMIT_STACK", hard: 16 << 20, soft: 4 << 20)]
                   },
                   expect: { out, _, _ in out == "256\n512\n4096\n" }),
    ComparisonCase("seccomp errno rule", "mkdir /tmp/x 2>&1; echo rc=$?; mkdir -m 755 /tmp/y && echo made-y",
                   configure: { s, _ in
                       s.mounts.append(Mount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["size=1m"]))
                       s.linux!.seccomp = Seccomp(
                           defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                           syscalls: [.init(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1)])
                   },
                   expect: { out, _, _ in out.contains("Operation not permitted") && !out.contains("made-y") }),
    ComparisonCase("exit status", "echo bye; exit 42", expect: { out, st, _ in out == "bye\n" && st == 42 }),
    // Without a PID namespace the shell is not an init, so SIGKILL from itself is not ignored.
    ComparisonCase("host PID namespace, killed by a signal", "kill -9 $$",
                   configure: { s, _ in s.linux!.namespaces.removeAll { $0.type == .pid } },
                   expect: { _, st, _ in st == 137 }),
    ComparisonCase("default devices and the device cgroup", "stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; ls /dev | sort | tr '\\n' ' '; cat /sys/fs/cgroup/devices/devices.list 2>/dev/null",
                   expect: { out, _, _ in out.hasPrefix("/dev/null character special file 1:3 666 0:0") }),
    ComparisonCase("oomScoreAdj and noNewPrivileges", "cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status",
                   configure: { s, _ in s.process!.oomScoreAdj = 500 },
                   expect: { out, _, _ in out == "500\nNoNewPrivs:\t1\n" }),
    ComparisonCase("mount table", "awk '{print $2, $3, $4}' /proc/self/mounts | sed -e 's/,inode64//' | sort",
                   expect: { out, _, _ in out.contains("/proc proc rw,nosuid,nodev,noexec,relatime") || out.contains("/proc proc rw,relatime") }),
]

@Suite("skiff-runc vs runc", .enabled(if: TestEnv.isRoot && TestEnv.runc != nil))
struct RuncComparisonTests {
    @Test(arguments: comparisonCases)
    func sameObservableResult(_ c: ComparisonCase) throws {
        let b = Bundle("cmp", args: ["sh", "-c", c.script])
        // The peer: a container with its own network (holding a dummy link) and PID namespaces.
        let peer = Bundle("peer", args: ["sh", "-c", "ip addr add 10.123.45.67/32 dev lo && exec sleep 120"])
        let dataDir = b.dir + "/data"
        defer {
            b.cleanup()
            peer.cleanup()
        }
        mkdir(dataDir, 0o755)
        Files.write(dataDir + "/hello", "hello from the host\n")
        var fixture = Fixture(dataDir: dataDir, peerPid: 0)
        if c.name.hasPrefix("join") {
            peer.spec.process!.capabilities = Capabilities(all: Spec.defaultCapabilities + ["CAP_NET_ADMIN"])
            peer.writeConfig()
            let r = peer.skiffDetached("run", "--detach", "--bundle", peer.dir, "--pid-file", peer.dir + "/pid", peer.id)
            try #require(r.status == 0, "peer: \(r)")
            fixture.peerPid = Int32(Files.read(peer.dir + "/pid") ?? "") ?? 0
            // The peer's link exists once its command ran.
            #expect(Proc.eventually {
                Proc.run(["nsenter", "--net=/proc/\(fixture.peerPid)/ns/net", "ip", "addr", "show", "dev", "lo"]).stdout.contains("10.123.45.67")
            })
        }
        c.configure(&b.spec, fixture)

        let ours = b.run(suffix: "-s")
        let theirs = b.run(runtime: TestEnv.runc!, suffix: "-r")
        #expect(ours.stdout == theirs.stdout, "stdout differs\n--- skiff-runc:\n\(ours)\n--- runc:\n\(theirs)")
        #expect(ours.status == theirs.status, "status differs: skiff-runc \(ours.status), runc \(theirs.status)\n\(ours.stderr)")
        #expect(c.expect(ours.stdout, ours.status, fixture), "unexpected skiff-runc output:\n\(ours)")
        expectNoLeftovers(id: b.id + "-s", stateRoot: b.stateRoot, cgroupPath: "/" + b.id + "-s")
    }

    /// rootfsPropagation rshared with an rshared bind of a shared host directory: a mount made inside
    /// the container must appear on the host (Kubernetes' Bidirectional), with both runtimes.
    @Test func sharedRootfsPropagationReachesTheHost() throws {
        let b = Bundle("prop", args: ["sh", "-c", "mount -t tmpfs skiff-prop /data/sub && echo mounted; grep -c ' /data/sub ' /proc/self/mountinfo"])
        let dataDir = b.dir + "/data"
        mkdir(dataDir, 0o755)
        mkdir(dataDir + "/sub", 0o755)
        // The host side: its own shared mount, as kubelet's volume directories are.
        try #require(mount(dataDir, dataDir, nil, 4096 /* MS_BIND */, nil) == 0, "bind \(dataDir): \(errno)")
        defer {
            umount2(dataDir + "/sub", Int32(MNT_DETACH))
            umount2(dataDir, Int32(MNT_DETACH))
            b.cleanup()
        }
        try #require(mount(nil, dataDir, nil, 1 << 20 /* MS_SHARED */, nil) == 0, "make-shared \(dataDir): \(errno)")
        b.spec.linux!.rootfsPropagation = "rshared"
        b.spec.mounts.append(Mount(destination: "/data", type: "bind", source: dataDir, options: ["rbind", "rshared", "rw"]))
        b.spec.process!.capabilities = Capabilities(all: Spec.defaultCapabilities + ["CAP_SYS_ADMIN"])

        func hostSeesSub() -> Bool {
            (Files.read("/proc/self/mountinfo") ?? "").split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first.map(String.init) == dataDir + "/sub" }
        }
        var results: [(String, Output, Bool)] = []
        for (runtime, suffix) in [(TestEnv.skiffRunc, "-s"), (TestEnv.runc!, "-r")] {
            let out = b.run(runtime: runtime, suffix: suffix)
            let propagated = hostSeesSub()
            results.append((runtime, out, propagated))
            // Unmount on the host before the next runtime's turn.
            while hostSeesSub() && umount2(dataDir + "/sub", 0) == 0 {}
        }
        for (runtime, out, propagated) in results {
            #expect(out.status == 0 && out.stdout == "mounted\n1\n", "\(runtime): \(out)")
            #expect(propagated, "\(runtime): the container's mount did not reach the host")
        }
        expectNoLeftovers(id: b.id + "-s", stateRoot: b.stateRoot, cgroupPath: "/" + b.id + "-s")
    }
}
