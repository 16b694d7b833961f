// The skiff-runc command line, runc-compatible:
//
//   skiff-runc [--root DIR] [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ARGS
//
// Output is written with write(2), never buffered stdio: buffered bytes would be duplicated into
// the forked container process.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

public enum SkiffRuncCLI {
    public static let version = "0.1.0"

    static let usage = """
    usage: skiff-runc [global options] command [command options] [arguments...]

    commands:
      create <id>       create a container (-b/--bundle DIR, --pid-file F, --console-socket S, --preserve-fds N)
      start <id>        run the user program of a created container
      state <id>        print the OCI state JSON
      kill <id> [SIG]   send a signal (default SIGTERM) to the init; -a/--all: to every process
      delete <id>       delete a stopped container; -f/--force: kill it first
      run <id>          create + start; waits unless -d/--detach; exit status is the container's
      exec <id> CMD...  run a process in the container (-p/--process F, -d, -t, --cwd, -e, -u, --cap,
                        --console-socket, --pid-file, --no-new-privs, --preserve-fds)
      update <id>       change cgroup limits (-r/--resources F, --memory, --cpu-quota, --pids-limit, ...)
      ps <id>           list the container's pids (--format json)
      list              list containers (--format table|json, -q)
      features          print the features JSON
      spec              write a default config.json (-b/--bundle DIR, --args "cmd ...")

    global options:
      --root DIR          state directory (default /run/skiff-runc)
      --log FILE          also write errors to FILE
      --log-format F      text (default) or json

    """

    /// Runs one command line (argv[0] included); returns the exit status.
    public static func main(_ argv: [String]) -> Int32 {
        Trace.mark("main")
        // Start from a clean signal mask whatever our caller blocked: the container's program
        // inherits it, and `run`/`exec` forward signals.
        _ = clx_unblock_all_signals()
        do throws(LauncherError) {
            return try run(Array(argv.dropFirst()))
        } catch {
            Log.error(error.description)
            return 1
        }
    }

    static func out(_ s: String) {
        let bytes = Array(s.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { p in Sys.retrying { write(1, p.baseAddress! + off, p.count - off) } }
            if n <= 0 { return }
            off += n
        }
    }

    static func run(_ args: [String]) throws(LauncherError) -> Int32 {
        var p = ArgParser(args)
        var root = "/run/skiff-runc"
        var logFile: String?
        var logFormat = Log.Format.text
        // Global options come before the command.
        while let a = p.peek, a.hasPrefix("-") {
            let (name, inline) = ArgParser.split(a)
            p.advance()
            switch name {
            case "root": root = try p.value(name, inline)
            case "log": logFile = try p.value(name, inline)
            case "log-format":
                let v = try p.value(name, inline)
                guard let f = Log.Format(rawValue: v) else { throw usageError("unknown --log-format \"\(v)\"") }
                logFormat = f
            case "debug": break
            case "systemd-cgroup":
                if inline == nil || inline == "true" {
                    throw LauncherError(.unsupported, step: "cli", detail: "--systemd-cgroup is not supported; use cgroupfs paths")
                }
            case "rootless":
                let v = try p.value(name, inline)
                if v == "true" { throw LauncherError(.unsupported, step: "cli", detail: "rootless mode is not supported") }
            case "criu": _ = try p.value(name, inline)
            case "v", "version":
                out("skiff-runc version \(version)\nspec: \(SkiffOCI.ociVersion)\n")
                return 0
            case "h", "help":
                out(usage)
                return 0
            default: throw usageError("unknown global option --\(name)")
            }
        }
        Log.configure(file: logFile, format: logFormat)
        guard let command = p.next() else {
            out(usage)
            return 1
        }
        let launcher = Launcher(root: root)
        switch command {
        case "create":
            var o = CreateOptions()
            let pos = try p.parse(["bundle", "b", "pid-file", "console-socket", "preserve-fds"],
                                  flags: ["no-pivot", "no-new-keyring"]) { name, value throws(LauncherError) in
                try applyCreate(&o, name, value)
            }
            try launcher.create(id: try one(pos, "create"), options: o)
            return 0
        case "run":
            var o = CreateOptions()
            var detach = false
            let pos = try p.parse(["bundle", "b", "pid-file", "console-socket", "preserve-fds"],
                                  flags: ["detach", "d", "no-pivot", "no-new-keyring", "keep"]) { name, value throws(LauncherError) in
                if name == "detach" || name == "d" { detach = true } else { try applyCreate(&o, name, value) }
            }
            return try launcher.run(id: try one(pos, "run"), options: o, detach: detach)
        case "start":
            let pos = try p.parse([], flags: []) { _, _ throws(LauncherError) in }
            try launcher.start(id: try one(pos, "start"))
            return 0
        case "state":
            let pos = try p.parse([], flags: []) { _, _ throws(LauncherError) in }
            out(try launcher.state(id: try one(pos, "state")).json.prettyText)
            return 0
        case "kill":
            var all = false
            let pos = try p.parse([], flags: ["all", "a"]) { _, _ throws(LauncherError) in all = true }
            guard pos.count == 1 || pos.count == 2 else { throw usageError("kill needs <id> [signal]") }
            let sig = try Signals.parse(pos.count == 2 ? pos[1] : "TERM")
            try launcher.kill(id: pos[0], signal: sig, all: all)
            return 0
        case "delete":
            var force = false
            let pos = try p.parse([], flags: ["force", "f"]) { _, _ throws(LauncherError) in force = true }
            guard !pos.isEmpty else { throw usageError("delete needs <id>") }
            for id in pos { try launcher.delete(id: id, force: force) }
            return 0
        case "exec":
            return try execCommand(&p, launcher)
        case "list", "ls":
            var json = false
            var quiet = false
            _ = try p.parse(["format", "f"], flags: ["quiet", "q"]) { name, value throws(LauncherError) in
                if name == "quiet" || name == "q" { quiet = true } else { json = value == "json" }
            }
            list(launcher, json: json, quiet: quiet)
            return 0
        case "ps":
            var json = false
            let pos = try p.parse(["format", "f"], flags: []) { _, v throws(LauncherError) in json = v == "json" }
            let record = try launcher.store.load(try one(pos, "ps"))
            let pids = try record.cgroupPath.map { (c) throws(LauncherError) in try Cgroup(path: c).processes() } ?? []
            if json {
                out(JSON.array(pids.map { .int(Int64($0)) }).compactText + "\n")
            } else {
                out("PID\n" + pids.map { "\($0)\n" }.joined())
            }
            return 0
        case "update":
            return try updateCommand(&p, launcher)
        case "features":
            _ = try p.parse([], flags: []) { _, _ throws(LauncherError) in }
            out(features().prettyText)
            return 0
        case "spec":
            var bundle = "."
            var args = ["sh"]
            _ = try p.parse(["bundle", "b", "args"], flags: []) { name, value throws(LauncherError) in
                if name == "args" { args = value!.split(separator: " ").map(String.init) } else { bundle = value! }
            }
            let path = Sys.absolute(bundle) + "/config.json"
            if Sys.exists(path) { throw LauncherError(.exists, step: "spec", path: path, detail: "file exists") }
            // Like `runc spec`: a cgroup namespace on cgroup v2 hosts.
            let spec = Spec.defaultLinux(args: args, cgroupNamespace: CgroupVersion.detect() == .v2)
            try Sys.writeAtomic(path, spec.json.prettyText, mode: 0o644, step: "spec")
            return 0
        case "help":
            out(usage)
            return 0
        case "version":
            out("skiff-runc version \(version)\nspec: \(SkiffOCI.ociVersion)\n")
            return 0
        default:
            throw usageError("unknown command \"\(command)\"")
        }
    }

    static func usageError(_ s: String) -> LauncherError { LauncherError(.invalidConfig, step: "usage", detail: s) }

    static func one(_ pos: [String], _ cmd: String) throws(LauncherError) -> String {
        guard pos.count == 1 else { throw usageError("\(cmd) needs exactly one container id") }
        return pos[0]
    }

    static func int(_ v: String?, _ name: String) throws(LauncherError) -> Int {
        guard let v, let n = Int(v), n >= 0 else { throw usageError("--\(name) needs a non-negative integer") }
        return n
    }

    static func applyCreate(_ o: inout CreateOptions, _ name: String, _ value: String?) throws(LauncherError) {
        switch name {
        case "bundle", "b": o.bundle = value!
        case "pid-file": o.pidFile = value
        case "console-socket": o.consoleSocket = value
        case "preserve-fds": o.preserveFDs = try int(value, name)
        case "no-pivot": throw LauncherError(.unsupported, step: "cli", detail: "--no-pivot is not supported")
        default: break  // --no-new-keyring: skiff-runc never creates session keyrings
        }
    }

    static func execCommand(_ p: inout ArgParser, _ launcher: Launcher) throws(LauncherError) -> Int32 {
        var o = ExecOptions()
        var processFile: String?
        let valueOpts = ["process", "p", "console-socket", "cwd", "env", "e", "user", "u", "additional-gids", "g",
                         "cap", "c", "pid-file", "preserve-fds", "process-label", "apparmor"]
        let pos = try p.parse(valueOpts, flags: ["tty", "t", "detach", "d", "no-new-privs", "ignore-paused"],
                              stopAtFirstPositional: true) { name, value throws(LauncherError) in
            switch name {
            case "process", "p": processFile = value
            case "console-socket": o.consoleSocket = value
            case "cwd": o.cwd = value
            case "env", "e": o.env.append(value!)
            case "user", "u":
                let parts = value!.split(separator: ":")
                guard let u = UInt32(parts[0]) else { throw usageError("--user needs UID[:GID]") }
                o.uid = u
                if parts.count > 1 { guard let g = UInt32(parts[1]) else { throw usageError("--user needs UID[:GID]") }; o.gid = g }
            case "additional-gids", "g":
                guard let g = UInt32(value!) else { throw usageError("--additional-gids needs a number") }
                o.additionalGids.append(g)
            case "cap", "c": o.capabilities.append(value!)
            case "pid-file": o.pidFile = value
            case "preserve-fds": o.preserveFDs = try int(value, name)
            case "process-label", "apparmor":
                throw LauncherError(.unsupported, step: "exec", detail: "--\(name) is not supported (no LSM support)")
            case "tty", "t": o.tty = true
            case "detach", "d": o.detach = true
            case "no-new-privs": o.noNewPrivileges = true
            default: break
            }
        }
        guard let id = pos.first else { throw usageError("exec needs a container id") }
        var cmd = Array(pos.dropFirst())
        if cmd.first == "--" { cmd.removeFirst() }
        if let f = processFile {
            let text = try Sys.readString(f, step: "exec --process")
            do throws(JSONError) {
                o.process = try Process(json: try JSON(parsing: text), path: "process")
            } catch {
                throw LauncherError(.invalidConfig, step: "exec --process", path: f, detail: error.description)
            }
        } else {
            o.args = cmd
        }
        return try launcher.exec(id: id, options: o)
    }

    static func updateCommand(_ p: inout ArgParser, _ launcher: Launcher) throws(LauncherError) -> Int32 {
        var r = Resources()
        var file: String?
        func i64(_ v: String?, _ n: String) throws(LauncherError) -> Int64 {
            guard let v, let x = Int64(v) else { throw usageError("--\(n) needs an integer") }
            return x
        }
        let pos = try p.parse(["resources", "r", "memory", "memory-swap", "memory-reservation", "cpu-shares", "cpu-quota",
                               "cpu-period", "cpuset-cpus", "cpuset-mems", "pids-limit"], flags: []) { n, v throws(LauncherError) in
            switch n {
            case "resources", "r": file = v
            case "memory": r.memory = r.memory ?? MemoryResources(); r.memory!.limit = try i64(v, n)
            case "memory-swap": r.memory = r.memory ?? MemoryResources(); r.memory!.swap = try i64(v, n)
            case "memory-reservation": r.memory = r.memory ?? MemoryResources(); r.memory!.reservation = try i64(v, n)
            case "cpu-shares": r.cpu = r.cpu ?? CPUResources(); r.cpu!.shares = UInt64(try int(v, n))
            case "cpu-quota": r.cpu = r.cpu ?? CPUResources(); r.cpu!.quota = try i64(v, n)
            case "cpu-period": r.cpu = r.cpu ?? CPUResources(); r.cpu!.period = UInt64(try int(v, n))
            case "cpuset-cpus": r.cpu = r.cpu ?? CPUResources(); r.cpu!.cpus = v
            case "cpuset-mems": r.cpu = r.cpu ?? CPUResources(); r.cpu!.mems = v
            case "pids-limit": r.pids = PidsResources(limit: try i64(v, n))
            default: break
            }
        }
        let id = try one(pos, "update")
        if let f = file {
            var text = ""
            if f == "-" {
                text = String(decoding: try Sys.readAll(fd: 0, step: "update --resources"), as: UTF8.self)
            } else {
                text = try Sys.readString(f, step: "update --resources")
            }
            do throws(JSONError) {
                r = try Resources(json: try JSON(parsing: text), path: "resources")
            } catch {
                throw LauncherError(.invalidConfig, step: "update --resources", path: f, detail: error.description)
            }
        }
        let record = try launcher.store.load(id)
        guard let cgp = record.cgroupPath else { throw LauncherError(.notFound, step: "update", detail: "container has no cgroup") }
        try Cgroup(path: cgp).update(r)
        return 0
    }

    static func list(_ launcher: Launcher, json: Bool, quiet: Bool) {
        let states = launcher.list()
        if quiet {
            out(states.map { $0.id + "\n" }.joined())
        } else if json {
            out(JSON.array(states.map(\.json)).prettyText)
        } else {
            var rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED"]]
            for s in states { rows.append([s.id, String(s.pid), s.status.rawValue, s.bundle, s.created ?? ""]) }
            var widths = [Int](repeating: 0, count: 5)
            for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
            for r in rows {
                var line = ""
                for (i, c) in r.enumerated() {
                    line += c
                    if i < r.count - 1 { line += String(repeating: " ", count: widths[i] - c.count + 3) }
                }
                out(line + "\n")
            }
        }
    }

    /// The features document (features.md): what this build applies.
    public static func features() -> JSON {
        let mountOptions = (Array(MountOptions.setFlags.keys) + Array(MountOptions.clearFlags.keys)
            + Array(MountOptions.propagationFlags.keys) + ["defaults"]).sorted()
        var linux = JSONObject()
        linux["namespaces"] = JSON(["cgroup", "ipc", "mount", "network", "pid", "uts"])
        linux["capabilities"] = JSON(Array(Caps.names.prefix(Caps.lastCap + 1)))
        linux["cgroup"] = .object(["v1": .bool(true), "v2": .bool(true), "systemd": .bool(false),
                                   "systemdUser": .bool(false)])
        linux["seccomp"] = .object([
            "enabled": .bool(true),
            "actions": JSON(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                             "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"]),
            "operators": JSON(["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                               "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]),
        ])
        linux["apparmor"] = .object(["enabled": .bool(false)])
        linux["selinux"] = .object(["enabled": .bool(false)])
        var o = JSONObject()
        o["ociVersionMin"] = .string("1.0.0")
        o["ociVersionMax"] = .string(SkiffOCI.ociVersion)
        o["hooks"] = JSON(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])
        o["mountOptions"] = JSON(mountOptions)
        o["linux"] = .object(linux)
        o["annotations"] = .object(["org.skiff.runc.version": .string(version),
                                    "org.skiff.runc.cgroup": .string(CgroupVersion.detect().rawValue)])
        return .object(o)
    }
}

/// runc-style option parsing: `--name value`, `--name=value`, `-n value`, flags without values.
struct ArgParser {
    var args: [String]
    var i = 0

    init(_ args: [String]) { self.args = args }

    var peek: String? { i < args.count ? args[i] : nil }
    mutating func advance() { i += 1 }
    mutating func next() -> String? {
        defer { i += 1 }
        return peek
    }

    static func split(_ a: String) -> (String, String?) {
        var s = Substring(a)
        while s.first == "-" { s = s.dropFirst() }
        if let eq = s.firstIndex(of: "=") { return (String(s[..<eq]), String(s[s.index(after: eq)...])) }
        return (String(s), nil)
    }

    mutating func value(_ name: String, _ inline: String?) throws(LauncherError) -> String {
        if let inline { return inline }
        guard let v = next() else { throw SkiffRuncCLI.usageError("--\(name) needs a value") }
        return v
    }

    /// Parses the rest: options (by name) are handed to `apply`; positionals are returned. With
    /// `stopAtFirstPositional` everything after the first positional is positional (exec's command).
    mutating func parse(_ valueOptions: [String], flags: [String], stopAtFirstPositional: Bool = false,
                        apply: (String, String?) throws(LauncherError) -> Void) throws(LauncherError) -> [String] {
        var pos: [String] = []
        while let a = next() {
            if a == "--" {
                if stopAtFirstPositional && !pos.isEmpty { pos.append(a) }
                while let r = next() { pos.append(r) }
                break
            }
            if stopAtFirstPositional && !pos.isEmpty {
                pos.append(a)
                continue
            }
            if a.hasPrefix("-") && a.count > 1 {
                let (name, inline) = ArgParser.split(a)
                if valueOptions.contains(name) {
                    try apply(name, try value(name, inline))
                } else if flags.contains(name) {
                    if let inline, inline == "false" { continue }
                    try apply(name, nil)
                } else {
                    throw SkiffRuncCLI.usageError("unknown option \(a)")
                }
            } else {
                pos.append(a)
            }
        }
        return pos
    }
}

enum Signals {
    static let names: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
        "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18,
        "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27,
        "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
    ]

    /// `TERM`, `SIGTERM`, `15`, `RTMIN+3`.
    static func parse(_ s: String) throws(LauncherError) -> Int32 {
        if let n = Int32(s), n > 0, n < 65 { return n }
        var u = s.uppercased()
        if u.hasPrefix("SIG") { u = String(u.dropFirst(3)) }
        if let n = names[u] { return n }
        if u.hasPrefix("RTMIN") {
            let off = u == "RTMIN" ? 0 : Int32(u.dropFirst(6)) ?? -1
            if u.count == 5 || (u.dropFirst(5).first == "+" && off >= 0), 34 + off <= 64 { return 34 + off }
        }
        if u.hasPrefix("RTMAX") {
            let off = u == "RTMAX" ? 0 : Int32(u.dropFirst(6)) ?? -1
            if u.count == 5 || (u.dropFirst(5).first == "-" && off >= 0), 64 - off >= 34 { return 64 - off }
        }
        throw LauncherError(.invalidConfig, step: "kill", detail: "unknown signal \"\(s)\"")
    }
}
