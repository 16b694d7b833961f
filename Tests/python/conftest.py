"""Fixtures for driving skiffd through an independent gRPC implementation (grpcio).

Stubs are compiled from the project's own proto/ by grpcio-tools at test time, so these tests check that
the schema and skiffd's wire behaviour agree with a second, unrelated protobuf/gRPC stack.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GENERATED = os.path.join(ROOT, "Tests", "python", "generated")


def _compile_stubs():
    from grpc_tools import protoc

    os.makedirs(GENERATED, exist_ok=True)
    for schema in (("runtime", "v1", "api.proto"), ("skiff", "v1", "pulls.proto")):
        rc = protoc.main([
            "grpc_tools.protoc",
            f"-I{os.path.join(ROOT, 'proto')}",
            f"--python_out={GENERATED}",
            f"--grpc_python_out={GENERATED}",
            os.path.join(ROOT, "proto", *schema),
        ])
        assert rc == 0, "grpc_tools.protoc failed on proto/" + "/".join(schema)
    for d, _, _ in os.walk(GENERATED):
        open(os.path.join(d, "__init__.py"), "a").close()
    sys.path.insert(0, GENERATED)


_compile_stubs()


def skiff_bin():
    b = os.environ.get("SKIFF_BIN")
    if b:
        return b
    return subprocess.check_output(["swift", "build", "--show-bin-path"], cwd=ROOT, text=True).strip()


class Daemon:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="skiff-pytest-")
        self.socket = os.path.join(self.dir, "skiff.sock")
        self.log = open(os.path.join(self.dir, "skiffd.log"), "w+")
        self.proc = subprocess.Popen(
            [os.path.join(skiff_bin(), "skiffd"), "--socket", self.socket,
             "--root", os.path.join(self.dir, "root"), "--state", os.path.join(self.dir, "state"),
             "--log-level", "debug"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("skiffd did not start: " + self.logs())
            time.sleep(0.05)

    def logs(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon():
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture
def channel(daemon):
    import grpc

    ch = grpc.insecure_channel("unix://" + daemon.socket)
    yield ch
    ch.close()


@pytest.fixture
def runtime(channel):
    from runtime.v1 import api_pb2_grpc

    return api_pb2_grpc.RuntimeServiceStub(channel)


@pytest.fixture
def images(channel):
    from runtime.v1 import api_pb2_grpc

    return api_pb2_grpc.ImageServiceStub(channel)


@pytest.fixture
def pulls(channel):
    """Skiff's own skiff.v1 PullProgressService, on the same socket."""
    from skiff.v1 import pulls_pb2_grpc

    return pulls_pb2_grpc.PullProgressServiceStub(channel)
