// The thin bridge to libcgroup 2.0.2: the only file that touches its pointers. Each call builds a
// `struct cgroup` for one operation and frees it before returning.
//
// libcgroup's sharp edges are handled one level up (Cgroup.swift): it has no v1/v2 name
// translation, no rollback when a create fails half-way, deletes of busy groups that "succeed", and
// an attach that writes v1 `tasks` (one thread). Callers here pass exact file names per version.

import CCgroup
#if canImport(Glibc)
import Glibc
#endif

enum LibCgroup {
    /// cgroup_init() once per process; Swift runs global initializers exactly once, thread-safely.
    private static let initResult: Int32 = cgroup_init()

    static func ensureInitialized(step: String) throws(LauncherError) {
        let rc = initResult
        if rc != 0 { throw failure(step, "cgroup_init", nil, rc) }
    }

    /// A LauncherError for a libcgroup return code; ECGOTHER carries the real errno.
    static func failure(_ step: String, _ call: String, _ path: String?, _ code: Int32) -> LauncherError {
        if code == Int32(ECGOTHER) {
            return LauncherError(.system, step: step, syscall: call, path: path, errno: cgroup_get_last_errno())
        }
        let text = cgroup_strerror(code).map { String(cString: $0) } ?? "libcgroup error \(code)"
        return LauncherError(.system, step: step, syscall: call, path: path, detail: text)
    }

    /// Mounted controllers and where (one entry per controller; v2 lists every enabled controller
    /// at the single cgroup2 mount).
    static func mountedControllers() throws(LauncherError) -> [(name: String, path: String)] {
        try ensureInitialized(step: "list cgroup controllers")
        var handle: UnsafeMutableRawPointer? = nil
        var info = cgroup_mount_point()
        var out: [(String, String)] = []
        var rc = cgroup_get_controller_begin(&handle, &info)
        while rc == 0 {
            out.append((String(cString: skiff_cg_mount_point_name(&info)), String(cString: skiff_cg_mount_point_path(&info))))
            rc = cgroup_get_controller_next(&handle, &info)
        }
        cgroup_get_controller_end(&handle)
        if rc != Int32(ECGEOF) && rc != 0 {
            throw failure("list cgroup controllers", "cgroup_get_controller_next", nil, rc)
        }
        return out
    }

    /// Runs `body` with a fresh `struct cgroup` named `name` holding `controllers`.
    private static func withCgroup<T>(_ name: String, _ controllers: [String], step: String,
                                      _ body: (OpaquePointer, [OpaquePointer]) throws(LauncherError) -> T) throws(LauncherError) -> T {
        try ensureInitialized(step: step)
        guard let cg = cgroup_new_cgroup(name) else {
            throw LauncherError(.system, step: step, syscall: "cgroup_new_cgroup", path: name, errno: ENOMEM)
        }
        var owned: OpaquePointer? = cg
        defer { cgroup_free(&owned) }
        var ctrls: [OpaquePointer] = []
        for c in controllers {
            guard let ctrl = cgroup_add_controller(cg, c) else {
                throw LauncherError(.system, step: step, syscall: "cgroup_add_controller", path: name,
                                    detail: "controller \(c)")
            }
            ctrls.append(ctrl)
        }
        return try body(cg, ctrls)
    }

    /// mkdir -p of the group in every controller's hierarchy (v2: also enables each controller in
    /// the parents' cgroup.subtree_control). Ownership is left as is.
    static func create(_ name: String, controllers: [String], step: String) throws(LauncherError) {
        try withCgroup(name, controllers, step: step) { cg, _ throws(LauncherError) in
            let rc = cgroup_create_cgroup(cg, 1)
            if rc != 0 { throw failure(step, "cgroup_create_cgroup", name, rc) }
        }
    }

    /// Writes one control file (`memory.max`) of the group through cgroup_modify_cgroup, one value
    /// per call so that an error names the file that failed.
    static func set(_ name: String, controller: String, file: String, value: String, step: String) throws(LauncherError) {
        try withCgroup(name, [controller], step: step) { cg, ctrls throws(LauncherError) in
            if cgroup_add_value_string(ctrls[0], file, value) != 0 {
                throw LauncherError(.system, step: step, syscall: "cgroup_add_value_string", path: file)
            }
            let rc = cgroup_modify_cgroup(cg)
            if rc != 0 {
                var e = failure(step, "write", "\(name)/\(file)", rc)
                e.detail = (e.detail.map { $0 + ", " } ?? "") + "value \(value)"
                throw e
            }
        }
    }

    /// Writes several control files of one controller in one libcgroup call, in order. A value
    /// with newlines is written line by line (devices.allow rules). On failure the error does not
    /// say which file failed: callers retry value by value (`Cgroup.apply`).
    static func setMany(_ name: String, controller: String, values: [(file: String, value: String)],
                        step: String) throws(LauncherError) {
        try withCgroup(name, [controller], step: step) { cg, ctrls throws(LauncherError) in
            for v in values where cgroup_add_value_string(ctrls[0], v.file, v.value) != 0 {
                throw LauncherError(.system, step: step, syscall: "cgroup_add_value_string", path: v.file)
            }
            let rc = cgroup_modify_cgroup(cg)
            if rc != 0 { throw failure(step, "write", name, rc) }
        }
    }

    /// Moves `pid` into the group in each controller. Writes v1 `tasks` (that one thread only), so
    /// callers attach a process while it is still single-threaded.
    static func attach(_ name: String, controllers: [String], pid: pid_t, step: String) throws(LauncherError) {
        try withCgroup(name, controllers, step: step) { cg, _ throws(LauncherError) in
            let rc = cgroup_attach_task_pid(cg, pid)
            if rc != 0 { throw failure(step, "cgroup_attach_task_pid", name, rc) }
        }
    }

    /// rmdir of the group in each controller, only if empty. libcgroup reports success even when it
    /// kept a busy group, so callers check that the directories are gone.
    static func deleteIfEmpty(_ name: String, controllers: [String], step: String) throws(LauncherError) {
        try withCgroup(name, controllers, step: step) { cg, _ throws(LauncherError) in
            let rc = cgroup_delete_cgroup_ext(cg, Int32(CGFLAG_DELETE_EMPTY_ONLY.rawValue))
            if rc != 0 && rc != Int32(ECGROUPNOTEXIST) && rc != Int32(ECGNONEMPTY) {
                throw failure(step, "cgroup_delete_cgroup_ext", name, rc)
            }
        }
    }
}
