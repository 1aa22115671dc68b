"""A real Ray cluster on this machine: a head node and a second node, each a `ray start`
process of its own, told apart by a custom resource (`head`, `second`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

RAY = str(Path(sys.executable).with_name("ray"))


@dataclass
class RayNode:
    resource: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """Kill the node as a crash does: every one of its processes at once, by SIGKILL."""
        tree = [self.process, *psutil.Process(self.process.pid).children(recursive=True)]
        for process in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """The cluster is the tests' own: its processes are killed, not shut down politely
        (a head whose other node was killed waits long for it)."""
        if self.process.poll() is None:
            self.kill()


@dataclass
class RayCluster:
    address: str
    head: RayNode
    second: RayNode
    temp_dir: Path

    def node_resource(self, node_id: str) -> str:
        """Which of the two nodes (`head` or `second`) a Ray node id is."""
        import ray

        for node in ray.nodes():
            if node["NodeID"] == node_id:
                return "head" if "head" in node["Resources"] else "second"
        raise KeyError(node_id)


def _start_node(
    resource: str, cpus: int, temp_dir: Path, head_port: int | None = None, address: str = ""
) -> RayNode:
    ports = {
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
    }
    argv = [RAY, "start", "--block", f"--num-cpus={cpus}", f'--resources={{"{resource}": 1}}']
    argv += [f"{flag}={port}" for flag, port in ports.items()]
    if head_port is not None:
        argv += [
            "--head",
            f"--port={head_port}",
            f"--ray-client-server-port={free_port()}",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
        ]
    else:
        argv += [f"--address={address}"]
    log = (temp_dir / f"ray-{resource}.log").open("ab")
    # A node killed is seen dead within about 2 s instead of Ray's default 15 or more.
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "500",
        "RAY_health_check_failure_threshold": "3",
    }
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    return RayNode(resource, process)


def _wait_for_nodes(count: int, address: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run(
            [RAY, "status", f"--address={address}"], capture_output=True, text=True
        )
        if status.returncode == 0 and status.stdout.count("node_") >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the Ray cluster did not reach {count} nodes:\n{status.stdout}")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """Two nodes of two CPUs each; the test process is not attached to it (a backend is)."""
    # Ray's socket paths must stay short: its session folder lives in a short temp dir.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-"))
    head_port = free_port()
    address = f"127.0.0.1:{head_port}"
    head = _start_node("head", 2, temp_dir, head_port=head_port)
    second: RayNode | None = None
    try:
        _wait_for_nodes(1, address)
        second = _start_node("second", 2, temp_dir, address=address)
        _wait_for_nodes(2, address)
        yield RayCluster(address, head, second, temp_dir)
    finally:
        if second is not None:
            second.stop()
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
