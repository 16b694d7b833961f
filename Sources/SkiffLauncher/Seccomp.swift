// linux.seccomp -> a libseccomp filter, loaded in the container process before exec.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

/// A seccomp profile checked and converted in the parent, loaded in the child.
struct SeccompProgram {
    var defaultAction: UInt32
    var arches: [UInt32]
    var flags: UInt32
    var rules: [(name: String, action: UInt32, args: [clx_seccomp_arg])]

    init(_ s: Seccomp) throws(LauncherError) {
        func action(_ name: String, _ errnoRet: UInt32?) throws(LauncherError) -> UInt32 {
            if name == "SCMP_ACT_NOTIFY" { throw .unsupported("seccomp action SCMP_ACT_NOTIFY (user notification) is not supported") }
            let a = clx_seccomp_action(name, errnoRet ?? UInt32(EPERM))
            if a == 0xFFFF_FFFF { throw .config("unknown seccomp action \"\(name)\"") }
            return a
        }
        if s.listenerPath != nil { throw .unsupported("seccomp listenerPath is not supported") }
        defaultAction = try action(s.defaultAction, s.defaultErrnoRet)
        arches = []
        for a in s.architectures {
            let v = clx_seccomp_arch(a)
            if v == 0 { throw .config("unknown seccomp architecture \"\(a)\"") }
            arches.append(v)
        }
        flags = 0
        for f in s.flags {
            switch f {
            case "SECCOMP_FILTER_FLAG_LOG": flags |= 1
            case "SECCOMP_FILTER_FLAG_SPEC_ALLOW": flags |= 2
            case "SECCOMP_FILTER_FLAG_TSYNC": break  // single-threaded: nothing to sync
            default: throw .unsupported("seccomp flag \(f) is not supported")
            }
        }
        rules = []
        for (i, sc) in s.syscalls.enumerated() {
            let act = try action(sc.action, sc.errnoRet)
            var args: [clx_seccomp_arg] = []
            for a in sc.args {
                let op = clx_seccomp_op(a.op)
                if op < 0 { throw .config("linux.seccomp.syscalls[\(i)]: unknown operator \"\(a.op)\"") }
                if a.index > 5 { throw .config("linux.seccomp.syscalls[\(i)]: argument index \(a.index) is above 5") }
                args.append(clx_seccomp_arg(index: a.index, op: UInt32(op), value: a.value, value_two: a.valueTwo))
            }
            for n in sc.names { rules.append((n, act, args)) }
        }
    }

    /// Loads the filter into this process. Needs no_new_privs or CAP_SYS_ADMIN.
    func load() throws(LauncherError) {
        var failed: Int32 = -1
        // Keep the C strings and arg arrays alive for the call.
        let cNames = rules.map { strdup($0.name) }
        defer { cNames.forEach { free($0) } }
        var argStorage: [UnsafeMutablePointer<clx_seccomp_arg>?] = []
        defer { argStorage.forEach { $0?.deallocate() } }
        var cRules: [clx_seccomp_rule] = []
        for (i, r) in rules.enumerated() {
            var p: UnsafeMutablePointer<clx_seccomp_arg>? = nil
            if !r.args.isEmpty {
                p = .allocate(capacity: r.args.count)
                p!.initialize(from: r.args, count: r.args.count)
            }
            argStorage.append(p)
            cRules.append(clx_seccomp_rule(name: cNames[i], action: r.action, arg_count: Int32(r.args.count),
                                           args: UnsafePointer(p)))
        }
        let rc = arches.withUnsafeBufferPointer { ap in
            cRules.withUnsafeBufferPointer { rp in
                clx_seccomp_load(defaultAction, ap.baseAddress, Int32(ap.count), rp.baseAddress, Int32(rp.count), flags, &failed)
            }
        }
        if rc != 0 {
            let which = failed >= 0 ? "rule for \(rules[Int(failed)].name)" : "filter"
            throw LauncherError(.system, step: "seccomp", syscall: "seccomp_load", path: which, errno: -rc)
        }
    }
}
