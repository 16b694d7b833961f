"""skiffd's foundation methods, called through grpcio with stubs compiled from proto/."""
import socket

import grpc
import pytest
from runtime.v1 import api_pb2 as cri


def test_version(runtime):
    r = runtime.Version(cri.VersionRequest(version="v1"))
    assert r.runtime_name == "skiff"
    assert r.runtime_api_version == "v1"
    assert r.version == "0.1.0"
    assert r.runtime_version


def test_status_conditions_and_verbose_config(runtime):
    r = runtime.Status(cri.StatusRequest(verbose=True))
    conditions = {c.type: c for c in r.status.conditions}
    assert conditions["RuntimeReady"].status is True
    assert "NetworkReady" in conditions
    if not conditions["NetworkReady"].status:
        assert conditions["NetworkReady"].reason
    assert '"socket"' in r.info["config"]
    plain = runtime.Status(cri.StatusRequest())
    assert len(plain.info) == 0


def test_runtime_config_reports_cgroupfs(runtime):
    r = runtime.RuntimeConfig(cri.RuntimeConfigRequest())
    assert r.linux.cgroup_driver == cri.CGROUPFS


def test_image_fs_info(images):
    r = images.ImageFsInfo(cri.ImageFsInfoRequest())
    assert len(r.image_filesystems) == 1
    fs = r.image_filesystems[0]
    assert fs.fs_id.mountpoint
    assert fs.timestamp > 1_600_000_000 * 10**9  # nanoseconds


def test_unimplemented_method(runtime):
    with pytest.raises(grpc.RpcError) as e:
        runtime.CheckpointContainer(cri.CheckpointContainerRequest(container_id="x"))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_garbage_on_socket_does_not_take_server_down(daemon, runtime):
    for payload in [b"\x00\x01garbage\xff" * 100, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64, b""]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(daemon.socket)
        s.sendall(payload)
        s.close()
    # A half-open connection that never speaks stays open while others are served.
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(daemon.socket)
    try:
        assert runtime.Version(cri.VersionRequest()).runtime_name == "skiff"
    finally:
        idle.close()
    assert daemon.proc.poll() is None


def test_malformed_message_is_invalid_argument(channel):
    call = channel.unary_unary("/runtime.v1.RuntimeService/Version",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"\x0a\xff\xff\xff\xff\x0f")  # field 1, length far beyond the message
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ok = channel.unary_unary("/runtime.v1.RuntimeService/Version",
                             request_serializer=lambda b: b, response_deserializer=cri.VersionResponse.FromString)
    assert ok(b"").runtime_name == "skiff"


def test_oversized_message_is_resource_exhausted(channel):
    call = channel.unary_unary("/runtime.v1.RuntimeService/Version",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    big = cri.VersionRequest(version="x" * (17 * 1024 * 1024)).SerializeToString()
    with pytest.raises(grpc.RpcError) as e:
        call(big)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ok = channel.unary_unary("/runtime.v1.RuntimeService/Version",
                             request_serializer=lambda b: b, response_deserializer=cri.VersionResponse.FromString)
    assert ok(b"").runtime_name == "skiff"
