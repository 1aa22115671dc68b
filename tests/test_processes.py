"""Who holds a lease, and whether that process is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from sluice.processes import runner_id, runner_is_gone


def test_a_runner_is_gone_when_its_process_is() -> None:
    me = runner_id()
    host = socket.gethostname()
    assert not runner_is_gone(me, me)
    assert runner_is_gone(f"{host}:{os.getpid()}:earlier", me)  # a former life, same pid
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert runner_is_gone(f"{host}:{child.stdout.strip()}:abcd", me)
    assert not runner_is_gone(f"{host}:1:abcd", me)  # alive (init)
    assert not runner_is_gone(f"another-host:{child.stdout.strip()}:abcd", me)
    assert not runner_is_gone("not-a-runner", me)


def test_alone_a_runner_on_another_host_was_this_server_before() -> None:
    """A server that shares its database with no other gateway (a container made again
    under a new host name) takes over the work its earlier life left."""
    me = runner_id()
    assert runner_is_gone("old-container:1:abcd", me, alone=True)
    assert not runner_is_gone("old-container:1:abcd", me, alone=False)
    assert not runner_is_gone(f"{socket.gethostname()}:1:abcd", me, alone=True)  # alive here
    assert not runner_is_gone(me, me, alone=True)
