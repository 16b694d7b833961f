"""Skiff vs containerd + runc, through one CRI client, on one machine. Run by scripts/bench (see there).

Each runtime is started, measured and stopped in turn (never both at once), inside the network + mount
namespace scripts/bench created. Every row gets median, p95 and the number of samples per runtime and the
Skiff/containerd ratio of the medians; the table goes to stdout, the same data (with samples) to --json.
"""
import argparse
import concurrent.futures
import datetime
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import cri
import host
import phases
import runtimes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "docker.io/library/busybox:latest"
PAUSE_IMAGE = "docker.io/library/skiff-pause:bench"
# Exits 0 on SIGTERM: as PID 1 of its PID namespace a default SIGTERM would be ignored, so trap it;
# `wait` is interrupted by the trapped signal at once (a foreground sleep would delay the trap).
TRAP_CMD = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
SLEEP_CMD = ["/bin/sleep", "3600"]


SECTIONS = ("warmup", "memory", "pods", "containers", "e2e", "exec", "concurrent", "lists", "phases")


class Plan:
    def __init__(self, quick):
        self.quick = quick
        self.warmup = 1 if quick else 3
        self.pod_iters = 5 if quick else 30
        self.container_iters = 5 if quick else 30
        self.e2e_iters = 5 if quick else 30
        self.exec_iters = 10 if quick else 100
        self.list_iters = 10 if quick else 100
        self.list_sizes = [10, 100] if quick else [10, 100, 1000]
        self.containers_per_list_pod = 10
        self.concurrent_n = 20
        self.concurrent_rounds = 1 if quick else 3
        self.memory_pods = [0, 1, 20]
        self.launcher_runs = 20 if quick else 100
        self.sections = None  # None: all
        self.phase_iters = 10


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summary(xs):
    if not xs:
        return None
    return {"median": statistics.median(xs), "p95": pct(xs, 0.95), "min": min(xs), "max": max(xs), "n": len(xs)}


class Bench:
    """Measures one runtime. Rows go to self.rows: key → {"samples": [...]} or {"error": "..."}."""

    def __init__(self, rt, plan, workdir, cgroup_root, with_phases=False):
        self.rt, self.plan = rt, plan
        self.workdir = workdir
        self.with_phases = with_phases
        self.c = None
        self.logs = os.path.join(workdir, "pod-logs", rt.name)
        self.cgroup_root = cgroup_root
        self.rows = {}
        self.extra = {}
        self.seq = 0

    def name(self, prefix):
        self.seq += 1
        return f"{prefix}-{self.seq}"

    def add(self, key, value):
        self.rows.setdefault(key, {"samples": []})["samples"].append(value)

    def fail(self, keys, error):
        print(f"  ! {error}", file=sys.stderr)
        for k in keys:
            self.rows[k] = {"error": str(error)}

    def section(self, title, keys, fn):
        print(f"[{self.rt.name}] {title}", file=sys.stderr, flush=True)
        t0 = time.time()
        try:
            fn()
        except (cri.CallFailed, RuntimeError, AssertionError) as e:
            self.fail([k for k in keys if k not in self.rows or "error" in self.rows[k]] or keys, e)
        finally:
            self.teardown()
            print(f"[{self.rt.name}]   {time.time() - t0:.1f} s", file=sys.stderr, flush=True)

    # ---- helpers --------------------------------------------------------------------------------------

    def pod(self, prefix, host_network):
        cfg = cri.pod_config(self.name(prefix), host_network, self.logs, self.cgroup_root)
        pid, ms = self.c.run_pod(cfg)
        return pid, cfg, ms

    def container(self, pod_id, pod_cfg, cmd, host_network, start=True):
        ccfg = cri.container_config(self.name("c"), IMAGE, cmd, host_network)
        cid, t_create = self.c.create(pod_id, ccfg, pod_cfg)
        t_start = self.c.start(cid) if start else None
        return cid, t_create, t_start

    def teardown(self):
        """Stops and removes every pod and container (untimed, 4 at a time). Errors are reported, not hidden."""
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(self.c.stop_pod, [p.id for p in self.c.list_pods()[0]]))
                list(pool.map(self.c.remove, [ct.id for ct in self.c.list_containers()[0]]))
                list(pool.map(self.c.remove_pod, [p.id for p in self.c.list_pods()[0]]))
        except cri.CallFailed as e:
            self.extra.setdefault("teardown_errors", []).append(str(e))
            print(f"  ! teardown: {e}", file=sys.stderr)

    # ---- sections -------------------------------------------------------------------------------------

    def run(self):
        rt = self.rt
        rt.start()
        self.c = rt.client
        self.extra["version"] = rt.version
        print(f"[{rt.name}] {rt.version}", file=sys.stderr, flush=True)
        _, ms = self.c.pull(IMAGE)
        self.add("image.pull", ms)

        wanted = self.plan.sections
        def section(name, title, keys, body):
            if wanted is None or name in wanted:
                self.section(title, keys, body)
        section("warmup", "warm-up", ["warmup"], self.warmup)
        section("memory", "memory with 0/1/20 pods", [f"mem.{n}" for n in self.plan.memory_pods], self.memory)
        for net in ("host", "pod"):
            section("pods", f"pod sandbox lifecycle ({net} network)",
                    [f"pod.{op}.{net}" for op in ("run", "stop", "remove")], lambda net=net: self.pod_lifecycle(net))
        section("containers", "container lifecycle", [f"ctr.{op}" for op in ("create", "start", "stop", "remove")],
                self.container_lifecycle)
        for net in ("host", "pod"):
            section("e2e", f"pod + container end to end ({net} network)", [f"e2e.{net}"], lambda net=net: self.e2e(net))
        section("exec", "ExecSync", ["exec"], self.exec_sync)
        section("concurrent", "concurrent pods", ["conc.pods", "conc.e2e"], self.concurrent)
        keys = [f"list.{kind}.{n}" for n in self.plan.list_sizes for kind in ("containers", "pods")]
        section("lists", "list calls", keys, self.lists)
        if self.with_phases:
            section("phases", "phases of pod + container (perf sched events)", [], self.phases)

    def phases(self):
        self.extra["phases"] = phases.measure(
            self, self.plan.phase_iters, self.workdir, lambda: self.pod("phase", False),
            lambda pid, cfg: self.container(pid, cfg, SLEEP_CMD, False))

    def warmup(self):
        for _ in range(self.plan.warmup):
            for net in (True, False):
                pid, cfg, _ = self.pod("warm", net)
                cid, _, _ = self.container(pid, cfg, TRAP_CMD, net)
                self.c.exec_sync(cid, ["/bin/true"])
                self.c.list_containers()
                self.c.stop(cid, 10)
                self.c.stop_pod(pid)
                self.c.remove(cid)
                self.c.remove_pod(pid)

    def memory(self):
        have = 0
        for target in self.plan.memory_pods:
            while have < target:
                pid, cfg, _ = self.pod("mem", False)
                self.container(pid, cfg, SLEEP_CMD, False)
                have += 1
            time.sleep(2)  # let helpers settle (lazy page faults, GC of request buffers)
            snaps = []
            for _ in range(3):
                snaps.append(self.rt.memory())
                time.sleep(0.5)
            snap = sorted(snaps, key=lambda s: s["total_rss_kib"])[1]
            self.rows[f"mem.{target}"] = {"samples": [s["total_rss_kib"] / 1024 for s in snaps], "breakdown": snap}
            self.rows[f"pss.{target}"] = {"samples": [s["total_pss_kib"] / 1024 for s in snaps]}
            print(f"    {target} pods: RSS {snap['total_rss_kib'] / 1024:.1f} MiB, PSS {snap['total_pss_kib'] / 1024:.1f} MiB "
                  f"(daemon {snap['daemon']['rss_kib'] / 1024:.1f}, {snap['helpers']['count']} helpers "
                  f"{snap['helpers']['rss_kib'] / 1024:.1f}, {snap['infra']['count']} infra {snap['infra']['rss_kib'] / 1024:.1f})",
                  file=sys.stderr)

    def pod_lifecycle(self, net):
        for _ in range(self.plan.pod_iters):
            pid, _, t_run = self.pod("lc", net == "host")
            t_stop = self.c.stop_pod(pid)
            t_rm = self.c.remove_pod(pid)
            self.add(f"pod.run.{net}", t_run)
            self.add(f"pod.stop.{net}", t_stop)
            self.add(f"pod.remove.{net}", t_rm)

    def container_lifecycle(self):
        pid, cfg, _ = self.pod("ctr", False)
        for _ in range(self.plan.container_iters):
            cid, t_create, t_start = self.container(pid, cfg, TRAP_CMD, False)
            time.sleep(0.2)  # the shell must have installed its trap before SIGTERM comes
            t_stop = self.c.stop(cid, 10)
            status = self.c.container_status(cid)
            if status.exit_code != 0:
                raise AssertionError(f"{self.rt.name}: container stopped with exit code {status.exit_code} "
                                     f"(reason {status.reason!r}): SIGTERM did not end it")
            t_rm = self.c.remove(cid)
            for k, v in (("create", t_create), ("start", t_start), ("stop", t_stop), ("remove", t_rm)):
                self.add(f"ctr.{k}", v)

    def e2e(self, net):
        host_network = net == "host"
        parts = {"run": [], "create": [], "start": []}
        for _ in range(self.plan.e2e_iters):
            t0 = time.perf_counter_ns()
            pid, cfg, t_run = self.pod("e2e", host_network)
            cid, t_create, t_start = self.container(pid, cfg, SLEEP_CMD, host_network)
            self.add(f"e2e.{net}", (time.perf_counter_ns() - t0) / 1e6)
            for k, v in (("run", t_run), ("create", t_create), ("start", t_start)):
                parts[k].append(v)
            self.c.stop_pod(pid)
            self.c.remove(cid)
            self.c.remove_pod(pid)
        self.rows[f"e2e.{net}"]["phases_median_ms"] = {k: statistics.median(v) for k, v in parts.items()}

    def exec_sync(self):
        pid, cfg, _ = self.pod("exec", False)
        cid, _, _ = self.container(pid, cfg, SLEEP_CMD, False)
        for _ in range(3):
            self.c.exec_sync(cid, ["/bin/true"])
        for _ in range(self.plan.exec_iters):
            r, ms = self.c.exec_sync(cid, ["/bin/true"])
            if r.exit_code != 0:
                raise AssertionError(f"{self.rt.name}: ExecSync /bin/true exited {r.exit_code}: {r.stderr[:200]!r}")
            self.add("exec", ms)

    def concurrent(self):
        n = self.plan.concurrent_n
        for with_container in (False, True):
            key = "conc.e2e" if with_container else "conc.pods"
            for _ in range(self.plan.concurrent_rounds):
                cfgs = [cri.pod_config(self.name("conc"), False, self.logs, self.cgroup_root) for _ in range(n)]
                barrier = threading.Barrier(n + 1)

                def one(cfg):
                    barrier.wait()
                    pid, _ = self.c.run_pod(cfg)
                    if with_container:
                        ccfg = cri.container_config(f"c-{cfg.metadata.name}", IMAGE, SLEEP_CMD, False)
                        cid, _ = self.c.create(pid, ccfg, cfg)
                        self.c.start(cid)
                    return time.perf_counter_ns()

                with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
                    futures = [pool.submit(one, cfg) for cfg in cfgs]
                    barrier.wait()
                    t0 = time.perf_counter_ns()
                    ends = [f.result() for f in futures]
                self.add(key, (max(ends) - t0) / 1e6)
                self.teardown()

    def lists(self):
        per_pod = self.plan.containers_per_list_pod
        count = 0
        fill_ms = []
        for size in self.plan.list_sizes:
            while count < size:
                pid, cfg, _ = self.pod("list", True)
                for _ in range(per_pod):
                    _, t_create, _ = self.container(pid, cfg, SLEEP_CMD, True, start=False)
                    fill_ms.append(t_create)
                count += per_pod
            items, _ = self.c.list_containers()
            if len(items) != size:
                raise AssertionError(f"{self.rt.name}: ListContainers returned {len(items)} containers, expected {size}")
            pods, _ = self.c.list_pods()
            for _ in range(3):
                self.c.list_containers()
                self.c.list_pods()
            for _ in range(self.plan.list_iters):
                self.add(f"list.containers.{size}", self.c.list_containers()[1])
            for _ in range(self.plan.list_iters):
                self.add(f"list.pods.{size}", self.c.list_pods()[1])
            self.rows[f"list.pods.{size}"]["pods"] = len(pods)
        self.extra["create_during_list_fill_ms"] = summary(fill_ms)


# ---- rows, targets, table ---------------------------------------------------------------------------------

def row_specs(plan):
    """(key, label, unit, target) in table order. target: (kind, value) with kind 'ratio' or 'abs_ms'."""
    rows = [
        ("pod.run.host", "RunPodSandbox, host network", "ms", None),
        ("pod.run.pod", "RunPodSandbox, pod network [1]", "ms", None),
        ("pod.stop.host", "StopPodSandbox, host network", "ms", None),
        ("pod.stop.pod", "StopPodSandbox, pod network [1]", "ms", None),
        ("pod.remove.host", "RemovePodSandbox, host network", "ms", None),
        ("pod.remove.pod", "RemovePodSandbox, pod network [1]", "ms", None),
        ("ctr.create", "CreateContainer", "ms", None),
        ("ctr.start", "StartContainer", "ms", None),
        ("ctr.stop", "StopContainer (exits on SIGTERM)", "ms", None),
        ("ctr.remove", "RemoveContainer", "ms", None),
        ("e2e.host", "pod + container running, host network", "ms", ("ratio", 0.5)),
        ("e2e.pod", "pod + container running, pod network [1]", "ms", ("ratio", 0.5)),
        ("exec", "ExecSync /bin/true", "ms", ("ratio", 0.5)),
    ]
    for n in plan.list_sizes:
        pods = n // plan.containers_per_list_pod
        rows.append((f"list.containers.{n}", f"ListContainers, {n} containers [2]", "ms",
                     ("abs_ms", 5.0) if n == 1000 else None))
        rows.append((f"list.pods.{n}", f"ListPodSandbox, {pods} pods/{n} containers", "ms", None))
    rows += [
        ("conc.pods", f"{plan.concurrent_n} pods concurrently (wall) [1]", "ms", None),
        ("conc.e2e", f"{plan.concurrent_n} pods + container concurrently (wall)", "ms", None),
    ]
    for n in plan.memory_pods:
        rows.append((f"mem.{n}", f"RSS daemon+helpers, {n} pods [3]", "MiB", ("ratio", 1 / 3) if n == 20 else None))
    for n in plan.memory_pods:
        rows.append((f"pss.{n}", f"PSS daemon+helpers, {n} pods [3]", "MiB", None))
    rows += [
        ("launcher", f"launcher run /bin/true (skiff-runc vs runc) [4]", "ms", ("ratio", 0.35)),
        ("image.pull", "PullImage busybox, cold (1 sample)", "ms", None),
    ]
    return rows


def build_rows(plan, results):
    out = []
    for key, label, unit, target in row_specs(plan):
        row = {"key": key, "label": label, "unit": unit}
        for name in ("skiff", "containerd"):
            r = results.get(name, {}).get(key)
            if r is None:
                continue
            if "error" in r:
                row[name] = {"error": r["error"]}
                continue
            s = summary(r["samples"])
            s.update({k: v for k, v in r.items() if k != "samples"})
            s["samples"] = r["samples"]
            row[name] = s
        sk, cd = row.get("skiff", {}), row.get("containerd", {})
        if "median" in sk and "median" in cd and cd["median"] > 0:
            row["ratio"] = sk["median"] / cd["median"]
        if target:
            kind, value = target
            row["target"] = {"kind": kind, "value": value}
            if kind == "ratio" and "ratio" in row:
                row["target"]["met"] = row["ratio"] <= value
            elif kind == "abs_ms" and "median" in sk:
                row["target"]["met"] = sk["median"] < value
        out.append(row)
    return out


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "MiB":
        return f"{v:.1f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def table(rows, meta):
    lines = []
    lines.append(f"Skiff vs containerd+runc — {meta['date']} — {meta['machine']['cpu']}, {meta['machine']['cpus']} cpus, "
                 f"{meta['machine']['memory_gib']} GiB, {meta['machine']['os']}, kernel {meta['machine']['kernel']}, "
                 f"cgroups {meta['machine']['cgroups']}")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    lines.append(f"Load average (1/5/15 min) before: {meta['loadavg_before']}, after: {meta['loadavg_after']}"
                 + ("  (machine busy: expect noise)" if meta["loadavg_before"][0] > 0.5 else ""))
    lines.append("")
    lines.append("| row | unit | Skiff median | Skiff p95 | containerd median | containerd p95 | n | Skiff/containerd | target |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cells = [r["label"], r["unit"]]
        ns = []
        for name in ("skiff", "containerd"):
            s = r.get(name)
            if s is None:
                cells += ["-", "-"]
            elif "error" in s:
                cells += ["FAILED", "-"]
            else:
                cells += [fmt(s["median"], r["unit"]), fmt(s["p95"], r["unit"]) if s["n"] > 1 else "-"]
                ns.append(str(s["n"]))
        cells.append("/".join(sorted(set(ns))) or "-")
        cells.append(f"{r['ratio']:.2f}x" if "ratio" in r else "-")
        t = r.get("target")
        if t:
            want = f"≤ {t['value']:.2f}x" if t["kind"] == "ratio" else f"< {t['value']:g} ms"
            met = t.get("met")
            cells.append(f"{want} {'met' if met else 'MISSED' if met is False else '?'}")
        else:
            cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [
        "[1] Both runtimes: the same CNI bridge + host-local IPAM config, plus loopback, in a fresh netns.",
        "[2] containers created, not started (10 per pod, host-network pods); client-side time of the unfiltered call.",
        "[3] Sum of VmRSS of the daemon, its per-pod/per-container helpers (containerd-shim-runc-v2 | skiff-monitor) "
        "and the infra processes (both run the same static skiff-pause); each pod runs one `sleep`, not counted. "
        "RSS counts shared file pages once per process; PSS divides them among the processes sharing them.",
        "[4] scripts/bench-launcher: `run` of /bin/true in a busybox bundle, interleaved"
        + (f"; floor (unshare of the same namespaces + exec) {meta['launcher_floor_ms']:.1f} ms." if meta.get("launcher_floor_ms") else "."),
    ]
    errors = [(r["label"], n, r[n]["error"]) for r in rows for n in ("skiff", "containerd") if "error" in r.get(n, {})]
    if errors:
        lines.append("")
        lines.append("Failures:")
        for label, n, e in errors:
            lines.append(f"- {label} [{n}]: {e}")
    return "\n".join(lines)


# ---- launcher row ---------------------------------------------------------------------------------------

def launcher_row(plan, bin_dir):
    script = os.path.join(ROOT, "scripts", "bench-launcher")
    if not os.access(script, os.X_OK):
        return {"error": "scripts/bench-launcher not found: launcher row skipped"}
    env = dict(os.environ, SKIFF_RUNC=os.path.join(bin_dir, "skiff-runc"))
    p = subprocess.run([script, str(plan.launcher_runs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return {"error": f"scripts/bench-launcher exited {p.returncode}: {(p.stderr or p.stdout)[-500:]}"}
    out = {"text": p.stdout}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] in ("skiff-runc", "runc", "crun", "floor"):
            i = 2 if f[0] == "floor" else 1  # "floor (unshare)  median p95 min ..."
            out[f[0]] = {"median": float(f[i]), "p95": float(f[i + 1]), "min": float(f[i + 2]), "n": plan.launcher_runs}
    if "skiff-runc" not in out or "runc" not in out:
        return {"error": f"could not parse scripts/bench-launcher output:\n{p.stdout}"}
    return out


# ---- main -----------------------------------------------------------------------------------------------

def versions(bin_dir):
    def first_line(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.splitlines()[0].strip()
        except (OSError, IndexError):
            return "?"
    rev = first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    import grpc
    return {
        "skiff": f"{first_line([os.path.join(bin_dir, 'skiffd'), '--version'])} (git {rev}, {bin_dir.rstrip('/').split('/')[-1]} build)",
        "containerd": first_line(["dpkg-query", "-W", "-f", "${Version}", "containerd"]),
        "runc": first_line(["dpkg-query", "-W", "-f", "${Version}", "runc"]),
        "client": f"python grpcio {grpc.__version__}",
    }


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench")
    ap.add_argument("--quick", action="store_true", help="few iterations, lists up to 100 containers (smoke run)")
    ap.add_argument("--only", choices=["skiff", "containerd"], help="measure one runtime only")
    ap.add_argument("--json", default="bench-results.json", help="write results here (default ./bench-results.json)")
    ap.add_argument("--bin-dir", required=True, help="directory holding skiffd, skiff-runc, skiff-monitor, skiff-pause")
    ap.add_argument("--skiff-log-level", default="info", help="skiffd log level (debug adds per-RPC ms= lines)")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy the daemons' logs here before cleaning up")
    ap.add_argument("--no-launcher", action="store_true", help="skip the launcher row")
    ap.add_argument("--sections", help="comma-separated subset of: " + ",".join(SECTIONS) + " (default: all)")
    ap.add_argument("--list-iters", type=int, help="calls per list row (default 100, 10 with --quick)")
    ap.add_argument("--phases", dest="phases", action="store_true", default=None,
                    help="time the helpers of pod+container with perf sched events (default: on unless --quick)")
    ap.add_argument("--no-phases", dest="phases", action="store_false")
    args = ap.parse_args()
    if os.environ.get("SKIFF_BENCH_NS") != "1":
        sys.exit("bench.py must run through scripts/bench (inside its own network and mount namespace)")

    plan = Plan(args.quick)
    if args.sections:
        plan.sections = sorted(set(x.strip() for x in args.sections.split(",") if x.strip()))
        unknown = set(plan.sections) - set(SECTIONS)
        if unknown:
            ap.error(f"unknown sections: {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})")
    if args.list_iters:
        plan.list_iters = args.list_iters
    json_path = os.path.abspath(args.json)
    load_before = os.getloadavg()
    host.fork_reaper()
    # Interrupted runs still clean up: SIGINT/SIGTERM/SIGHUP unwind through the finally blocks below
    # (SIGINT explicitly, since a shell may start us with it ignored).
    def interrupted(signum, _frame):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # one interrupt; cleanup runs to the end
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    host.run(["ip", "link", "set", "lo", "up"])
    workdir = tempfile.mkdtemp(prefix="skiff-bench-", dir="/tmp")
    cgroup_root = f"/skiffbench-{os.getpid()}"
    cgroup_names = [cgroup_root, "k8s.io"]
    cg_before = host.cgroup_snapshot(cgroup_names)
    cleanup_notes = []
    private_dirs = []
    registry = None
    results, extras = {}, {}
    started = time.time()
    try:
        cri.load_stubs(ROOT, workdir)
        print("building images (busybox, pause) ...", file=sys.stderr, flush=True)
        layout, pause_layout = host.build_images(ROOT, workdir, os.path.join(args.bin_dir, "skiff-pause"))
        registry = host.Registry(ROOT, workdir)
        registry.push(layout, "latest", "library/busybox:latest")
        registry.push(pause_layout, "bench", "library/skiff-pause:bench")

        chosen = [args.only] if args.only else ["skiff", "containerd"]
        for name in chosen:
            if name == "skiff":
                rt = runtimes.Skiff(workdir, args.bin_dir, registry.addr, cgroup_root, args.skiff_log_level, "/usr/lib/cni")
            else:
                # containerd keeps shim sockets in /run/containerd/s and the CNI cache in /var/lib/cni whatever
                # its config says: give both a tmpfs only our mount namespace sees.
                for d in ("/run/containerd", "/var/lib/cni"):
                    private_dirs.append(host.PrivateDir(d))
                rt = runtimes.Containerd(workdir, registry.addr, "/usr/lib/cni", PAUSE_IMAGE)
            b = Bench(rt, plan, workdir, cgroup_root, with_phases=args.phases if args.phases is not None else not args.quick)
            try:
                b.run()
            except KeyboardInterrupt:
                print(f"[{name}] interrupted: cleaning up", file=sys.stderr, flush=True)
                raise
            except (cri.CallFailed, RuntimeError) as e:
                print(f"[{name}] aborted: {e}", file=sys.stderr)
                extras.setdefault(name, {})["aborted"] = str(e)
            finally:
                cleanup_notes += [f"{name}: {x}" for x in rt.stop()]
                n = 0
                for prefix in rt.mount_prefixes():
                    n += host.unmount_all(prefix)
                if n:
                    cleanup_notes.append(f"{name}: {n} mounts left under {rt.dir} after stop (unmounted)")
                results[name] = b.rows
                extras.setdefault(name, {}).update(b.extra)
                if args.keep_logs:
                    os.makedirs(args.keep_logs, exist_ok=True)
                    subprocess.run(["cp", rt.log_path, args.keep_logs])
                removed, left = host.sweep_cgroups(cgroup_names, cg_before)
                cleanup_notes += [f"{name}: cgroup still present: {x}" for x in left]

        if not args.no_launcher:
            print("launcher: scripts/bench-launcher ...", file=sys.stderr, flush=True)
            lr = launcher_row(plan, args.bin_dir)
            extras["launcher"] = lr
            if "error" in lr:
                results.setdefault("skiff", {})["launcher"] = {"error": lr["error"]}
            else:
                results.setdefault("skiff", {})["launcher"] = {"samples": [lr["skiff-runc"]["median"]], **lr["skiff-runc"]}
                results.setdefault("containerd", {})["launcher"] = {"samples": [lr["runc"]["median"]], **lr["runc"]}
    finally:
        if registry:
            registry.close()
        for d in reversed(private_dirs):
            d.close()
        if host.unmount_all(workdir):
            cleanup_notes.append(f"mounts left under {workdir} (unmounted)")
        subprocess.run(["rm", "-rf", "--one-file-system", workdir])
        removed, left = host.sweep_cgroups(cgroup_names, cg_before)
        cleanup_notes += [f"cgroup still present: {x}" for x in left]
        stray = {p: c for p, c in host.descendants().items() if p != os.getpid()}
        if stray:
            cleanup_notes.append(f"processes left at exit (killed): {sorted(set(stray.values()))}")
            host.kill_tree(list(stray))

    rows = build_rows(plan, results)
    for r in rows:  # launcher stats come from the script, not from samples
        if r["key"] == "launcher":
            for n, src in (("skiff", "skiff-runc"), ("containerd", "runc")):
                if n in r and "error" not in r[n]:
                    r[n].update({k: v for k, v in extras["launcher"][src].items()})
            if "median" in r.get("skiff", {}) and "median" in r.get("containerd", {}):
                r["ratio"] = r["skiff"]["median"] / r["containerd"]["median"]
                r["target"]["met"] = r["ratio"] <= r["target"]["value"]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": host.machine_info(),
        "versions": versions(args.bin_dir),
        "plan": {k: v for k, v in vars(plan).items()},
        "duration_s": round(time.time() - started, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "launcher_floor_ms": extras.get("launcher", {}).get("floor", {}).get("median"),
    }
    text = table(rows, meta)
    phase_text = "\n\n".join(phases.render(n, extras[n]["phases"]) for n in ("skiff", "containerd")
                             if "phases" in extras.get(n, {}))
    if phase_text:
        text += "\n\nPhases (helper exec/exit times, median):\n" + phase_text
    print(text)
    if cleanup_notes:
        print("\nCleanup notes:\n" + "\n".join(f"- {n}" for n in cleanup_notes))
    host.dump_json(json_path, {"meta": meta, "rows": rows, "extra": extras, "cleanup": cleanup_notes, "table": text})
    print(f"\nwrote {json_path} ({meta['duration_s']} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
