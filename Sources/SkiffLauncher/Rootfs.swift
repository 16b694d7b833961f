// The container's filesystem: mount options, the mounts list, /dev, pivot_root, masked and
// read-only paths.
//
// Paths inside the rootfs are resolved through file descriptors (openat2 with RESOLVE_IN_ROOT) and
// mounts target `/proc/self/fd/N`, so a symlink planted in an image cannot redirect a mount onto
// the host. Sources of bind mounts are host paths, resolved normally.

import CLinux
import SkiffOCI
#if canImport(Glibc)
import Glibc
#endif

/// mount(2) flags (linux/mount.h values).
enum MS {
    static let rdonly: UInt = 1, nosuid: UInt = 2, nodev: UInt = 4, noexec: UInt = 8, synchronous: UInt = 16
    static let remount: UInt = 32, mandlock: UInt = 64, dirsync: UInt = 128, nosymfollow: UInt = 256
    static let noatime: UInt = 1024, nodiratime: UInt = 2048, bind: UInt = 4096, move: UInt = 8192, rec: UInt = 16384
    static let silent: UInt = 32768, unbindable: UInt = 1 << 17, `private`: UInt = 1 << 18, slave: UInt = 1 << 19
    static let shared: UInt = 1 << 20, relatime: UInt = 1 << 21, iversion: UInt = 1 << 23
    static let strictatime: UInt = 1 << 24, lazytime: UInt = 1 << 25
    static let propagation: UInt = unbindable | `private` | slave | shared
}

/// Parsed `options` of one mount.
struct MountOptions: Equatable {
    var flags: UInt = 0
    var propagation: UInt = 0
    var data: [String] = []

    static let setFlags: [String: UInt] = [
        "ro": MS.rdonly, "nosuid": MS.nosuid, "nodev": MS.nodev, "noexec": MS.noexec, "sync": MS.synchronous,
        "dirsync": MS.dirsync, "remount": MS.remount, "mand": MS.mandlock, "noatime": MS.noatime,
        "nodiratime": MS.nodiratime, "bind": MS.bind, "rbind": MS.bind | MS.rec, "relatime": MS.relatime,
        "strictatime": MS.strictatime, "silent": MS.silent, "iversion": MS.iversion, "lazytime": MS.lazytime,
        "nosymfollow": MS.nosymfollow,
    ]
    static let clearFlags: [String: UInt] = [
        "rw": MS.rdonly, "suid": MS.nosuid, "dev": MS.nodev, "exec": MS.noexec, "async": MS.synchronous,
        "nomand": MS.mandlock, "atime": MS.noatime, "diratime": MS.nodiratime, "norelatime": MS.relatime,
        "nostrictatime": MS.strictatime, "loud": MS.silent, "noiversion": MS.iversion, "nolazytime": MS.lazytime,
        "symfollow": MS.nosymfollow,
    ]
    static let propagationFlags: [String: UInt] = [
        "private": MS.private, "rprivate": MS.private | MS.rec, "shared": MS.shared, "rshared": MS.shared | MS.rec,
        "slave": MS.slave, "rslave": MS.slave | MS.rec, "unbindable": MS.unbindable,
        "runbindable": MS.unbindable | MS.rec,
    ]

    init(_ options: [String], destination: String) throws(LauncherError) {
        for o in options {
            if o == "defaults" { continue }
            if let f = MountOptions.setFlags[o] { flags |= f; continue }
            if let f = MountOptions.clearFlags[o] { flags &= ~f; continue }
            if let f = MountOptions.propagationFlags[o] { propagation |= f; continue }
            if o == "tmpcopyup" || o == "idmap" || o == "ridmap" || (o.hasPrefix("r") && o.count > 2
                && (MountOptions.setFlags[String(o.dropFirst())] != nil || MountOptions.clearFlags[String(o.dropFirst())] != nil)) {
                throw LauncherError(.unsupported, step: "mount \(destination)", detail: "mount option \"\(o)\" is not supported")
            }
            data.append(o)
        }
    }

    var isBind: Bool { flags & MS.bind != 0 }
    var recursive: Bool { flags & MS.rec != 0 }
    var dataString: String { data.joined(separator: ",") }
}

/// One mount ready to perform (computed in the parent, performed in the container process).
struct PlannedMount {
    enum Kind { case regular, bind, cgroupV1, cgroupV2 }
    var destination: String
    var type: String
    var source: String
    var options: MountOptions
    var kind: Kind
    /// Bind mounts: whether the source is a directory (the target is created to match).
    var sourceIsDirectory = true
}

/// What the /sys/fs/cgroup mount shows: on v1, one bind per host hierarchy.
struct CgroupMountSource {
    /// (name under the mount, host directory of the container's group in that hierarchy).
    var v1: [(name: String, hostDir: String)] = []
    /// Extra names pointing at a co-mounted hierarchy (`cpu` -> `cpu,cpuacct`).
    var v1Links: [(name: String, target: String)] = []
    /// v2 host directory, used when there is no cgroup namespace.
    var v2HostDir: String?
}

enum Rootfs {
    /// Turns the spec's mounts into a plan: option parsing, bind source resolution, errors early.
    static func plan(_ mounts: [Mount], bundle: String) throws(LauncherError) -> [PlannedMount] {
        var out: [PlannedMount] = []
        for m in mounts {
            guard m.destination.hasPrefix("/") else {
                throw LauncherError(.invalidConfig, step: "mount \(m.destination)", detail: "destination must be absolute")
            }
            if !m.uidMappings.isEmpty || !m.gidMappings.isEmpty {
                throw LauncherError(.unsupported, step: "mount \(m.destination)", detail: "id-mapped mounts are not supported")
            }
            let opts = try MountOptions(m.options, destination: m.destination)
            let type = m.type ?? (opts.isBind ? "bind" : "")
            var p = PlannedMount(destination: Sys.cleanPath(m.destination), type: type, source: m.source ?? type,
                                 options: opts, kind: .regular)
            if type == "bind" || opts.isBind {
                p.kind = .bind
                p.options.flags |= MS.bind
                guard let src = m.source, !src.isEmpty else {
                    throw LauncherError(.invalidConfig, step: "mount \(m.destination)", detail: "bind mount without a source")
                }
                p.source = src.hasPrefix("/") ? src : Sys.cleanPath(bundle + "/" + src)
                var st = stat()
                if stat(p.source, &st) != 0 { throw .sys("mount \(m.destination)", "stat", p.source) }
                p.sourceIsDirectory = (st.st_mode & S_IFMT) == S_IFDIR
            } else if type == "cgroup" || type == "cgroup2" {
                p.kind = CgroupVersion.detect() == .v2 ? .cgroupV2 : .cgroupV1
            } else if type.isEmpty {
                throw LauncherError(.invalidConfig, step: "mount \(m.destination)", detail: "mount without a type")
            }
            out.append(p)
        }
        return out
    }

    /// Host directories behind the container's /sys/fs/cgroup (computed in the parent, which still
    /// sees the host's view of /proc/self/cgroup).
    static func cgroupSource(for cg: Cgroup?) -> CgroupMountSource {
        var src = CgroupMountSource()
        if CgroupVersion.detect() == .v2 {
            src.v2HostDir = "/sys/fs/cgroup" + (cg?.path ?? ownCgroupPath(hierarchy: "") ?? "")
            return src
        }
        let own = Sys.readStringIfPresent("/proc/self/cgroup") ?? ""
        return conventionalV1Source(for: cg, ownCgroups: own) ?? mountinfoV1Source(for: cg, ownCgroups: own)
    }

    /// Every cgroup v1 hierarchy mounted under /sys/fs/cgroup, from mountinfo.
    static func mountinfoV1Source(for cg: Cgroup?, ownCgroups own: String) -> CgroupMountSource {
        var src = CgroupMountSource()
        for line in (Sys.readStringIfPresent("/proc/self/mountinfo") ?? "").split(separator: "\n") {
            // Cheap filter first: hosts can have hundreds of (overlay) mounts.
            guard line.contains(" - cgroup ") else { continue }
            let f = line.split(separator: " ")
            guard let dash = f.firstIndex(of: "-"), dash + 3 < f.count else { continue }
            let fstype = f[dash + 1]
            // On a hybrid host only the v1 hierarchies are shown (as runc does).
            guard fstype == "cgroup", f.count > 4 else { continue }
            let mountPoint = String(f[4])
            guard mountPoint.hasPrefix("/sys/fs/cgroup/") else { continue }
            let name = String(mountPoint.dropFirst("/sys/fs/cgroup/".count))
            guard !name.isEmpty, !name.contains("/") else { continue }
            // The controllers of this hierarchy, as /proc/self/cgroup names them.
            var key = ""
            if fstype == "cgroup2" {
                key = ""
            } else {
                let superOpts = f[dash + 3].split(separator: ",").filter { $0 != "rw" && $0 != "ro" }
                let ctrls = superOpts.filter { !$0.contains("=") && $0 != "relatime" && $0 != "noexec" && $0 != "nosuid" && $0 != "nodev" && $0 != "xattr" && $0 != "clone_children" && $0 != "noprefix" && $0 != "cpuset_v2_mode" }
                let named = superOpts.first { $0.hasPrefix("name=") }
                key = named.map(String.init) ?? ctrls.joined(separator: ",")
            }
            // Our group in this hierarchy: the managed one, or where this process already is.
            var rel: String? = nil
            if let cg, fstype == "cgroup", key.split(separator: ",").contains(where: { cg.directory(for: String($0)) != nil }) {
                rel = cg.path
            } else {
                for l in own.split(separator: "\n") {
                    let parts = l.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                    if parts.count == 3, String(parts[1]) == key { rel = String(parts[2]) }
                }
            }
            src.v1.append((name, mountPoint + (rel == "/" ? "" : (rel ?? ""))))
            if name.contains(",") {
                for part in name.split(separator: ",") { src.v1Links.append((String(part), name)) }
            }
        }
        return src
    }

    /// The v1 hierarchies where every cgroup v1 host mounts them: /sys/fs/cgroup/<controllers> (named ones
    /// by their name), checked with statfs. nil when any hierarchy of /proc/self/cgroup is not there; then
    /// mountinfo decides. Why not always mountinfo: the kernel generates it whole on every read, and on a
    /// node with a thousand overlay rootfs it took milliseconds per container start (overlay's long options
    /// are escaped byte by byte), growing with every container.
    static func conventionalV1Source(for cg: Cgroup?, ownCgroups: String) -> CgroupMountSource? {
        var src = CgroupMountSource()
        for line in ownCgroups.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let key = String(parts[1])
            // "0::/x" is the unified hierarchy: a hybrid host shows only its v1 hierarchies, as runc does.
            if key.isEmpty { continue }
            let name = key.hasPrefix("name=") ? String(key.dropFirst("name=".count)) : key
            guard !name.isEmpty, !name.contains("/") else { return nil }
            let mountPoint = "/sys/fs/cgroup/" + name
            var st = stat()
            guard lstat(mountPoint, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
                  clx_statfs_type(mountPoint) == 0x0027_e0eb  // CGROUP_SUPER_MAGIC
            else { return nil }
            var rel = String(parts[2])
            if let cg, !key.hasPrefix("name="), key.split(separator: ",").contains(where: { cg.directory(for: String($0)) != nil }) {
                rel = cg.path
            }
            src.v1.append((name, mountPoint + (rel == "/" ? "" : rel)))
            if name.contains(",") {
                for part in name.split(separator: ",") { src.v1Links.append((String(part), name)) }
            }
        }
        return src.v1.isEmpty ? nil : src
    }

    private static func ownCgroupPath(hierarchy: String) -> String? {
        for l in (Sys.readStringIfPresent("/proc/self/cgroup") ?? "").split(separator: "\n") {
            let parts = l.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[1] == hierarchy { return parts[2] == "/" ? "" : String(parts[2]) }
        }
        return nil
    }

    // MARK: - In the container process

    /// Opens `path` inside the root `rootFD` (symlinks resolved as if rootFD were `/`), creating it
    /// (a directory, or an empty file when `file`) if missing. Returns an O_PATH descriptor.
    static func openInRoot(_ rootFD: Int32, _ path: String, create: Bool, file: Bool = false, step: String) throws(LauncherError) -> Int32 {
        let resolve = UInt64(CLX_RESOLVE_IN_ROOT | CLX_RESOLVE_NO_MAGICLINKS)
        let flags = UInt64(O_PATH | O_CLOEXEC)
        let fd = Sys.retrying { clx_openat2(rootFD, path, flags, 0, resolve) }
        if fd >= 0 { return fd }
        guard errno == ENOENT, create else { throw .sys(step, "openat2", path) }
        // Usual case: only the last component is missing (a mount point in a fresh tmpfs).
        if let slash = path.lastIndex(of: "/"), slash != path.index(before: path.endIndex) {
            let parent = slash == path.startIndex ? "/" : String(path[..<slash])
            let name = String(path[path.index(after: slash)...])
            let pfd = Sys.retrying { clx_openat2(rootFD, parent, flags | UInt64(O_DIRECTORY), 0, resolve) }
            if pfd >= 0 {
                defer { close(pfd) }
                var made = false
                if file {
                    let nfd = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o644)
                    if nfd >= 0 { close(nfd); made = true } else if errno == EEXIST { made = true }
                } else if mkdirat(pfd, name, 0o755) == 0 || errno == EEXIST {
                    made = true
                }
                if made {
                    let r = Sys.retrying { clx_openat2(rootFD, path, flags, 0, resolve) }
                    if r >= 0 { return r }
                }
            }
        }
        // Create the missing components one by one, each resolved inside the root.
        let comps = path.split(separator: "/")
        var prefix = ""
        for (i, c) in comps.enumerated() {
            let parent = prefix.isEmpty ? "/" : prefix
            prefix += "/" + c
            let probe = Sys.retrying { clx_openat2(rootFD, prefix, flags, 0, resolve) }
            if probe >= 0 { close(probe); continue }
            guard errno == ENOENT else { throw .sys(step, "openat2", prefix) }
            let pfd = Sys.retrying { clx_openat2(rootFD, parent, flags | UInt64(O_DIRECTORY), 0, resolve) }
            if pfd < 0 { throw .sys(step, "openat2", parent) }
            defer { close(pfd) }
            if i == comps.count - 1 && file {
                let nfd = openat(pfd, String(c), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o644)
                if nfd < 0 && errno != EEXIST { throw .sys(step, "create", prefix) }
                if nfd >= 0 { close(nfd) }
            } else if mkdirat(pfd, String(c), 0o755) != 0 && errno != EEXIST {
                throw .sys(step, "mkdir", prefix)
            }
        }
        let final = Sys.retrying { clx_openat2(rootFD, path, flags, 0, resolve) }
        if final < 0 { throw .sys(step, "openat2", path) }
        return final
    }

    static func fdPath(_ fd: Int32) -> String { "/proc/self/fd/\(fd)" }

    /// Runs `body` with a /proc/self/fd path of `path` opened now: after a mount, the old
    /// descriptor still names the covered directory, not the new mount's root.
    static func withReopened(_ rootFD: Int32, _ path: String, step: String,
                             _ body: (String) throws(LauncherError) -> Void) throws(LauncherError) {
        let fd = try openInRoot(rootFD, path, create: false, step: step)
        defer { close(fd) }
        try body(fdPath(fd))
    }

    static func mount(_ source: String?, _ target: String, _ type: String?, _ flags: UInt, _ data: String?,
                      step: String, shown: String) throws(LauncherError) {
        if Glibc.mount(source, target, type, flags, data) != 0 { throw .sys(step, "mount", shown) }
    }

    /// Sets up everything under the rootfs and pivots into it. Runs in the container process, in
    /// its new mount namespace, before any user code.
    static func setup(_ p: InitPlan, beforePivot: () throws(LauncherError) -> Void) throws(LauncherError) {
        let rootfs = p.rootfs
        // By default keep host mount events from leaking in, and ours from leaking out (rslave). A shared
        // rootfsPropagation keeps / in the host's peer groups instead (as runc's prepareRoot), so that a
        // shared bind of a host directory stays a peer of it and mounts made below it reach the host.
        var rootProp = MS.slave | MS.rec
        if let rp = p.spec.linux?.rootfsPropagation, let f = MountOptions.propagationFlags[rp] ?? MountOptions.propagationFlags["r" + rp] {
            rootProp = f | MS.rec
        } else if let rp = p.spec.linux?.rootfsPropagation {
            throw .config("unknown linux.rootfsPropagation \"\(rp)\"")
        }
        try mount(nil, "/", nil, rootProp, nil, step: "rootfs", shown: "/")
        if rootProp & MS.shared != 0 {
            // pivot_root refuses a new root whose parent mount is shared, and the rootfs bind below would
            // propagate to the host: make the mount holding the rootfs private (runc does the same).
            try makeParentMountPrivate(rootfs)
        }
        Trace.mark("rootfs: / propagation")
        try mount(rootfs, rootfs, nil, MS.bind | MS.rec, nil, step: "rootfs", shown: rootfs)
        Trace.mark("rootfs: bind")
        let rootFD = try Sys.open(rootfs, O_PATH | O_DIRECTORY, step: "rootfs")
        defer { close(rootFD) }

        var devIsTmpfs = false
        var deferredReadonly: [String] = []
        for m in p.mounts {
            let step = "mount \(m.destination)"
            let isDir = m.kind != .bind || m.sourceIsDirectory
            let tfd = try openInRoot(rootFD, m.destination, create: true, file: !isDir, step: step)
            defer { close(tfd) }
            let target = fdPath(tfd)
            let shown = rootfs + m.destination
            var flags = m.options.flags
            switch m.kind {
            case .bind:
                try mount(m.source, target, nil, MS.bind | (m.options.recursive ? MS.rec : 0), nil, step: step, shown: shown)
                let extra = flags & ~(MS.bind | MS.rec | MS.remount)
                if extra != 0 {
                    // Our descriptor points below the new mount: reopen to reach its root.
                    try withReopened(rootFD, m.destination, step: step) { (t) throws(LauncherError) in
                        try mount(nil, t, nil, MS.bind | MS.remount | extra, nil, step: step, shown: shown)
                    }
                }
            case .cgroupV2:
                if p.newCgroupNamespace {
                    try mount("cgroup2", target, "cgroup2", flags & ~(MS.bind | MS.rec), nil, step: step, shown: shown)
                } else {
                    let src = p.cgroupMount.v2HostDir ?? "/sys/fs/cgroup"
                    try mount(src, target, nil, MS.bind | MS.rec, nil, step: step, shown: shown)
                    try withReopened(rootFD, m.destination, step: step) { (t) throws(LauncherError) in
                        try mount(nil, t, nil, MS.bind | MS.remount | (flags & ~MS.rec), nil, step: step, shown: shown)
                    }
                }
            case .cgroupV1:
                // A tmpfs holding one bind per hierarchy, each showing only the container's group.
                try mount("tmpfs", target, "tmpfs", flags & ~(MS.rdonly | MS.bind | MS.rec), "mode=755", step: step, shown: shown)
                for h in p.cgroupMount.v1 {
                    let sub = m.destination + "/" + h.name
                    let sfd = try openInRoot(rootFD, sub, create: true, step: step)
                    defer { close(sfd) }
                    try mount(h.hostDir, fdPath(sfd), nil, MS.bind | MS.rec, nil, step: step, shown: rootfs + sub)
                    try withReopened(rootFD, sub, step: step) { (t) throws(LauncherError) in
                        try mount(nil, t, nil, MS.bind | MS.remount | (flags & ~MS.rec) | MS.nosuid | MS.nodev | MS.noexec,
                                  nil, step: step, shown: rootfs + sub)
                    }
                }
                // The tmpfs itself stays writable (as with runc); each hierarchy below is read-only.
                try withReopened(rootFD, m.destination, step: step) { (t) throws(LauncherError) in
                    for l in p.cgroupMount.v1Links {
                        if symlink(l.target, t + "/" + l.name) != 0 && errno != EEXIST { throw .sys(step, "symlink", shown + "/" + l.name) }
                    }
                }
            case .regular:
                // /dev gets device nodes after this loop: keep it writable until then.
                if m.destination == "/dev" && flags & MS.rdonly != 0 {
                    flags &= ~MS.rdonly
                    deferredReadonly.append(m.destination)
                }
                if m.destination == "/dev" { devIsTmpfs = true }
                let data = m.options.dataString
                let rc = Glibc.mount(m.source, target, m.type, flags, data.isEmpty ? nil : data)
                if rc != 0 {
                    // sysfs cannot be mounted in a network namespace we do not own: show the host's.
                    if m.type == "sysfs" && errno == EPERM && !p.newNetworkNamespace {
                        try mount("/sys", target, nil, MS.bind | MS.rec, nil, step: step, shown: shown)
                        try mount(nil, target, nil, MS.bind | MS.remount | flags, nil, step: step, shown: shown)
                    } else {
                        throw .sys(step, "mount", shown)
                    }
                }
            }
            Trace.mark("mount \(m.destination)")
            if m.options.propagation != 0 {
                try withReopened(rootFD, m.destination, step: step) { (t) throws(LauncherError) in
                    try mount(nil, t, nil, m.options.propagation, nil, step: step, shown: shown)
                }
            }
        }

        try createDevices(rootFD, p, defaults: devIsTmpfs)
        try createCwd(rootFD, p)
        Trace.mark("rootfs: devices")
        try beforePivot()
        try pivot(rootfs: rootfs, rootFD: rootFD)
        Trace.mark("rootfs: pivot")

        if let rp = p.spec.linux?.rootfsPropagation, let f = MountOptions.propagationFlags[rp], f & MS.shared != 0 {
            try mount(nil, "/", nil, MS.shared | MS.rec, nil, step: "rootfs propagation", shown: "/")
        }
        for d in deferredReadonly {
            try remountReadonly(d, step: "mount \(d)")
        }
    }

    /// MS_PRIVATE on the mount holding `path`: tries `path`, then each parent directory, until mount
    /// stops answering EINVAL (not a mount point).
    static func makeParentMountPrivate(_ path: String) throws(LauncherError) {
        var dir = Sys.cleanPath(path)
        while true {
            if Glibc.mount(nil, dir, nil, MS.private, nil) == 0 { return }
            guard errno == EINVAL, dir != "/" else { throw .sys("rootfs", "mount", dir + " (make private)") }
            dir = Sys.cleanPath(dir + "/..")
        }
    }

    private static func createCwd(_ rootFD: Int32, _ p: InitPlan) throws(LauncherError) {
        let cwd = p.process.cwd
        guard cwd.hasPrefix("/"), cwd != "/" else { return }
        // runc creates a missing cwd; an existing one may be a file, which exec reports later.
        let fd = try openInRoot(rootFD, cwd, create: true, step: "cwd")
        close(fd)
    }

    /// Default devices (null, zero, full, random, urandom, tty), /dev symlinks, plus the spec's
    /// linux.devices. Nodes are created with mknod (we are real root in the init user namespace).
    static func createDevices(_ rootFD: Int32, _ p: InitPlan, defaults: Bool) throws(LauncherError) {
        var devices: [Device] = []
        if defaults {
            devices = [
                Device(path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0),
                Device(path: "/dev/zero", type: "c", major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0),
                Device(path: "/dev/full", type: "c", major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0),
                Device(path: "/dev/random", type: "c", major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0),
                Device(path: "/dev/urandom", type: "c", major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0),
                Device(path: "/dev/tty", type: "c", major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0),
            ]
        }
        for d in p.spec.linux?.devices ?? [] {
            devices.removeAll { $0.path == d.path }
            devices.append(d)
        }
        let oldMask = umask(0)
        defer { umask(oldMask) }
        for d in devices {
            let step = "device \(d.path)"
            guard d.path.hasPrefix("/dev/") else {
                throw LauncherError(.invalidConfig, step: step, detail: "device paths must be under /dev")
            }
            let parentPath = Sys.cleanPath(d.path + "/..")
            let name = String(d.path.split(separator: "/").last!)
            let pfd = try openInRoot(rootFD, parentPath, create: true, step: step)
            defer { close(pfd) }
            // O_PATH descriptors cannot be used with mknodat: go through the magic link.
            let dirPath = fdPath(pfd)
            let full = dirPath + "/" + name
            var kind: UInt32
            switch d.type {
            case "c", "u": kind = UInt32(S_IFCHR)
            case "b": kind = UInt32(S_IFBLK)
            default: kind = UInt32(S_IFIFO)
            }
            let mode = (d.fileMode ?? 0o666) & 0o7777
            unlink(full)
            if clx_mknod(full, kind | mode, UInt32(truncatingIfNeeded: d.major), UInt32(truncatingIfNeeded: d.minor)) != 0 {
                throw .sys(step, "mknod", p.rootfs + d.path)
            }
            if lchown(full, d.uid ?? 0, d.gid ?? 0) != 0 { throw .sys(step, "chown", p.rootfs + d.path) }
        }
        guard defaults else { return }
        let devFD = try openInRoot(rootFD, "/dev", create: true, step: "/dev links")
        defer { close(devFD) }
        var links = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                     ("/proc/self/fd/2", "stderr")]
        if p.mounts.contains(where: { $0.destination == "/dev/pts" }) { links.append(("pts/ptmx", "ptmx")) }
        if Sys.exists("/proc/kcore") { links.append(("/proc/kcore", "core")) }
        for (target, name) in links {
            let dir = fdPath(devFD)
            if symlink(target, dir + "/" + name) != 0 && errno != EEXIST {
                throw .sys("/dev links", "symlink", p.rootfs + "/dev/" + name)
            }
        }
        if p.process.terminal {
            // The console's pty peer is bind-mounted here once it exists.
            let fd = try openInRoot(rootFD, "/dev/console", create: true, file: true, step: "/dev/console")
            close(fd)
        }
    }

    /// pivot_root(".", ".") then detach the old root stacked underneath: no put_old directory needed.
    static func pivot(rootfs: String, rootFD: Int32) throws(LauncherError) {
        let oldRoot = try Sys.open("/", O_DIRECTORY | O_RDONLY, step: "pivot_root")
        defer { close(oldRoot) }
        let newRoot = try Sys.open(rootfs, O_DIRECTORY | O_RDONLY, step: "pivot_root")
        defer { close(newRoot) }
        if fchdir(newRoot) != 0 { throw .sys("pivot_root", "fchdir", rootfs) }
        if clx_pivot_root(".", ".") != 0 { throw .sys("pivot_root", "pivot_root", rootfs) }
        if fchdir(oldRoot) != 0 { throw .sys("pivot_root", "fchdir", "old root") }
        // Make sure unmounting the old root does not propagate to the host.
        if Glibc.mount(nil, ".", nil, MS.slave | MS.rec, nil) != 0 { throw .sys("pivot_root", "mount", "old root (rslave)") }
        if umount2(".", Int32(MNT_DETACH)) != 0 { throw .sys("pivot_root", "umount2", "old root") }
        if chdir("/") != 0 { throw .sys("pivot_root", "chdir", "/") }
    }

    /// Existing flags of the mount holding `path`, as MS_* bits we must repeat on a bind remount.
    static func lockedFlags(_ path: String) -> UInt {
        let f = clx_mount_flags(path)
        guard f >= 0 else { return 0 }
        // ST_* and MS_* share these bit values.
        return UInt(f) & (MS.nosuid | MS.nodev | MS.noexec | MS.noatime | MS.nodiratime | MS.relatime)
    }

    static func remountReadonly(_ path: String, step: String) throws(LauncherError) {
        let flags = MS.bind | MS.remount | MS.rdonly | lockedFlags(path)
        if Glibc.mount(nil, path, nil, flags, nil) != 0 { throw .sys(step, "mount", path + " (remount ro)") }
    }

    /// readonlyPaths: bind each path onto itself and remount it read-only. Missing paths are skipped.
    static func makeReadonly(_ paths: [String]) throws(LauncherError) {
        for path in paths {
            let step = "readonly path \(path)"
            if Glibc.mount(path, path, nil, MS.bind | MS.rec, nil) != 0 {
                if errno == ENOENT { continue }
                throw .sys(step, "mount", path)
            }
            try remountReadonly(path, step: step)
        }
    }

    /// maskedPaths: an empty read-only tmpfs over directories, /dev/null over files.
    static func mask(_ paths: [String], mountLabel: String?) throws(LauncherError) {
        for path in paths {
            let step = "masked path \(path)"
            var st = stat()
            if stat(path, &st) != 0 {
                if errno == ENOENT { continue }
                throw .sys(step, "stat", path)
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if Glibc.mount("tmpfs", path, "tmpfs", MS.rdonly, nil) != 0 { throw .sys(step, "mount", path) }
            } else if Glibc.mount("/dev/null", path, nil, MS.bind, nil) != 0 {
                throw .sys(step, "mount", path)
            }
        }
    }
}
