import CRI
import Foundation
import GRPCCore
import SkiffClient
import Testing

// MARK: - Containers

extension RuntimeTests {
    @Test func exitCodesAndReasons() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            let ok = try await c.run(pod, Pods.container(name: "ok", image: h.registry.image("latest"), command: ["true"]), podConfig)
            let three = try await c.run(pod, Pods.container(name: "three", image: h.registry.image("latest"), command: ["sh", "-c", "exit 3"]), podConfig)
            let killed = try await c.run(pod, Pods.container(name: "killed", image: h.registry.image("latest"), command: ["sleep", "300"]), podConfig)
            let s0 = try await c.waitFor(ok) { $0.state == .containerExited }
            #expect(s0.exitCode == 0 && s0.reason == "Completed")
            #expect(s0.finishedAt >= s0.startedAt && s0.startedAt >= s0.createdAt && s0.createdAt > 0)
            let s3 = try await c.waitFor(three) { $0.state == .containerExited }
            #expect(s3.exitCode == 3 && s3.reason == "Error")
            try await c.stop(killed, timeout: 0)
            let s137 = try await c.status(killed)
            #expect(s137.state == .containerExited && s137.exitCode == 137 && s137.reason == "Error")
            // Stop and Remove are idempotent.
            try await c.stop(killed, timeout: 0)
            try await c.stop(String(repeating: "0", count: 64), timeout: 0)
            try await c.remove(killed)
            try await c.remove(killed)
            await #expect { try await c.status(killed) } throws: { ($0 as? RPCError)?.code == .notFound }
            try await c.removePod(pod)
        }
        }
    }

    /// skiffd ignores SIGPIPE (swift-nio does, process-wide) and an ignored signal survives exec: neither
    /// a container nor an exec may inherit that, or `yes | head` in a container prints "Broken pipe".
    @Test(arguments: ["", "runc"]) func containersAndExecsStartWithDefaultSignalDispositions(handler: String) async throws {
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if handler == "runc" { try #require(runc != nil, "runc is installed by scripts/install-deps --test") }
        try await RuntimeHarness.run(configYAML: handler == "runc" ? "runtimes:\n  runc:\n    path: \(runc!)\n" : nil) { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            var request = RunPodSandboxRequest()
            request.config = podConfig
            request.runtimeHandler = handler
            let pod = try await c.call(CRIMethods.runPodSandbox, request).podSandboxId
            let probe = ["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]
            let clean = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
            let id = try await c.run(pod, Pods.container(
                name: "signals", image: h.registry.image("latest"),
                command: ["sh", "-c", "grep -E '^Sig(Blk|Ign):' /proc/self/status; yes | head -n 2; echo end; exec sleep 300"]), podConfig)
            let log = try await c.status(id).logPath
            try await waitUntil { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").hasSuffix(" end\n") }
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ", maxSplits: 3).last.map(String.init) ?? "" }
            #expect(lines == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000", "y", "y", "end"])
            let exec = try await c.exec(id, probe)
            #expect(exec.out == clean && exec.code == 0, "exec: \(exec)")
            try await c.stop(id, timeout: 0)
            try await c.removePod(pod)
        }
        }
    }

    @Test func stopHonoursTheGracePeriod() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            let graceful = try await c.run(pod, Pods.container(
                name: "graceful", image: h.registry.image("latest"),
                command: ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"]), podConfig)
            let stubborn = try await c.run(pod, Pods.container(
                name: "stubborn", image: h.registry.image("latest"),
                command: ["sh", "-c", "trap 'echo got-term' TERM; echo ready; while true; do sleep 0.1; done"]), podConfig)
            // Wait until the shells have installed their traps (they print "ready" after).
            for id in [graceful, stubborn] {
                let log = try await c.status(id).logPath
                let clock = ContinuousClock()
                let deadline = clock.now.advanced(by: .seconds(30))
                while !((try? String(contentsOfFile: log, encoding: .utf8))?.contains("ready") ?? false) && clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            try await c.stop(graceful, timeout: 10)
            let g = try await c.status(graceful)
            #expect(g.state == .containerExited && g.exitCode == 7)

            let clock = ContinuousClock()
            let start = clock.now
            try await c.stop(stubborn, timeout: 2)
            let elapsed = clock.now - start
            let s = try await c.status(stubborn)
            #expect(s.exitCode == 137)
            // The call cannot return before the grace period is over, however loaded the machine.
            #expect(elapsed >= .milliseconds(1900), "stop took \(elapsed)")
            // SIGKILL came about 2 s after SIGTERM: measured on the container's side (the monitor's
            // timestamp of the trap's line, and of the exit), so that a busy test process cannot skew it.
            let log = try String(contentsOfFile: s.logPath, encoding: .utf8)
            let termLine = log.split(separator: "\n").first { $0.hasSuffix(" got-term") }
            let termAt = termLine.flatMap { criLogNanos(String($0.prefix { $0 != " " })) }
            #expect(termAt != nil, "no timestamped got-term line in \(log)")
            if let termAt {
                let grace = Double(s.finishedAt - termAt) / 1e9
                // The trap runs once the current `sleep 0.1` ends: up to 0.1 s after the signal.
                #expect(grace >= 1.5 && grace < 8, "SIGTERM seen at \(termAt), exit at \(s.finishedAt): \(grace) s apart")
            }
            try await c.removePod(pod)
        }
        }
    }

    @Test func execSyncOutputEnvCwdTimeoutAndLargeOutput() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("env"))
            let pod = try await c.runPod(podConfig)
            var config = Pods.container(name: "c", image: h.registry.image("env"), command: ["sleep", "300"], envs: ["SKIFF_EXTRA": "x y"])
            config.workingDir = ""
            let ctr = try await c.run(pod, config, podConfig)
            let r = try await c.exec(ctr, ["sh", "-c", "echo out; echo err >&2; echo $SKIFF_GREETING $SKIFF_EXTRA; pwd; exit 5"])
            #expect(r.out == "out\nhello x y\n/tmp/skiff-work\n")
            #expect(r.err == "err\n")
            #expect(r.code == 5)
            // 4 MiB of output arrives whole.
            let big = try await c.exec(ctr, ["sh", "-c", "head -c 4194304 /dev/zero | tr '\\0' a"])
            #expect(big.out.utf8.count == 4_194_304)
            // Timeout: killed, DEADLINE_EXCEEDED, and the call returns long before `sleep 60` would end
            // (a generous bound: other suites share the machine and the test process).
            let clock = ContinuousClock()
            let start = clock.now
            await #expect { try await c.exec(ctr, ["sleep", "60"], timeout: 1) } throws: { ($0 as? RPCError)?.code == .deadlineExceeded }
            #expect(clock.now - start < .seconds(45))
            #expect(!(try await c.exec(ctr, ["ps"]).out.contains("sleep 60")))
            // Not running → FAILED_PRECONDITION.
            try await c.stop(ctr, timeout: 0)
            await #expect { try await c.exec(ctr, ["true"]) } throws: { ($0 as? RPCError)?.code == .failedPrecondition }
            try await c.removePod(pod)
        }
        }
    }

    @Test func imageConfigMergesWithTheContainerConfig() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("entrypoint"))
            try await c.pull(h.registry.image("user"))
            let pod = try await c.runPod(podConfig)
            // ENTRYPOINT ["/bin/echo","skiff-entrypoint"] CMD ["hello"]: args replace CMD only.
            let a = try await c.run(pod, Pods.container(name: "a", image: h.registry.image("entrypoint")), podConfig)
            let b = try await c.run(pod, Pods.container(name: "b", image: h.registry.image("entrypoint"), args: ["there"]), podConfig)
            let d = try await c.run(pod, Pods.container(name: "d", image: h.registry.image("entrypoint"), command: ["echo"], args: ["own"]), podConfig)
            for (id, expected) in [(a, "skiff-entrypoint hello"), (b, "skiff-entrypoint there"), (d, "own")] {
                let s = try await c.waitFor(id) { $0.state == .containerExited }
                let log = try String(contentsOfFile: s.logPath, encoding: .utf8)
                #expect(log.hasSuffix(" stdout F \(expected)\n"), "log of \(s.metadata?.name ?? ""): \(log)")
            }
            // USER 1000 from the image, and run_as_user overriding it.
            let u = try await c.run(pod, Pods.container(name: "u", image: h.registry.image("user"), command: ["sleep", "300"]), podConfig)
            #expect(try await c.exec(u, ["id", "-u"]).out == "1000\n")
            var root = Pods.container(name: "r", image: h.registry.image("user"), command: ["sleep", "300"])
            var zero = Int64Value()
            zero.value = 0
            root.linux?.securityContext?.runAsUser = zero
            let r = try await c.run(pod, root, podConfig)
            #expect(try await c.exec(r, ["id", "-u"]).out == "0\n")
            try await c.removePod(pod)
        }
        }
    }

    @Test func securityContextCapabilitiesAndReadOnlyRootfs() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            var dropped = Pods.container(name: "dropped", image: h.registry.image("latest"), command: ["sleep", "300"])
            var caps = Capability()
            caps.dropCapabilities = ["NET_RAW", "CHOWN"]
            dropped.linux?.securityContext?.capabilities = caps
            dropped.linux?.securityContext?.readonlyRootfs = true
            let ctr = try await c.run(pod, dropped, podConfig)
            let status = try await c.exec(ctr, ["grep", "CapEff", "/proc/self/status"]).out
            let hex = status.split(separator: "\t").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            let mask = UInt64(hex, radix: 16) ?? 0
            #expect(mask & (1 << 13) == 0, "CAP_NET_RAW still effective: \(status)")
            #expect(mask & (1 << 0) == 0, "CAP_CHOWN still effective: \(status)")
            #expect(mask & (1 << 5) != 0, "CAP_KILL (default) missing: \(status)")
            let write = try await c.exec(ctr, ["sh", "-c", "echo x > /skiff-ro-test"])
            #expect(write.code != 0)
            #expect(write.err.lowercased().contains("read-only"))
            try await c.removePod(pod)
        }
        }
    }

    @Test func resourcesAreAppliedAndOOMIsReported() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            var hog = Pods.container(name: "hog", image: h.registry.image("latest"),
                                     command: ["sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=128M count=1"])
            var limits = LinuxContainerResources()
            limits.memoryLimitInBytes = 32 * 1024 * 1024
            limits.cpuPeriod = 100_000
            limits.cpuQuota = 50_000
            limits.unified = ["pids.max": "64"]
            hog.linux?.resources = limits
            let id = try await c.run(pod, hog, podConfig)
            let cgroup = podConfig.linux!.cgroupParent + "/" + id
            let v2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
            if v2 {
                #expect(try String(contentsOfFile: "/sys/fs/cgroup\(cgroup)/cpu.max", encoding: .utf8) == "50000 100000\n")
                #expect(try String(contentsOfFile: "/sys/fs/cgroup\(cgroup)/pids.max", encoding: .utf8) == "64\n")
            } else {
                #expect(try String(contentsOfFile: "/sys/fs/cgroup/cpu\(cgroup)/cpu.cfs_quota_us", encoding: .utf8) == "50000\n")
                #expect(try String(contentsOfFile: "/sys/fs/cgroup/pids\(cgroup)/pids.max", encoding: .utf8) == "64\n")
                #expect(try String(contentsOfFile: "/sys/fs/cgroup/memory\(cgroup)/memory.limit_in_bytes", encoding: .utf8) == "33554432\n")
            }
            let s = try await c.waitFor(id) { $0.state == .containerExited }
            #expect(s.reason == "OOMKilled", "exit \(s.exitCode) reason \(s.reason)")
            #expect(s.exitCode == 137)
            try await c.removePod(pod)
        }
        }
    }

    @Test func logsInCRIFormatWithPartialLinesAndReopen() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            let script = """
                echo first; echo second >&2; head -c 20000 /dev/zero | tr '\\0' x; echo;
                while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after-reopen; sleep 300
                """
            let id = try await c.run(pod, Pods.container(name: "logger", image: h.registry.image("latest"), command: ["sh", "-c", script]), podConfig)
            let logPath = try await c.status(id).logPath
            #expect(logPath == h.logDirectory + "/logger.log")
            try await waitUntil { ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").count >= 4 }
            let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").map(String.init)
            let pattern = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) .*$/
            for line in lines { #expect(line.wholeMatch(of: pattern) != nil, "bad log line: \(line.prefix(80))") }
            #expect(lines.contains { $0.hasSuffix(" stdout F first") })
            #expect(lines.contains { $0.hasSuffix(" stderr F second") })
            // 20000 x's: a partial piece of 16 KiB, then the rest as the full line.
            let pieces = lines.filter { $0.contains(" stdout P ") || $0.hasSuffix(String(repeating: "x", count: 100)) }
            #expect(pieces.count == 2, "log:\n\(lines.map { String($0.prefix(60)) + "… (\($0.count))" }.joined(separator: "\n"))")
            #expect(pieces.first?.contains(" stdout P ") == true)
            let rebuilt = pieces.map { $0.split(separator: " ", maxSplits: 3)[3] }.joined()
            #expect(rebuilt == String(repeating: "x", count: 20000))

            // Rotation: move the file away, reopen, and new output lands in a fresh file.
            try FileManager.default.moveItem(atPath: logPath, toPath: logPath + ".1")
            var reopen = ReopenContainerLogRequest()
            reopen.containerId = id
            _ = try await c.call(CRIMethods.reopenContainerLog, reopen)
            #expect(FileManager.default.fileExists(atPath: logPath))
            _ = try await c.exec(id, ["touch", "/tmp/go"])
            try await waitUntil { ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("after-reopen") }
            #expect(!(try String(contentsOfFile: logPath + ".1", encoding: .utf8)).contains("after-reopen"))
            try await c.stop(id, timeout: 0)
            await #expect { try await c.call(CRIMethods.reopenContainerLog, reopen) } throws: { ($0 as? RPCError)?.code == .failedPrecondition }
            try await c.removePod(pod)
        }
        }
    }

    @Test func listContainersFiltersAndStats() async throws {
        try await RuntimeHarness.run { h in
        let podA = h.podConfig(name: "a")
        let podB = h.podConfig(name: "b")
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let a = try await c.runPod(podA)
            let b = try await c.runPod(podB)
            var web = Pods.container(name: "web", image: h.registry.image("latest"), command: ["sleep", "300"])
            web.labels = ["app": "web"]
            let w = try await c.run(a, web, podA)
            let created = try await c.create(b, Pods.container(name: "idle", image: h.registry.image("latest"), command: ["sleep", "300"]), podB)
            #expect(Set(try await c.listContainers().map(\.id)) == [w, created])
            var filter = ContainerFilter()
            filter.podSandboxId = a
            #expect(try await c.listContainers(filter).map(\.id) == [w])
            filter = ContainerFilter()
            filter.id = String(created.prefix(10))
            #expect(try await c.listContainers(filter).map(\.id) == [created])
            filter = ContainerFilter()
            var state = ContainerStateValue()
            state.state = .containerCreated
            filter.state = state
            #expect(try await c.listContainers(filter).map(\.id) == [created])
            filter = ContainerFilter()
            filter.labelSelector = ["app": "web"]
            #expect(try await c.listContainers(filter).map(\.id) == [w])

            var statsRequest = ContainerStatsRequest()
            statsRequest.containerId = w
            let stats = try await c.call(CRIMethods.containerStats, statsRequest).stats
            #expect((stats?.memory?.workingSetBytes?.value ?? 0) > 0)
            #expect(stats?.cpu?.usageCoreNanoSeconds != nil)
            #expect(stats?.writableLayer?.usedBytes != nil)
            let all = try await c.call(CRIMethods.listContainerStats, ListContainerStatsRequest()).stats
            let listedIds = all.map { stat in stat.attributes?.id ?? "" }
            #expect(listedIds.contains(w))

            var update = UpdateContainerResourcesRequest()
            update.containerId = w
            var limits = LinuxContainerResources()
            limits.cpuPeriod = 100_000
            limits.cpuQuota = 20_000
            update.linux = limits
            _ = try await c.call(CRIMethods.updateContainerResources, update)
            #expect(try await c.status(w).resources?.linux?.cpuQuota == 20_000)
            try await c.removePod(a)
            try await c.removePod(b)
        }
        }
    }

    @Test func containersSurviveSkiffdKillAndRestart() async throws {
        try await RuntimeHarness.run { h in
        var pods: [String] = []
        var containers: [String] = []
        var quitter = ""
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            for i in 0..<5 {
                let config = h.podConfig(name: "survivor-\(i)")
                let pod = try await c.runPod(config)
                pods.append(pod)
                containers.append(try await c.run(pod, Pods.container(name: "c", image: h.registry.image("latest"), command: ["sleep", "300"]), config))
                if i == 0 {
                    quitter = try await c.run(pod, Pods.container(
                        name: "quitter", image: h.registry.image("latest"),
                        command: ["sh", "-c", "while [ ! -e /tmp/quit ]; do sleep 0.05; done; exit 42"]), config)
                }
            }
        }
        await h.daemon.kill()
        // While skiffd is down, one container exits on its own.
        try FileManager.default.createDirectory(atPath: h.daemon.directory, withIntermediateDirectories: true)
        let rootfs = h.daemon.state + "/containers/\(quitter)/bundle/rootfs"
        FileManager.default.createFile(atPath: rootfs + "/tmp/quit", contents: Data())
        try await waitUntil { FileManager.default.fileExists(atPath: h.daemon.state + "/containers/\(quitter)/exit.json") }

        let restarted = try await TestDaemon.start(directory: h.daemon.directory)
        try await restarted.client { c in
            let listed = try await c.listPods()
            #expect(Set(listed.map(\.id)) == Set(pods))
            #expect(listed.allSatisfy { $0.state == .sandboxReady })
            for id in containers { #expect(try await c.status(id).state == .containerRunning) }
            let q = try await c.status(quitter)
            #expect(q.state == .containerExited && q.exitCode == 42)
            #expect(try await c.exec(containers[1], ["echo", "alive"]).out == "alive\n")
            for pod in pods {
                try await c.stopPod(pod)
                try await c.removePod(pod)
            }
            #expect(try await c.listContainers().isEmpty)
        }
        await restarted.terminate()
        }
    }
}

/// Polls `condition` with a generous bound.
func waitUntil(timeout: Duration = .seconds(30), _ condition: () throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while try !condition() {
        if clock.now > deadline { throw TestFailure("condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

extension RuntimeTests {
    /// List calls answer from memory (pidfds): they must still see exits that nobody asked about,
    /// a container ending on its own and an infra process killed behind skiffd's back.
    @Test func listsSeeExitsWithoutAStatusCall() async throws {
        try await RuntimeHarness.run { h in
            let podConfig = h.podConfig()
            try await h.client { c in
                try await c.pull(h.registry.image("latest"))
                let pod = try await c.runPod(podConfig)
                let quick = try await c.run(pod, Pods.container(name: "quick", image: h.registry.image("latest"), command: ["sh", "-c", "sleep 0.3; exit 5"]), podConfig)
                let slow = try await c.run(pod, Pods.container(name: "slow", image: h.registry.image("latest"), command: ["sleep", "300"]), podConfig)
                var exited = ContainerStateValue()
                exited.state = .containerExited
                var filter = ContainerFilter()
                filter.state = exited
                var listed: [Container] = []
                for _ in 0..<300 {
                    listed = try await c.listContainers(filter)
                    if !listed.isEmpty { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(listed.map(\.id) == [quick])
                #expect(try await c.status(quick).exitCode == 5)
                #expect(try await c.listContainers().first { $0.id == slow }?.state == .containerRunning)

                // Kill the pod's infra from outside: the pod turns NOTREADY in the list.
                let info = try await c.podStatus(pod, verbose: true).info["info"] ?? ""
                let infraPid: Int32
                switch try ProtoJSON.parse(info)["pid"] {
                case .int(let n)?: infraPid = Int32(n)
                case .uint(let n)?: infraPid = Int32(n)
                case .number(let n)?: infraPid = Int32(n)
                default:
                    Issue.record("no pid in \(info)")
                    return
                }
                #expect(infraPid > 0)
                kill(infraPid, SIGKILL)
                var state = PodSandboxState.sandboxReady
                for _ in 0..<300 {
                    state = try await c.listPods().first { $0.id == pod }?.state ?? .sandboxReady
                    if state == .sandboxNotready { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(state == .sandboxNotready)
                try await c.stopPod(pod)
                try await c.removePod(pod)
            }
        }
    }
}

/// The Unix time in ns of a CRI log timestamp (RFC 3339, UTC, up to 9 fraction digits).
func criLogNanos(_ text: String) -> Int64? {
    guard text.hasSuffix("Z"), let dot = text.firstIndex(of: ".") else { return nil }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    guard let seconds = formatter.date(from: String(text[..<dot]) + "Z") else { return nil }
    let digits = text[text.index(after: dot)..<text.index(before: text.endIndex)]
    guard !digits.isEmpty, digits.count <= 9, let fraction = Int64(digits) else { return nil }
    var nanos = fraction
    for _ in digits.count..<9 { nanos *= 10 }
    return Int64(seconds.timeIntervalSince1970) * 1_000_000_000 + nanos
}
