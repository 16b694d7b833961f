import CRI
import Foundation
import GRPCCore
import SkiffClient
// FileSystem.readString reads /proc files to EOF; Foundation stops after the first 4 KiB page of
// /proc/self/mountinfo, which hides every mount after it.
import SkiffSupport
import Testing

// MARK: - CRI conformance: privileged, capabilities, run_as_group, mount propagation

/// A capability mask line ("CapEff", "CapBnd") of a /proc/<pid>/status text.
private func capMask(_ status: String, _ key: String) -> UInt64? {
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
    return UInt64(line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces), radix: 16)
}

/// Mount points listed in a mountinfo text.
private func mountPoints(_ mountinfo: String) -> [String] {
    mountinfo.split(separator: "\n").compactMap { line in
        let f = line.split(separator: " ")
        return f.count > 4 ? String(f[4]) : nil
    }
}

extension RuntimeTests {
    /// Privileged and add ALL get exactly what skiffd holds (here root lacks CAP_SYS_RESOURCE, so the full
    /// list would fail at capset); naming a capability skiffd lacks is INVALID_ARGUMENT.
    @Test func privilegedAndAllCapabilitiesAreSkiffdsOwn() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        let daemonStatus = try String(contentsOfFile: "/proc/\(h.daemon.process.pid)/status", encoding: .utf8)
        let eff = try #require(capMask(daemonStatus, "CapEff"))
        let bnd = try #require(capMask(daemonStatus, "CapBnd"))
        let held = eff & bnd
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            var privileged = Pods.container(name: "privileged", image: h.registry.image("latest"), command: ["sleep", "300"])
            privileged.linux?.securityContext?.privileged = true
            var all = Pods.container(name: "all", image: h.registry.image("latest"), command: ["sleep", "300"])
            var caps = Capability()
            caps.addCapabilities = ["ALL"]
            all.linux?.securityContext?.capabilities = caps
            for config in [privileged, all] {
                let id = try await c.run(pod, config, podConfig)
                let status = try await c.exec(id, ["cat", "/proc/self/status"]).out
                let name = config.metadata?.name ?? ""
                #expect(capMask(status, "CapEff") == held, "\(name): CapEff \(String(capMask(status, "CapEff") ?? 0, radix: 16)), skiffd holds \(String(held, radix: 16))")
                #expect(capMask(status, "CapBnd") == held, "\(name): CapBnd differs from skiffd's")
            }
            // Adding one capability skiffd does not hold: rejected up front, naming it.
            if let missing = (0..<41).first(where: { held & (1 << UInt64($0)) == 0 }) {
                let names = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
                             "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
                             "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
                             "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
                             "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
                             "CHECKPOINT_RESTORE"]
                var one = Pods.container(name: "one", image: h.registry.image("latest"), command: ["sleep", "300"])
                var add = Capability()
                add.addCapabilities = [names[missing]]
                one.linux?.securityContext?.capabilities = add
                await #expect {
                    try await c.create(pod, one, podConfig)
                } throws: { error in
                    let e = error as? RPCError
                    return e?.code == .invalidArgument && (e?.message.contains("CAP_" + names[missing]) ?? false)
                }
            }
            try await c.removePod(pod)
        }
        }
    }

    /// CRI: run_as_group without run_as_user or run_as_username MUST be an error.
    @Test func runAsGroupWithoutAUserIsInvalid() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            var group = Int64Value()
            group.value = 2000
            var alone = Pods.container(name: "alone", image: h.registry.image("latest"), command: ["sleep", "300"])
            alone.linux?.securityContext?.runAsGroup = group
            await #expect { try await c.create(pod, alone, podConfig) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            #expect(try await c.listContainers().isEmpty)
            // With run_as_user the group applies.
            var user = Int64Value()
            user.value = 1000
            var both = alone
            both.metadata?.name = "both"
            both.linux?.securityContext?.runAsUser = user
            let id = try await c.run(pod, both, podConfig)
            #expect(try await c.exec(id, ["id", "-u"]).out == "1000\n")
            #expect(try await c.exec(id, ["id", "-g"]).out == "2000\n")
            try await c.removePod(pod)
        }
        }
    }

    /// A shared host directory mounted Bidirectional, HostToContainer and with no propagation: a host mount
    /// below it reaches the first two; a mount made inside the Bidirectional container reaches the host.
    @Test func mountPropagationBidirectionalHostToContainerAndPrivate() async throws {
        try await RuntimeHarness.run { h in
        let volume = h.daemon.directory + "/skiff-prop-volume"
        try FileManager.default.createDirectory(atPath: volume + "/from-host", withIntermediateDirectories: true)
        // The host side must be a shared mount, as kubelet's volume directories are (critest does the same).
        #expect(mount(volume, volume, nil, 4096 /* MS_BIND */, nil) == 0, "bind \(volume): \(errno)")
        #expect(mount(nil, volume, nil, 1 << 20 /* MS_SHARED */, nil) == 0, "make-shared \(volume): \(errno)")
        // Innermost first; each may already be gone.
        defer {
            for path in [volume + "/from-container", volume + "/from-host", volume] { umount2(path, Int32(MNT_DETACH)) }
        }
        let podConfig = h.podConfig()
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let pod = try await c.runPod(podConfig)
            func withVolume(_ name: String, _ propagation: MountPropagation) -> ContainerConfig {
                var config = Pods.container(name: name, image: h.registry.image("latest"), command: ["sleep", "300"])
                config.linux?.securityContext?.privileged = true  // to mount inside
                var m = CRI.Mount()
                m.containerPath = "/vol"
                m.hostPath = volume
                m.propagation = propagation
                config.mounts = [m]
                return config
            }
            let bidirectional = try await c.run(pod, withVolume("bidirectional", .propagationBidirectional), podConfig)
            let hostToContainer = try await c.run(pod, withVolume("host-to-container", .propagationHostToContainer), podConfig)
            let isolated = try await c.run(pod, withVolume("private", .propagationPrivate), podConfig)

            // Host → containers.
            #expect(mount("skiff-prop-host", volume + "/from-host", "tmpfs", 0, "size=1m") == 0, "mount from-host: \(errno)")
            for (id, sees) in [(bidirectional, true), (hostToContainer, true), (isolated, false)] {
                let mounts = try await c.exec(id, ["cat", "/proc/self/mountinfo"]).out
                #expect(mountPoints(mounts).contains("/vol/from-host") == sees, "container \(id.prefix(12)) sees the host's mount: \(!sees)")
            }

            // Bidirectional container → host.
            let made = try await c.exec(bidirectional, ["sh", "-c", "mkdir -p /vol/from-container && mount -t tmpfs skiff-prop-ctr /vol/from-container && echo made"])
            #expect(made.out == "made\n", "mount in the container: \(made)")
            try await waitUntil(timeout: .seconds(10)) {
                mountPoints((try? FileSystem.readString("/proc/self/mountinfo")) ?? "").contains(volume + "/from-container")
            }
            // The other containers: HostToContainer receives it through the host, private does not.
            #expect(mountPoints(try await c.exec(hostToContainer, ["cat", "/proc/self/mountinfo"]).out).contains("/vol/from-container"))
            #expect(!mountPoints(try await c.exec(isolated, ["cat", "/proc/self/mountinfo"]).out).contains("/vol/from-container"))
            try await c.removePod(pod)
        }
        }
    }
}
