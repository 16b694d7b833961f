// Finding and exec'ing the user's program; running hooks.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

enum Exec {
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// Resolves a program name with the process's own PATH, like execvp but checked up front so
    /// that a typo fails `create`, not `start`.
    static func lookPath(_ name: String, env: [String]) throws(LauncherError) -> String {
        if name.isEmpty { throw .config("process.args[0] is empty") }
        if name.contains("/") {
            if isExecutableFile(name) { return name }
            let e: Int32 = Sys.exists(name) ? EACCES : ENOENT
            throw LauncherError(.system, step: "exec", syscall: "stat", path: name, errno: e)
        }
        let pathVar = env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? defaultPath
        for dir in pathVar.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            if isExecutableFile(candidate) { return candidate }
        }
        throw LauncherError(.invalidConfig, step: "exec", detail: "\"\(name)\": executable file not found in $PATH")
    }

    /// execve, or report why not: to the parent when it still listens, else on stderr.
    static func execve(_ path: String, _ args: [String], _ env: [String], report: Int32) -> Never {
        let argv = Sys.cStringArray(args)
        let envp = Sys.cStringArray(env)
        _ = clx_reset_reserved_signals()  // the container starts with every disposition at its default
        Glibc.execve(path, argv, envp)
        let e = errno
        let err = LauncherError.sys("exec", "execve", path, errno: e)
        if report >= 0 {
            SyncChannel.send(report, "E" + err.description)
        } else {
            let line = "skiff-runc: " + err.description + "\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
        _exit(e == ENOENT ? 127 : 126)
    }

    /// Decodes a wait status into an exit code the way shells do (128 + signal).
    static func exitCode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        if sig == 0 { return (status >> 8) & 0xff }
        return 128 + sig
    }
}

enum HookRunner {
    /// Runs one hook with the container state on stdin; fails on non-zero exit or timeout.
    /// Output (stdout and stderr, first 4 KiB) goes into the error message.
    static func run(_ hook: Hook, kind: String, state: State) throws(LauncherError) {
        let step = "\(kind) hook \(hook.path)"
        var inPipe: [Int32] = [0, 0]
        var outPipe: [Int32] = [0, 0]
        if clx_pipe2(&inPipe, O_CLOEXEC) != 0 { throw .sys(step, "pipe2") }
        if clx_pipe2(&outPipe, O_CLOEXEC) != 0 { close(inPipe[0]); close(inPipe[1]); throw .sys(step, "pipe2") }
        let argv = Sys.cStringArray(hook.args.isEmpty ? [hook.path] : hook.args)
        let envp = Sys.cStringArray(hook.env)
        let pid = fork()
        if pid < 0 { throw .sys(step, "fork") }
        if pid == 0 {
            _ = clx_reset_signal_handlers()
            _ = clx_unblock_all_signals()
            dup2(inPipe[0], 0)
            dup2(outPipe[1], 1)
            dup2(outPipe[1], 2)
            _ = clx_reset_reserved_signals()
            Glibc.execve(hook.path, argv, envp)
            _exit(127)
        }
        close(inPipe[0])
        close(outPipe[1])
        for p in argv { free(p) }
        for p in envp { free(p) }
        // The hook may not read its stdin: never block on it (SIGPIPE is avoided with MSG-less
        // write on a pipe by ignoring EPIPE; state is small enough for the pipe buffer).
        let text = Array(state.json.compactText.utf8)
        signal(SIGPIPE, SIG_IGN)
        _ = text.withUnsafeBytes { p in write(inPipe[1], p.baseAddress, p.count) }
        close(inPipe[1])

        var output: [UInt8] = []
        let deadline = Sys.monotonicNanos() + UInt64(hook.timeout ?? 60) * 1_000_000_000
        var buf = [UInt8](repeating: 0, count: 4096)
        var timedOut = false
        outer: while true {
            let now = Sys.monotonicNanos()
            if now >= deadline { timedOut = true; break }
            var pfd = pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0)
            let remaining = Int32(min((deadline - now) / 1_000_000 + 1, 1000))
            let r = poll(&pfd, 1, remaining)
            if r < 0 && errno != EINTR { break }
            if r > 0 {
                let n = buf.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress, $0.count) }
                if n <= 0 { break outer }
                if output.count < 4096 { output += buf[0..<min(n, 4096 - output.count)] }
            }
        }
        close(outPipe[0])
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let out = String(decoding: output, as: UTF8.self).trimmed()
        if timedOut {
            throw LauncherError(.hook, step: step, detail: "timed out after \(hook.timeout ?? 60)s")
        }
        if status != 0 {
            let code = Exec.exitCode(status)
            throw LauncherError(.hook, step: step, detail: "exit status \(code)" + (out.isEmpty ? "" : ": \(out)"))
        }
    }
}
