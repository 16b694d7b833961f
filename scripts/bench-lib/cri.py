"""One CRI client for both runtimes: grpcio stubs compiled from the project's proto/ at run time.

The same request builders are used for Skiff and containerd, so every row compares the same calls with
the same configs. Every call is timed on the client side (monotonic clock, request sent → response read).
"""
import os
import sys
import time

_api = None
_grpc_api = None


def load_stubs(root, workdir):
    """Compiles proto/runtime/v1/api.proto with grpcio-tools into workdir and imports it."""
    global _api, _grpc_api
    from grpc_tools import protoc

    out = os.path.join(workdir, "stubs")
    os.makedirs(out, exist_ok=True)
    rc = protoc.main([
        "grpc_tools.protoc", f"-I{os.path.join(root, 'proto')}", f"--python_out={out}", f"--grpc_python_out={out}",
        os.path.join(root, "proto", "runtime", "v1", "api.proto"),
    ])
    if rc != 0:
        raise SystemExit("bench: grpc_tools.protoc failed on proto/runtime/v1/api.proto")
    for d, _, _ in os.walk(out):
        open(os.path.join(d, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    from runtime.v1 import api_pb2, api_pb2_grpc
    _api, _grpc_api = api_pb2, api_pb2_grpc
    return api_pb2


class CallFailed(Exception):
    """A CRI call that returned a gRPC error: names the method, the status code and the runtime's message."""

    def __init__(self, runtime, method, code, details):
        super().__init__(f"{runtime}: {method} failed: {code}: {details}")
        self.runtime, self.method, self.code, self.details = runtime, method, code, details


# Kubelet's defaults for a non-privileged container (pkg/securitycontext): the same lists go to both runtimes.
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


class Client:
    def __init__(self, name, socket):
        import grpc
        self.grpc = grpc
        self.name = name
        self.channel = grpc.insecure_channel("unix://" + socket, options=[
            ("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
        self.rt = _grpc_api.RuntimeServiceStub(self.channel)
        self.img = _grpc_api.ImageServiceStub(self.channel)

    def close(self):
        self.channel.close()

    def call(self, method, request, timeout=120.0, image=False):
        """Calls `method`; returns (response, elapsed ms). A gRPC error becomes CallFailed."""
        fn = getattr(self.img if image else self.rt, method)
        t0 = time.perf_counter_ns()
        try:
            response = fn(request, timeout=timeout)
        except self.grpc.RpcError as e:
            raise CallFailed(self.name, method, e.code().name, e.details()) from None
        return response, (time.perf_counter_ns() - t0) / 1e6

    # ---- requests -------------------------------------------------------------------------------------

    def version(self):
        return self.call("Version", _api.VersionRequest(), timeout=5)[0]

    def pull(self, image):
        return self.call("PullImage", _api.PullImageRequest(image=_api.ImageSpec(image=image)), timeout=300, image=True)

    def run_pod(self, config):
        r, ms = self.call("RunPodSandbox", _api.RunPodSandboxRequest(config=config))
        return r.pod_sandbox_id, ms

    def stop_pod(self, pod_id):
        return self.call("StopPodSandbox", _api.StopPodSandboxRequest(pod_sandbox_id=pod_id))[1]

    def remove_pod(self, pod_id):
        return self.call("RemovePodSandbox", _api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))[1]

    def create(self, pod_id, config, pod_config):
        r, ms = self.call("CreateContainer", _api.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config))
        return r.container_id, ms

    def start(self, cid):
        return self.call("StartContainer", _api.StartContainerRequest(container_id=cid))[1]

    def stop(self, cid, timeout=10):
        return self.call("StopContainer", _api.StopContainerRequest(container_id=cid, timeout=timeout),
                         timeout=timeout + 60)[1]

    def remove(self, cid):
        return self.call("RemoveContainer", _api.RemoveContainerRequest(container_id=cid))[1]

    def exec_sync(self, cid, cmd, timeout=10):
        r, ms = self.call("ExecSync", _api.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                          timeout=timeout + 30)
        return r, ms

    def list_containers(self, pod_id=None):
        f = _api.ContainerFilter(pod_sandbox_id=pod_id) if pod_id else None
        r, ms = self.call("ListContainers", _api.ListContainersRequest(filter=f))
        return r.containers, ms

    def list_pods(self):
        r, ms = self.call("ListPodSandbox", _api.ListPodSandboxRequest())
        return r.items, ms

    def container_status(self, cid):
        return self.call("ContainerStatus", _api.ContainerStatusRequest(container_id=cid))[0].status


# ---- configs (the same for both runtimes) ---------------------------------------------------------------

def pod_config(name, host_network, log_dir, cgroup_root):
    """A pod as kubelet would send it: metadata, labels, log dir, its own cgroup parent, namespace modes."""
    api = _api
    uid = "uid-" + name
    mode = api.NODE if host_network else api.POD
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace="skiff-bench", uid=uid, attempt=0),
        hostname="" if host_network else name,
        log_directory=os.path.join(log_dir, name),
        labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "skiff-bench", "io.kubernetes.pod.uid": uid},
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=f"{cgroup_root}/pod-{name}",
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=api.NamespaceOption(network=mode, pid=api.CONTAINER, ipc=api.POD))))


def container_config(name, image, command, host_network):
    api = _api
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=0),
        image=api.ImageSpec(image=image),
        command=command,
        log_path=f"{name}/0.log",
        labels={"io.kubernetes.container.name": name},
        linux=api.LinuxContainerConfig(
            resources=api.LinuxContainerResources(cpu_shares=2, oom_score_adj=1000),
            security_context=api.LinuxContainerSecurityContext(
                namespace_options=api.NamespaceOption(
                    network=api.NODE if host_network else api.POD, pid=api.CONTAINER, ipc=api.POD),
                masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS)))
