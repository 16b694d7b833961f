"""A pod and a container driven end to end through grpcio: an independent gRPC/protobuf stack."""
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import grpc
import pytest
from runtime.v1 import api_pb2 as cri
from skiff.v1 import pulls_pb2 as skiff

from conftest import ROOT


@pytest.fixture(scope="module")
def registry():
    work = tempfile.mkdtemp(prefix="skiff-pytest-registry-")
    try:
        subprocess.run([os.path.join(ROOT, "scripts", "build-test-images"), work + "/layout"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = subprocess.run([os.path.join(ROOT, "scripts", "test-registry"), "start", work + "/registry"], check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True).stdout
        address = out.split()[0]
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{work}/layout:latest",
                        f"docker://{address}/busybox:latest"], check=True)
        yield address
    finally:
        subprocess.run([os.path.join(ROOT, "scripts", "test-registry"), "stop", work + "/registry"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def test_container_lifecycle(registry, runtime, images, daemon):
    image = f"{registry}/busybox:latest"
    ref = images.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=image)), timeout=120).image_ref
    assert ref.startswith("sha256:")
    status = images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=image)))
    assert status.image.id == ref
    assert images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image="no/such:image"))).image.id == ""

    name = "py-" + uuid.uuid4().hex[:6]
    pod_config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="skiff-tests", uid=name),
        hostname="py-host", log_directory=os.path.join(daemon.dir, "logs"),
        linux=cri.LinuxPodSandboxConfig(cgroup_parent=f"/skiff-pytest-{name}"))
    pod = runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=pod_config), timeout=60).pod_sandbox_id
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="main"), image=cri.ImageSpec(image=image),
        command=["sh", "-c", "echo hello-from-python; trap 'exit 0' TERM; while true; do sleep 0.1; done"],
        envs=[cri.KeyValue(key="GREETING", value=b"hi")], log_path="main.log")
    cid = runtime.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=pod, config=config, sandbox_config=pod_config),
                                  timeout=60).container_id
    assert runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid)).status.state == cri.CONTAINER_CREATED
    runtime.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=60)
    st = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid)).status
    assert st.state == cri.CONTAINER_RUNNING and st.started_at > 0

    r = runtime.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $GREETING; hostname; exit 4"], timeout=30),
                         timeout=60)
    assert r.stdout == b"hi\npy-host\n" and r.exit_code == 4

    listed = runtime.ListContainers(cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=pod))).containers
    assert [c.id for c in listed] == [cid]

    runtime.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=10), timeout=60)
    st = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid)).status
    assert st.state == cri.CONTAINER_EXITED and st.exit_code == 0 and st.reason == "Completed"
    deadline = time.time() + 30
    log = ""
    while "hello-from-python" not in log and time.time() < deadline:
        log = open(st.log_path).read()
        time.sleep(0.05)
    assert " stdout F hello-from-python\n" in log

    runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=60)
    runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert len(runtime.ListPodSandbox(cri.ListPodSandboxRequest()).items) == 0
    for controller in os.listdir("/sys/fs/cgroup"):
        path = f"/sys/fs/cgroup/{controller}/skiff-pytest-{name}"
        if os.path.isdir(path):
            assert not [d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))], f"cgroups left in {path}"
            os.rmdir(path)


def test_list_pulls_reports_the_pull(registry, images, pulls):
    image = f"{registry}/busybox:latest"
    assert list(pulls.ListPulls(skiff.ListPullsRequest()).pulls) == []
    ref = images.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=image)), timeout=120).image_ref
    listed = pulls.ListPulls(skiff.ListPullsRequest(image=f"{registry}/busybox")).pulls
    assert len(listed) == 1
    p = listed[0]
    assert p.reference == image and p.phase == skiff.PULL_COMPLETE and p.image_id == ref
    assert p.finished_at >= p.started_at > 0
    assert [(l.state, l.downloaded == l.size > 0) for l in p.layers] == [(skiff.LAYER_DONE, True)]
    with pytest.raises(grpc.RpcError) as e:
        pulls.ListPulls(skiff.ListPullsRequest(image="Not Valid"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
