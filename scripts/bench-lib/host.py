"""Host plumbing for the benchmark: processes, memory, cgroups, mounts, the registry and the images.

The driver runs inside its own network + mount namespace (scripts/bench starts it with `unshare`). Its
parent is the child subreaper of everything it starts, so shims and monitors that detach still end up
among its descendants (how they are found for the memory rows and for the final sweep). Every cgroup,
mount and directory the driver or the runtimes left behind is removed.
"""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time

PR_SET_CHILD_SUBREAPER = 36
CGROUP_FS = "/sys/fs/cgroup"


REAPER_PID = None  # the subreaper parent (see fork_reaper); descendants() starts from it


def fork_reaper():
    """Makes this process the child subreaper and forks: the parent only reaps (every orphaned shim,
    monitor and container process comes to it and is reaped at once, so no zombie lingers to look alive
    to a runtime), the child returns and runs the benchmark. Returns in the child only."""
    global REAPER_PID
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    REAPER_PID = os.getpid()
    child = os.fork()
    if child == 0:
        return
    # Ctrl-C reaches the whole group: the child cleans up; the parent must outlive it to keep reaping.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: os.kill(child, signal.SIGTERM))
    code = 1
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            if code < 0:
                code = 128 - code
            # Anything still running now escaped the child's own cleanup: end it.
            for p in descendants(REAPER_PID):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    os._exit(code)


def run(argv, **kw):
    """Runs a helper command; its output is returned, and a failure shows it."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout[-3000:]}")
    return p.stdout


# ---- processes ------------------------------------------------------------------------------------------

def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, rest[0], int(rest[1])  # comm, state, ppid


def process_table():
    table = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                table[int(d)] = _stat(d)
            except (OSError, ValueError):
                pass
    return table


def descendants(root=None, table=None):
    """{pid: comm} of every descendant of `root` (default: this process)."""
    root = root or REAPER_PID or os.getpid()
    table = table or process_table()
    children = {}
    for pid, (_, _, ppid) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if table[pid][1] != "Z":
            out[pid] = table[pid][0]
        todo.extend(children.get(pid, []))
    return out


def memory_of(pid):
    """(RSS KiB, PSS KiB) of one process; PSS from smaps_rollup (shared pages split between sharers)."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def kill_tree(pids, grace=5.0):
    """SIGTERM, then SIGKILL after `grace` s, to the given pids (only ours: callers pass our descendants)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while alive and time.time() < deadline:
            alive = [p for p in alive if os.path.exists(f"/proc/{p}") and _state(p) != "Z"]
            time.sleep(0.05)
        if not alive:
            return


def _state(pid):
    try:
        return _stat(pid)[1]
    except OSError:
        return "X"


# ---- cgroups --------------------------------------------------------------------------------------------

def cgroup_hierarchies():
    """Mount points of every cgroup hierarchy (v1 controllers and the v2 one), from /proc/self/mountinfo."""
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            fstype = right.split()[0]
            if fstype in ("cgroup", "cgroup2"):
                roots.append(left.split()[4])
    return sorted(set(roots))


def cgroup_dirs(name):
    return [os.path.join(r, name.lstrip("/")) for r in cgroup_hierarchies() if os.path.isdir(os.path.join(r, name.lstrip("/")))]


def remove_cgroup_tree(path):
    """Removes an (empty) cgroup tree bottom-up; returns the dirs that could not go (busy cgroups)."""
    left = []
    for d, subdirs, _ in os.walk(path, topdown=False):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            left.append(f"{d}: {e.strerror}")
    return left


def cgroup_snapshot(names):
    return {n: set(cgroup_dirs(n)) for n in names}


def sweep_cgroups(names, before):
    """Removes the cgroups `names` that did not exist in `before` (a cgroup_snapshot), and reports what stays."""
    leftovers, removed = [], []
    for n in names:
        for d in cgroup_dirs(n):
            if d in before.get(n, set()):
                # Existed before us: remove only the 64-hex children runtimes made during the run.
                for child in os.listdir(d):
                    p = os.path.join(d, child)
                    if os.path.isdir(p) and len(child) == 64 and all(c in "0123456789abcdef" for c in child):
                        removed.append(p)
                        leftovers += remove_cgroup_tree(p)
                continue
            removed.append(d)
            leftovers += remove_cgroup_tree(d)
    return removed, leftovers


# ---- mounts ---------------------------------------------------------------------------------------------

def mounts_under(prefix):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                out.append(mp)
    return out


def unmount_all(prefix):
    """Unmounts everything at or below prefix, deepest first; returns how many mounts there were."""
    found = mounts_under(prefix)
    for mp in sorted(found, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return len(found)


class PrivateDir:
    """A tmpfs over a host path, visible only in our mount namespace; the dir is removed if we made it."""

    def __init__(self, path):
        self.path = path
        self.created = not os.path.exists(path)
        os.makedirs(path, exist_ok=True)
        run(["mount", "-t", "tmpfs", "-o", "mode=0711", "skiff-bench", path])

    def close(self):
        unmount_all(self.path)
        if self.created:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


# ---- registry and images --------------------------------------------------------------------------------

class Registry:
    """scripts/test-registry (Debian's docker-registry) on 127.0.0.1 inside our network namespace."""

    def __init__(self, root, workdir):
        self.root = root
        out = run([os.path.join(root, "scripts", "test-registry"), "start", os.path.join(workdir, "skiff-registry")])
        self.addr, self.state = out.strip().splitlines()[-1].split()

    def push(self, layout, tag, repo):
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{self.addr}/{repo}"])

    def close(self):
        subprocess.run([os.path.join(self.root, "scripts", "test-registry"), "stop", self.state],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def build_images(root, workdir, pause_binary):
    """busybox (scripts/build-test-images) and a one-layer pause image whose entrypoint is Skiff's static
    skiff-pause, so both runtimes run the very same infra binary."""
    layout = os.path.join(workdir, "images")
    run([os.path.join(root, "scripts", "build-test-images"), layout])
    pause_layout = os.path.join(workdir, "pause-layout")
    bundle = os.path.join(workdir, "pause-bundle")
    run(["umoci", "init", "--layout", pause_layout])
    run(["umoci", "new", "--image", f"{pause_layout}:bench"])
    run(["umoci", "unpack", "--image", f"{pause_layout}:bench", bundle])
    shutil.copy2(pause_binary, os.path.join(bundle, "rootfs", "pause"))
    os.chmod(os.path.join(bundle, "rootfs", "pause"), 0o755)
    run(["umoci", "repack", "--image", f"{pause_layout}:bench", bundle])
    run(["umoci", "config", "--image", f"{pause_layout}:bench", "--config.entrypoint", "/pause"])
    shutil.rmtree(bundle)
    return layout, pause_layout


def machine_info():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    os_name = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    cg = "v2" if not any(r for r in cgroup_hierarchies() if "unified" not in r and r != CGROUP_FS) else "v1 hybrid"
    return {"kernel": os.uname().release, "cpu": model, "cpus": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "os": os_name, "cgroups": cg}


def dump_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
