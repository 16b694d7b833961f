"""The two runtimes under test, each started by the benchmark with its own config, root, state and socket
under the run's temp dir, and stopped (with everything it left) before the other one starts."""
import os
import signal
import subprocess
import time

import cri
import host


class Runtime:
    name = "?"
    daemon_comms = ()   # comm names of the daemon itself
    helper_comms = ()   # per-pod / per-container helpers (shim, monitor)
    infra_comms = ("pause",)

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, f"{self.name}.sock")
        self.log_path = os.path.join(self.dir, f"{self.name}.log")
        self.proc = None
        self.client = None

    # Subclasses: argv(), prepare()
    def start(self):
        self.prepare()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start; log:\n{self.log_tail()}")
            if os.path.exists(self.socket):
                try:
                    self.client = cri.Client(self.name, self.socket)
                    v = self.client.version()
                    self.version = f"{v.runtime_name} {v.runtime_version}"
                    return
                except cri.CallFailed:
                    self.client.close()
                    self.client = None
            if time.time() > deadline:
                raise RuntimeError(f"{self.name} did not answer Version within 60 s; log:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def processes(self):
        """{role: [(pid, comm)]} of the daemon and its helpers (found among our descendants: we are the
        subreaper of the detached ones). Container workloads (sleep, sh) are not counted."""
        roles = {"daemon": [], "helpers": [], "infra": []}
        for pid, comm in host.descendants().items():
            if pid == self.proc.pid or comm in self.daemon_comms and self._is_ours(pid):
                roles["daemon"].append((pid, comm))
            elif comm in self.helper_comms:
                roles["helpers"].append((pid, comm))
            elif comm in self.infra_comms:
                roles["infra"].append((pid, comm))
        return roles

    def _is_ours(self, pid):
        return pid == self.proc.pid

    def memory(self):
        """Sum of RSS and PSS (KiB) per role and in total."""
        out = {"total_rss_kib": 0, "total_pss_kib": 0}
        for role, procs in self.processes().items():
            rss = pss = 0
            for pid, _ in procs:
                r, p = host.memory_of(pid)
                rss += r
                pss += p
            out[role] = {"count": len(procs), "rss_kib": rss, "pss_kib": pss}
            out["total_rss_kib"] += rss
            out["total_pss_kib"] += pss
        return out

    def stop(self):
        """Stops the daemon, then any helper it left running (after pods were removed there should be none)."""
        if self.client:
            self.client.close()
            self.client = None
        leftovers = []
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        stray = {pid: comm for pid, comm in host.descendants().items()
                 if comm in self.helper_comms + self.infra_comms + ("sleep", "sh", "runc", "skiff-runc")}
        if stray:
            leftovers.append(f"{len(stray)} processes still running after stop: "
                             + ", ".join(sorted(set(stray.values()))))
            host.kill_tree(list(stray))
        return leftovers


def write_pod_network(directory, bridge):
    """The pod network both runtimes get: a bridge with host-local IPAM (each adds the loopback itself).
    Returns the CNI config directory."""
    conf = os.path.join(directory, "cni-conf")
    ipam = os.path.join(directory, "ipam")
    os.makedirs(conf, exist_ok=True)
    os.makedirs(ipam, exist_ok=True)
    with open(os.path.join(conf, "10-skiff-bench.conflist"), "w") as f:
        f.write(f"""{{"cniVersion": "0.4.0", "name": "skiff-bench", "plugins": [
  {{"type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {{"type": "host-local", "dataDir": "{ipam}", "ranges": [[{{"subnet": "10.88.0.0/16"}}]],
             "routes": [{{"dst": "0.0.0.0/0"}}]}}}}]}}
""")
    return conf


class Skiff(Runtime):
    name = "skiff"
    daemon_comms = ("skiffd",)
    helper_comms = ("skiff-monitor",)

    def __init__(self, workdir, bin_dir, registry_addr, cgroup_root, log_level, cni_bin_dir):
        super().__init__(workdir)
        self.bin_dir = bin_dir
        self.cni_bin_dir = cni_bin_dir
        self.registry_addr = registry_addr
        self.cgroup_root = cgroup_root
        self.log_level = log_level

    def prepare(self):
        cfg = os.path.join(self.dir, "skiff.yaml")
        cni_conf = write_pod_network(self.dir, "skbench0")
        with open(cfg, "w") as f:
            f.write(f"""socket: {self.socket}
root: {self.dir}/root
state: {self.dir}/state
log_level: {self.log_level}
cgroup_parent: {self.cgroup_root}/skiffd-default
bin_dir: {self.bin_dir}
cni_conf_dir: {cni_conf}
cni_plugin_dirs: ["{self.cni_bin_dir}"]
registry:
  registries:
    docker.io:
      mirrors: ["{self.registry_addr}"]
""")
        self.config = cfg

    def argv(self):
        return [os.path.join(self.bin_dir, "skiffd"), "--config", self.config]

    def mount_prefixes(self):
        return [self.dir]


class Containerd(Runtime):
    name = "containerd"
    daemon_comms = ("containerd",)
    helper_comms = ("containerd-shim",)  # comm is cut to 15 chars: containerd-shim-runc-v2

    def __init__(self, workdir, registry_addr, cni_bin_dir, sandbox_image):
        super().__init__(workdir)
        self.registry_addr = registry_addr
        self.cni_bin_dir = cni_bin_dir
        self.sandbox_image = sandbox_image

    def prepare(self):
        d = self.dir
        for sub in ("root", "state", "certs.d/docker.io", f"certs.d/{self.registry_addr}", "opt", "runc"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        write_pod_network(d, "skbench0")
        # docker.io/* comes from the local registry (plain HTTP); so does the registry's own name.
        with open(os.path.join(d, "certs.d/docker.io/hosts.toml"), "w") as f:
            f.write(f'server = "https://registry-1.docker.io"\n\n[host."http://{self.registry_addr}"]\n'
                    f'  capabilities = ["pull", "resolve"]\n')
        with open(os.path.join(d, f"certs.d/{self.registry_addr}/hosts.toml"), "w") as f:
            f.write(f'server = "http://{self.registry_addr}"\n')
        self.config = os.path.join(d, "config.toml")
        with open(self.config, "w") as f:
            f.write(f"""version = 2
root = "{d}/root"
state = "{d}/state"
oom_score = 0

[grpc]
  address = "{self.socket}"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{self.sandbox_image}"
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    disable_tcp_service = true
    enable_selinux = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{self.cni_bin_dir}"
      conf_dir = "{d}/cni-conf"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "runc"
          Root = "{d}/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "{d}/certs.d"
""")

    def argv(self):
        return ["containerd", "--config", self.config, "--log-level", "warn"]

    def mount_prefixes(self):
        return [self.dir]
