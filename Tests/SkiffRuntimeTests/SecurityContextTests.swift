import Foundation
import Testing

@testable import SkiffRuntime

/// CRI security context → OCI: capabilities bounded by what skiffd holds, and run_as_group rules.
@Suite struct SecurityContextTests {
    /// This machine's root: everything through CAP_CHECKPOINT_RESTORE except CAP_SYS_RESOURCE (bit 24).
    static let statusWithoutSysResource = """
        Name:\tskiffd
        CapInh:\t0000000000000000
        CapPrm:\t000001fffeffffff
        CapEff:\t000001fffeffffff
        CapBnd:\t000001fffeffffff
        CapAmb:\t0000000000000000
        """

    static var held: [String] { ContainerSpecBuilder.heldCapabilities(status: statusWithoutSysResource)! }

    @Test func heldCapabilitiesAreEffectiveAndBounding() throws {
        let held = Self.held
        #expect(held.count == 40)
        #expect(!held.contains("CAP_SYS_RESOURCE"))
        #expect(held.first == "CAP_CHOWN" && held.last == "CAP_CHECKPOINT_RESTORE")
        // A capability effective but outside the bounding set (or the reverse) is not held.
        let narrow = try #require(ContainerSpecBuilder.heldCapabilities(status: "CapEff:\t0000000000000003\nCapBnd:\t0000000000000006\n"))
        #expect(narrow == ["CAP_DAC_OVERRIDE"])
        #expect(ContainerSpecBuilder.heldCapabilities(status: "CapEff:\tzz\nCapBnd:\t0\n") == nil)
        #expect(ContainerSpecBuilder.heldCapabilities(status: "Name:\tx\n") == nil)
    }

    /// skiffd's own set, read from this process (the tests run as skiffd would).
    @Test func skiffdCapabilitiesMatchThisProcess() throws {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        #expect(ContainerSpecBuilder.skiffdCapabilities == ContainerSpecBuilder.heldCapabilities(status: status))
    }

    @Test func privilegedAndAllMeanTheHeldSet() throws {
        let held = Self.held
        #expect(try ContainerSpecBuilder.capabilities(privileged: true, add: [], drop: [], held: held) == held)
        // Privileged ignores add and drop, as containerd's WithPrivileged applied last.
        #expect(try ContainerSpecBuilder.capabilities(privileged: true, add: ["SYS_RESOURCE"], drop: ["ALL"], held: held) == held)
        #expect(try ContainerSpecBuilder.capabilities(privileged: false, add: ["ALL"], drop: [], held: held) == held)
        let allButChown = try ContainerSpecBuilder.capabilities(privileged: false, add: ["all"], drop: ["CHOWN"], held: held)
        #expect(allButChown == held.filter { $0 != "CAP_CHOWN" })
        // drop ALL then add one.
        #expect(try ContainerSpecBuilder.capabilities(privileged: false, add: ["NET_ADMIN"], drop: ["ALL"], held: held) == ["CAP_NET_ADMIN"])
        // The defaults are unchanged when skiffd holds them.
        #expect(try ContainerSpecBuilder.capabilities(privileged: false, add: [], drop: [], held: held) == ContainerSpecBuilder.defaultCapabilities)
    }

    @Test func addingACapabilitySkiffdLacksIsInvalid() throws {
        let held = Self.held
        #expect {
            try ContainerSpecBuilder.capabilities(privileged: false, add: ["SYS_RESOURCE"], drop: [], held: held)
        } throws: { error in
            "\(error)".contains("CAP_SYS_RESOURCE") && "\(error)".contains("does not hold")
        }
        #expect {
            try ContainerSpecBuilder.capabilities(privileged: false, add: ["NOT_A_CAP"], drop: [], held: held)
        } throws: { "\($0)".contains("unknown capability") }
        // Defaults skiffd lacks are left out rather than failing every container.
        let noKill = held.filter { $0 != "CAP_KILL" }
        let defaults = try ContainerSpecBuilder.capabilities(privileged: false, add: [], drop: [], held: noKill)
        #expect(defaults == ContainerSpecBuilder.defaultCapabilities.filter { $0 != "CAP_KILL" })
    }

    @Test func runAsGroupNeedsAUser() throws {
        let rootfs = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-user-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: rootfs + "/etc", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: rootfs) }
        try "root:x:0:0::/root:/bin/sh\nskiff:x:1000:1000::/home/skiff:/bin/sh\n".write(toFile: rootfs + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\nskiff:x:1000:\n".write(toFile: rootfs + "/etc/group", atomically: true, encoding: .utf8)

        #expect {
            try UserResolver.resolve(rootfs: rootfs, runAsUser: nil, runAsGroup: 2000, runAsUsername: "", imageUser: "skiff", supplementalGroups: [])
        } throws: { "\($0)".contains("run_as_group is set without run_as_user or run_as_username") }
        let byUid = try UserResolver.resolve(rootfs: rootfs, runAsUser: 1000, runAsGroup: 2000, runAsUsername: "", imageUser: "", supplementalGroups: [])
        #expect(byUid.uid == 1000 && byUid.gid == 2000)
        let byName = try UserResolver.resolve(rootfs: rootfs, runAsUser: nil, runAsGroup: 2000, runAsUsername: "skiff", imageUser: "", supplementalGroups: [])
        #expect(byName.uid == 1000 && byName.gid == 2000)
        // Without run_as_group the image's user and its primary group stand.
        let image = try UserResolver.resolve(rootfs: rootfs, runAsUser: nil, runAsGroup: nil, runAsUsername: "", imageUser: "skiff", supplementalGroups: [])
        #expect(image.uid == 1000 && image.gid == 1000)
    }
}
