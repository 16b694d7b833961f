"""Where the time of "pod + container from nothing to running" goes, per runtime (`scripts/bench --phases`).

A few end-to-end iterations run under `perf record` of the scheduler's exec/exit/fork tracepoints on
CLOCK_MONOTONIC (the client's clock too). The helpers each runtime starts (containerd-shim, runc, CNI
plugins, pause; skiff-monitor, skiff-runc, loopback, pause) are picked from our own process tree (fork
events from the reaper down), so other work on the machine does not leak in. For every iteration the
exec and exit of each helper is placed relative to the RunPodSandbox call's start; the medians over the
iterations form a timeline. Gaps in it are time spent in the daemon itself (or waiting on it), which the
daemon's CPU time per iteration (utime+stime, averaged: 10 ms ticks) then splits into CPU vs waiting.
"""
import os
import re
import signal
import statistics
import subprocess
import time

import host

EVENT_RE = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$")


def _cpu_ms(pid):
    """utime + stime of the whole process (exited threads included), in ms (10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _parse(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,pid,cpu,time,event,trace"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    events = []
    for line in out.splitlines():
        m = EVENT_RE.match(line)
        if m:
            events.append((float(m.group(3)), m.group(1).strip(), int(m.group(2)), m.group(4), m.group(5)))
    return events


def _field(rest, name):
    m = re.search(rf"\b{name}=(\S+)", rest)
    return m.group(1) if m else None


def measure(bench, iterations, workdir, pod_cfg_fn, container_fn):
    """Runs `iterations` e2e cycles under perf; returns {"timeline": [...], "daemon_cpu_ms": ..., ...}."""
    if subprocess.run(["which", "perf"], stdout=subprocess.DEVNULL).returncode != 0:
        return {"error": "perf not installed (Debian package linux-perf)"}
    data = os.path.join(workdir, f"phases-{bench.rt.name}.data")
    perf = subprocess.Popen(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-a", "-o", data,
                             "-e", "sched:sched_process_fork", "-e", "sched:sched_process_exec",
                             "-e", "sched:sched_process_exit"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)
    if perf.poll() is not None:
        return {"error": f"perf record failed: {perf.stderr.read().decode(errors='replace')[-300:]}"}
    marks, cpu = [], []
    daemon = bench.rt.proc.pid
    # Forks from before the recording are not in it: start from everything under the reaper now.
    ours = {host.REAPER_PID, os.getpid()} | set(host.descendants())
    try:
        for _ in range(iterations):
            c0 = _cpu_ms(daemon)
            t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
            pid, cfg, _ = pod_cfg_fn()
            t1 = time.clock_gettime(time.CLOCK_MONOTONIC)
            cid, _, _ = container_fn(pid, cfg)
            t3 = time.clock_gettime(time.CLOCK_MONOTONIC)
            cpu.append(_cpu_ms(daemon) - c0)
            marks.append((t0, t1, t3))
            time.sleep(0.2)
            bench.c.stop_pod(pid)
            bench.c.remove(cid)
            bench.c.remove_pod(pid)
            time.sleep(0.2)
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    events = _parse(data)
    os.unlink(data)

    # Our process tree, rebuilt from fork events: everything forked below what was ours at the start.
    for ts, comm, pid, kind, rest in events:
        if kind == "sched_process_fork":
            parent, child = int(_field(rest, "pid") or pid), int(_field(rest, "child_pid") or 0)
            if parent in ours or pid in ours:
                ours.add(child)
    names = {}
    per_iter = []
    for t0, t1, t3 in marks:
        seen, seq = {}, []
        for ts, comm, pid, kind, rest in events:
            if ts < t0 or ts > t3 + 0.005 or pid not in ours:
                continue
            if kind == "sched_process_exec":
                name = os.path.basename(_field(rest, "filename") or comm)
                if name == "exe" or name.isdigit():  # runc re-executes itself (/proc/self/exe, a memfd copy)
                    name = f"{comm} re-exec"
                names[pid] = name
                n = seen.get(name, 0) + 1
                seen[name] = n
                seq.append((f"{name}#{n} exec", (ts - t0) * 1000, pid))
            elif kind == "sched_process_exit" and _field(rest, "group_dead") != "false" and pid in names:
                label = next((l.replace(" exec", " exit") for l, _, p in reversed(seq) if p == pid and l.endswith(" exec")), None)
                if label:
                    seq.append((label, (ts - t0) * 1000, pid))
        seq.append(("RunPodSandbox returns", (t1 - t0) * 1000, 0))
        seq.append(("StartContainer returns", (t3 - t0) * 1000, 0))
        per_iter.append(seq)
    # Medians per label, kept in the order the labels first appear; labels seen in under half the runs dropped.
    order, values = [], {}
    for seq in per_iter:
        for label, ms, _ in seq:
            if label not in values:
                order.append(label)
                values[label] = []
            values[label].append(ms)
    timeline = [{"event": l, "median_ms": statistics.median(values[l]), "seen": len(values[l])}
                for l in order if len(values[l]) * 2 >= len(per_iter)]
    timeline.sort(key=lambda e: e["median_ms"])
    return {"iterations": len(marks), "timeline": timeline,
            "daemon_cpu_ms_per_iteration": sum(cpu) / len(cpu) if cpu else None,
            "e2e_ms_median": statistics.median([(t3 - t0) * 1000 for t0, _, t3 in marks])}


def render(name, result):
    if "error" in result:
        return f"{name}: phases not measured: {result['error']}"
    lines = [f"{name}: pod (pod network) + container, {result['iterations']} runs, medians from RunPodSandbox start; "
             f"daemon CPU {result['daemon_cpu_ms_per_iteration']:.1f} ms per run of {result['e2e_ms_median']:.1f} ms"]
    prev = 0.0
    for e in result["timeline"]:
        lines.append(f"  {e['median_ms']:8.1f} ms  (+{e['median_ms'] - prev:6.1f})  {e['event']}")
        prev = e["median_ms"]
    return "\n".join(lines)
