from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.helpers import sluice_children

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
    assert "540 answered by ['current']" in out
    assert "540 true labels posted as ground truth" in out
    assert "Shadow test logreg-shadow-test" in out and "agreement" in out
    assert "candidate against current: quality better" in out
    assert "promoting digits-logreg through a canary" in out
    assert "0 failed; experiment Completed" in out
    assert "now serves {'current': 'digits-logreg'} (InService)" in out
    assert "report page: " in out
    assert not sluice_children()
