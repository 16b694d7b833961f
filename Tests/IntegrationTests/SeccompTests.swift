import CRI
import Foundation
import GRPCCore
import SkiffClient
import Testing

// MARK: - Seccomp

extension RuntimeTests {
    static func seccompContainer(_ name: String, image: String, profile: SecurityProfile.ProfileType? = nil, ref: String = "",
                                 path: String = "", addCapabilities: [String] = []) -> ContainerConfig {
        var config = Pods.container(name: name, image: image, command: ["sleep", "300"])
        if let profile {
            var p = SecurityProfile()
            p.profileType = profile
            p.localhostRef = ref
            config.linux?.securityContext?.seccomp = p
        }
        config.linux?.securityContext?.seccompProfilePath = path
        if !addCapabilities.isEmpty {
            var caps = Capability()
            caps.addCapabilities = addCapabilities
            config.linux?.securityContext?.capabilities = caps
        }
        return config
    }

    @Test func runtimeDefaultSeccompBlocksWhatItShouldAndRunsOrdinaryPrograms() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            let image = h.registry.image("latest")
            try await c.pull(image)
            let pod = try await c.runPod(podConfig)
            let confined = try await c.run(pod, Self.seccompContainer("confined", image: image, profile: .runtimeDefault), podConfig)
            let open = try await c.run(pod, Self.seccompContainer("open", image: image, profile: .unconfined), podConfig)
            let admin = try await c.run(pod, Self.seccompContainer("admin", image: image, path: "docker/default", addCapabilities: ["SYS_ADMIN"]), podConfig)

            // Mode 2 = filter, for init's children and for exec'd processes alike.
            #expect(try await c.exec(confined, ["grep", "Seccomp:", "/proc/self/status"]).out.contains("\t2"))
            #expect(try await c.exec(confined, ["sh", "-c", "grep Seccomp: /proc/1/status"]).out.contains("\t2"))
            #expect(try await c.exec(open, ["grep", "Seccomp:", "/proc/self/status"]).out.contains("\t0"))

            // An ordinary busybox workload is unaffected.
            let work = try await c.exec(confined, ["sh", "-c", """
                set -e; echo hello > /tmp/skiff-f; cat /tmp/skiff-f; mkdir -p /tmp/skiff-d/e; chmod 700 /tmp/skiff-d
                ls /tmp >/dev/null; ps >/dev/null; sleep 0.1; id -u; (echo sub) | cat; wc -c < /tmp/skiff-f; rm -r /tmp/skiff-d
                """])
            #expect(work.code == 0 && work.out == "hello\n0\nsub\n6\n", "out: \(work.out) err: \(work.err)")

            // A new user namespace needs no capability from the kernel, but the default profile blocks it.
            let blocked = try await c.exec(confined, ["unshare", "-U", "true"])
            #expect(blocked.code != 0 && blocked.err.contains("Operation not permitted"), "err: \(blocked.err)")
            let allowed = try await c.exec(open, ["unshare", "-U", "true"])
            #expect(allowed.code == 0, "unconfined: \(allowed.err)")

            // CAP_SYS_ADMIN unlocks sethostname and friends in the default profile.
            let hostname = try await c.exec(admin, ["hostname", "skiff-seccomp"])
            #expect(hostname.code == 0, "err: \(hostname.err)")
            #expect(try await c.exec(admin, ["grep", "Seccomp:", "/proc/self/status"]).out.contains("\t2"))
            let noAdmin = try await c.exec(confined, ["hostname", "skiff-nope"])
            #expect(noAdmin.code != 0)
            try await c.removePod(pod)
        }
        }
    }

    @Test func localhostSeccompProfileIsLoadedFromTheNode() async throws {
        let dir = NSTemporaryDirectory() + "skiff-seccomp-it-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Docker's format: everything allowed except creating directories and (with CAP_SYS_ADMIN) sethostname.
        let profile = dir + "/no-mkdir.json"
        try """
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                          {"name": "sethostname", "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
            """.write(toFile: profile, atomically: true, encoding: .utf8)
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            let image = h.registry.image("latest")
            try await c.pull(image)
            let pod = try await c.runPod(podConfig)
            let viaPath = try await c.run(pod, Self.seccompContainer("path", image: image, path: "localhost/" + profile, addCapabilities: ["SYS_ADMIN"]), podConfig)
            let viaField = try await c.run(pod, Self.seccompContainer("field", image: image, profile: .localhost, ref: profile), podConfig)
            for id in [viaPath, viaField] {
                let mkdir = try await c.exec(id, ["mkdir", "/tmp/skiff-blocked"])
                #expect(mkdir.code != 0 && mkdir.err.contains("Operation not permitted"), "err: \(mkdir.err)")
                #expect(try await c.exec(id, ["touch", "/tmp/skiff-allowed"]).code == 0)
            }
            let hostname = try await c.exec(viaPath, ["hostname", "skiff-blocked"])
            #expect(hostname.code != 0 && hostname.err.contains("Operation not permitted"), "err: \(hostname.err)")
            try await c.removePod(pod)
        }
        }
    }

    @Test func unknownOrUnreadableSeccompProfilesAreInvalidArgument() async throws {
        try await RuntimeHarness.run { h in
        let podConfig = h.podConfig()
        try await h.client { c in
            let image = h.registry.image("latest")
            try await c.pull(image)
            let pod = try await c.runPod(podConfig)
            let bad: [ContainerConfig] = [
                Self.seccompContainer("noprefix", image: image, path: "/etc/skiff-profile.json"),
                Self.seccompContainer("missing", image: image, path: "localhost//nonexistent/skiff-profile.json"),
                Self.seccompContainer("ref", image: image, profile: .runtimeDefault, ref: "/etc/skiff-profile.json"),
            ]
            for config in bad {
                await #expect { try await c.create(pod, config, podConfig) } throws: { error in
                    let e = error as? RPCError
                    return e?.code == .invalidArgument && (e?.message.contains("skiff-profile.json") ?? false)
                }
            }
            // The names stay free: a good container with the same name is created afterwards.
            let ok = try await c.run(pod, Self.seccompContainer("noprefix", image: image, path: "runtime/default"), podConfig)
            #expect(try await c.exec(ok, ["true"]).code == 0)
            #expect(try await c.listContainers().count == 1)
            try await c.removePod(pod)
        }
        }
    }
}
