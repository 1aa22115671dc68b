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
