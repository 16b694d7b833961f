import CRI
import Foundation
import SkiffOCI
import SkiffSupport
import Testing

@testable import SkiffRuntime

/// The CRI → OCI seccomp mapping: which profile is chosen, the default profile's capability-gated rules,
/// and Docker/OCI-format localhost files.
@Suite struct SeccompProfilesTests {
    static func security(profile: SecurityProfile.ProfileType? = nil, ref: String = "", path: String = "") -> LinuxContainerSecurityContext {
        var s = LinuxContainerSecurityContext()
        if let profile {
            var p = SecurityProfile()
            p.profileType = profile
            p.localhostRef = ref
            s.seccomp = p
        }
        s.seccompProfilePath = path
        return s
    }

    static let defaultCaps = ContainerSpecBuilder.defaultCapabilities

    /// Names the profile allows unconditionally (no argument checks).
    static func allowed(_ s: Seccomp) -> Set<String> {
        Set(s.syscalls.filter { $0.action == "SCMP_ACT_ALLOW" && $0.args.isEmpty }.flatMap(\.names))
    }

    /// A temporary profile file; the caller removes the directory.
    static func writeProfile(_ text: String) throws -> (dir: String, path: String) {
        let dir = NSTemporaryDirectory() + "skiff-seccomp-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/profile.json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return (dir, path)
    }

    static func isInvalidArgument(_ error: any Error, mentioning text: String) -> Bool {
        guard let e = error as? SkiffError else { return false }
        return e.code == .invalidArgument && e.message.contains(text)
    }

    // MARK: Choice

    @Test func deprecatedPathNames() throws {
        #expect(try SeccompProfiles.choice(profile: nil, deprecatedPath: "") == .unconfined)
        #expect(try SeccompProfiles.choice(profile: nil, deprecatedPath: "unconfined") == .unconfined)
        #expect(try SeccompProfiles.choice(profile: nil, deprecatedPath: "runtime/default") == .runtimeDefault)
        #expect(try SeccompProfiles.choice(profile: nil, deprecatedPath: "docker/default") == .runtimeDefault)
        #expect(try SeccompProfiles.choice(profile: nil, deprecatedPath: "localhost//etc/p.json") == .localhost("/etc/p.json"))
        #expect { try SeccompProfiles.choice(profile: nil, deprecatedPath: "/etc/p.json") } throws: {
            Self.isInvalidArgument($0, mentioning: "localhost/<absolute path")
        }
        #expect { try SeccompProfiles.choice(profile: nil, deprecatedPath: "localhost/relative.json") } throws: {
            Self.isInvalidArgument($0, mentioning: "absolute")
        }
    }

    @Test func securityProfileField() throws {
        func choice(_ t: SecurityProfile.ProfileType, _ ref: String = "") throws -> SeccompProfiles.Choice {
            var p = SecurityProfile()
            p.profileType = t
            p.localhostRef = ref
            return try SeccompProfiles.choice(profile: p, deprecatedPath: "")
        }
        #expect(try choice(.runtimeDefault) == .runtimeDefault)
        #expect(try choice(.unconfined) == .unconfined)
        #expect(try choice(.localhost, "/var/lib/p.json") == .localhost("/var/lib/p.json"))
        #expect(try choice(.localhost, "localhost//var/lib/p.json") == .localhost("/var/lib/p.json"))
        #expect { try choice(.runtimeDefault, "/p.json") } throws: { Self.isInvalidArgument($0, mentioning: "only allowed with profile_type Localhost") }
        #expect { try choice(.localhost, "") } throws: { Self.isInvalidArgument($0, mentioning: "absolute") }
        #expect { try choice(SecurityProfile.ProfileType(rawValue: 9)) } throws: { Self.isInvalidArgument($0, mentioning: "unknown profile_type") }
    }

    @Test func newFieldWinsOverTheDeprecatedPath() throws {
        let a = Self.security(profile: .unconfined, path: "runtime/default")
        #expect(try SeccompProfiles.seccomp(for: a, privileged: false, capabilities: Self.defaultCaps) == nil)
        let b = Self.security(profile: .runtimeDefault, path: "unconfined")
        #expect(try SeccompProfiles.seccomp(for: b, privileged: false, capabilities: Self.defaultCaps) != nil)
        // A bad deprecated path is not even looked at when the new field is set.
        let c = Self.security(profile: .runtimeDefault, path: "bogus")
        #expect(try SeccompProfiles.seccomp(for: c, privileged: false, capabilities: Self.defaultCaps) != nil)
    }

    @Test func privilegedAndUnsetGetNoFilter() throws {
        #expect(try SeccompProfiles.seccomp(for: nil, privileged: false, capabilities: Self.defaultCaps) == nil)
        #expect(try SeccompProfiles.seccomp(for: Self.security(), privileged: false, capabilities: Self.defaultCaps) == nil)
        let asked = Self.security(profile: .runtimeDefault)
        #expect(try SeccompProfiles.seccomp(for: asked, privileged: true, capabilities: Self.defaultCaps) == nil)
        let missingFile = Self.security(path: "localhost//nonexistent/skiff-profile.json")
        #expect(try SeccompProfiles.seccomp(for: missingFile, privileged: true, capabilities: Self.defaultCaps) == nil)
        // Names are still checked for privileged containers, as containerd does.
        #expect { try SeccompProfiles.seccomp(for: Self.security(path: "bogus"), privileged: true, capabilities: []) } throws: {
            Self.isInvalidArgument($0, mentioning: "bogus")
        }
    }

    // MARK: Default profile

    @Test func defaultProfileShape() throws {
        let p = try #require(try SeccompProfiles.seccomp(for: Self.security(path: "docker/default"), privileged: false, capabilities: Self.defaultCaps))
        #expect(p.defaultAction == "SCMP_ACT_ERRNO")
        #expect(p.defaultErrnoRet == 1)
        #expect(p.architectures.first == SeccompProfiles.Architecture.native.scmp)
        let allowed = Self.allowed(p)
        for name in ["read", "write", "openat", "execve", "mmap", "futex", "nanosleep", "clock_nanosleep", "wait4",
                     "rt_sigaction", "socket", "mkdirat", "chmod", "fchmodat", "capset", "setresuid", "prctl", "chroot"] {
            #expect(allowed.contains(name), "\(name) should be allowed")
        }
        let everyName = Set(p.syscalls.flatMap(\.names))
        for name in ["kexec_load", "kexec_file_load", "keyctl", "add_key", "request_key", "bpf", "userfaultfd",
                     "mount", "unshare", "setns", "sethostname", "ptrace", "init_module", "reboot", "settimeofday"] {
            #expect(!everyName.contains(name), "\(name) should be blocked")
        }
    }

    @Test func cloneAndPersonalityAreRestrictedByArgument() throws {
        let p = SeccompProfiles.defaultProfile(capabilities: Self.defaultCaps)
        let clone = try #require(p.syscalls.first { $0.names == ["clone"] })
        #expect(clone.action == "SCMP_ACT_ALLOW")
        #expect(clone.args == [Seccomp.Arg(index: 0, value: 0x7E02_0000, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")])
        let clone3 = try #require(p.syscalls.first { $0.names == ["clone3"] })
        #expect(clone3.action == "SCMP_ACT_ERRNO" && clone3.errnoRet == 38)
        let personalities = p.syscalls.filter { $0.names == ["personality"] }.flatMap(\.args)
        #expect(personalities.map(\.value).sorted() == [0, 8, 0x20000, 0x20008, 0xffff_ffff])
        #expect(personalities.allSatisfy { $0.op == "SCMP_CMP_EQ" && $0.index == 0 })
    }

    @Test func capabilitiesUnlockTheirSyscalls() {
        let plain = Self.allowed(SeccompProfiles.defaultProfile(capabilities: Self.defaultCaps))
        let admin = SeccompProfiles.defaultProfile(capabilities: Self.defaultCaps + ["CAP_SYS_ADMIN"])
        let withAdmin = Self.allowed(admin)
        for name in ["mount", "umount2", "unshare", "setns", "sethostname", "setdomainname", "clone", "clone3", "pivot_root"] {
            #expect(!plain.contains(name) && withAdmin.contains(name), "\(name)")
        }
        // With CAP_SYS_ADMIN clone is allowed whole: no masked rule and no ENOSYS for clone3.
        #expect(!admin.syscalls.contains { $0.names == ["clone3"] && $0.action == "SCMP_ACT_ERRNO" })
        #expect(!admin.syscalls.contains { $0.names == ["clone"] && !$0.args.isEmpty })
        #expect(!withAdmin.contains("ptrace") && !withAdmin.contains("reboot"))
        let cases: [(String, [String])] = [
            ("CAP_SYS_PTRACE", ["ptrace", "process_vm_readv", "kcmp"]),
            ("CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
            ("CAP_SYS_TIME", ["settimeofday", "clock_settime"]),
            ("CAP_SYS_BOOT", ["reboot"]),
            ("CAP_BPF", ["bpf"]),
            ("CAP_SYSLOG", ["syslog"]),
        ]
        for (cap, names) in cases {
            let set = Self.allowed(SeccompProfiles.defaultProfile(capabilities: [cap]))
            for name in names { #expect(set.contains(name), "\(cap) should allow \(name)") }
            #expect(!set.contains("mount"), "\(cap) must not allow mount")
        }
        // Even with every capability, some syscalls stay blocked.
        let all = Self.allowed(SeccompProfiles.defaultProfile(capabilities: ContainerSpecBuilder.allCapabilities))
        for name in ["kexec_load", "keyctl", "add_key", "request_key", "userfaultfd"] { #expect(!all.contains(name), "\(name)") }
    }

    @Test func ordinaryNamesAreNotListedTwice() {
        let names = SeccompProfiles.ordinarySyscalls
        #expect(Set(names).count == names.count)
        let gated = Set(SeccompProfiles.capabilitySyscalls.flatMap(\.names))
        #expect(gated.isDisjoint(with: names))
    }

    // MARK: Localhost files

    @Test func localhostOCIFormat() throws {
        let f = try Self.writeProfile("""
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                          {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                           "args": [{"index": 1, "value": 256, "op": "SCMP_CMP_EQ"}]}]}
            """)
        defer { try? FileManager.default.removeItem(atPath: f.dir) }
        let p = try #require(try SeccompProfiles.seccomp(for: Self.security(path: "localhost/" + f.path), privileged: false, capabilities: []))
        #expect(p.defaultAction == "SCMP_ACT_ALLOW")
        #expect(p.architectures == ["SCMP_ARCH_X86_64"])
        #expect(p.syscalls == [
            Seccomp.Syscall(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1),
            Seccomp.Syscall(names: ["chmod"], action: "SCMP_ACT_ERRNO", args: [Seccomp.Arg(index: 1, value: 256, op: "SCMP_CMP_EQ")]),
        ])
        // The same file through the SecurityProfile field.
        let q = try SeccompProfiles.seccomp(for: Self.security(profile: .localhost, ref: f.path), privileged: false, capabilities: [])
        #expect(q == p)
    }

    @Test func localhostDockerFormat() throws {
        let native = SeccompProfiles.Architecture.native
        let json = try JSON(parsing: """
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
             "archMap": [{"architecture": "SCMP_ARCH_NOTHERE", "subArchitectures": ["SCMP_ARCH_X86"]},
                         {"architecture": "\(native.scmp)", "subArchitectures": ["SCMP_ARCH_X32"]}],
             "syscalls": [
               {"name": "read", "action": "SCMP_ACT_ALLOW"},
               {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
               {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
               {"names": ["here"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["\(native.names[0])"]}},
               {"names": ["elsewhere"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["ppc64le-not"]}},
               {"names": ["newkernel"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
               {"names": ["oldkernel"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "3.10"}}
             ]}
            """)
        let user = try SeccompProfiles.convert(json, capabilities: ["CAP_CHOWN"], arch: native, kernel: (6, 1))
        #expect(user.architectures == [native.scmp, "SCMP_ARCH_X32"])
        #expect(user.syscalls.flatMap(\.names) == ["read", "unshare", "here", "oldkernel"])
        let admin = try SeccompProfiles.convert(json, capabilities: ["SYS_ADMIN"], arch: native, kernel: (6, 1))
        #expect(admin.syscalls.flatMap(\.names) == ["read", "mount", "here", "oldkernel"])
    }

    @Test func badLocalhostFilesAreInvalidArgumentNamingThePath() throws {
        func rejects(_ text: String, _ fragment: String) throws {
            let f = try Self.writeProfile(text)
            defer { try? FileManager.default.removeItem(atPath: f.dir) }
            #expect { try SeccompProfiles.seccomp(for: Self.security(path: "localhost/" + f.path), privileged: false, capabilities: []) } throws: {
                Self.isInvalidArgument($0, mentioning: f.path) && Self.isInvalidArgument($0, mentioning: fragment)
            }
        }
        try rejects("{ not json", "not valid JSON")
        try rejects(#"{"syscalls": []}"#, "defaultAction")
        try rejects(#"{"defaultAction": "SCMP_ACT_MAYBE"}"#, "unknown action")
        try rejects(#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOTIFY"}]}"#, "not supported")
        try rejects(#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#, "unknown architecture")
        try rejects(#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#, "either name or names")
        try rejects(#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#, "above 5")
        try rejects(#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#, "unknown operator")
        let missing = "/nonexistent-skiff/profile.json"
        #expect { try SeccompProfiles.seccomp(for: Self.security(path: "localhost/" + missing), privileged: false, capabilities: []) } throws: {
            Self.isInvalidArgument($0, mentioning: missing) && Self.isInvalidArgument($0, mentioning: "cannot be read")
        }
    }
}
