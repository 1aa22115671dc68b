from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_story_and_leaves_nothing_running() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sluice.cli.main", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "current" in out and "candidate" in out and "agreement" in out
    assert "540 request pairs joined by inference id" in out
    assert not psutil.Process().children(recursive=True)
