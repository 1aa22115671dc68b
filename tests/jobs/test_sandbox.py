"""The sandbox a job's program runs in: /opt/ml where it expects it, or rewritten paths;
each process held to the memory it may map."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from sluice.jobs.launch import Launch, Program
from sluice.jobs.sandbox import rewrite

SCRIPT = """
import os, sys
print("argv", sys.argv[1:])
print("env", os.environ["SM_MODEL_DIR"])
print("sees", open(sys.argv[1] + "/hello.txt").read().strip())
print("cwd", os.getcwd())
"""


def run(tmp_path: Path, isolate: bool) -> tuple[int, list[str]]:
    folder = tmp_path / "job"
    (folder / "ml" / "code").mkdir(parents=True)
    (folder / "ml" / "model").mkdir()
    (folder / "ml" / "code" / "run.py").write_text(SCRIPT)
    (folder / "ml" / "code" / "hello.txt").write_text("hello")
    lines: list[str] = []
    program = Program(
        [sys.executable, "/opt/ml/code/run.py", "/opt/ml/code"],
        {"SM_MODEL_DIR": "/opt/ml/model", "PATH": "/usr/bin:/bin"},
        "/opt/ml/code",
    )
    launch = Launch(folder, program, lines.append, isolate=isolate)
    ended = asyncio.run(launch.run(30, 5))
    return ended.exit_code, lines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="namespaces are Linux's")
def test_the_program_finds_its_folder_at_opt_ml(tmp_path: Path) -> None:
    code, lines = run(tmp_path, isolate=True)
    assert code == 0, lines
    if "mount namespace" not in lines[0]:
        pytest.skip(f"this machine refuses namespaces: {lines[0]}")
    assert lines[1:] == [
        "argv ['/opt/ml/code']",
        "env /opt/ml/model",
        "sees hello",
        "cwd /opt/ml/code",
    ]


def test_without_namespaces_the_paths_are_rewritten(tmp_path: Path) -> None:
    code, lines = run(tmp_path, isolate=False)
    root = tmp_path / "job" / "ml"
    assert code == 0, lines
    assert "rewritten" in lines[0]
    assert lines[1:] == [
        f"argv ['{root}/code']",
        f"env {root}/model",
        "sees hello",
        f"cwd {root}/code",
    ]


def test_rewrite_touches_only_paths_under_opt_ml() -> None:
    root = Path("/srv/job/ml")
    assert rewrite("/opt/ml/input/data/train", root) == "/srv/job/ml/input/data/train"
    assert rewrite("/opt/ml", root) == "/srv/job/ml"
    assert rewrite('["/opt/ml/a", "/opt/ml/b"]', root) == '["/srv/job/ml/a", "/srv/job/ml/b"]'
    assert rewrite("/opt/mlflow/x", root) == "/opt/mlflow/x"
    assert rewrite("/data/opt/ml/x", root) == "/data/opt/ml/x"
    assert rewrite("--out=/opt/ml/model", root) == "--out=/srv/job/ml/model"


def test_what_a_program_leaves_running_ends_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    from sluice.jobs import launch as launching

    monkeypatch.setattr(launching, "DRAIN_S", 0.5)
    folder = tmp_path / "job"
    (folder / "ml").mkdir(parents=True)
    leaves = "import subprocess; subprocess.Popen(['sleep', '60']); print('left one')"
    for isolate in (True, False):
        program = Program([sys.executable, "-c", leaves], {"PATH": "/usr/bin:/bin"}, "/opt/ml")
        lines: list[str] = []
        started = asyncio.run(Launch(folder, program, lines.append, isolate=isolate).run(30, 5))
        assert started.exit_code == 0 and "left one" in lines
        sleepers = [
            p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "60"]
        ]
        assert psutil.wait_procs(sleepers, timeout=5)[1] == [], isolate


@pytest.mark.parametrize("isolate", [True, False])
def test_each_process_is_held_to_the_memory_it_may_map(tmp_path: Path, isolate: bool) -> None:
    folder = tmp_path / "job"
    (folder / "ml").mkdir(parents=True)
    hungry = (
        "import resource\n"
        "print('limit', resource.getrlimit(resource.RLIMIT_AS)[0] >> 20)\n"
        "small = bytearray(64 << 20)\n"
        "print('64 MiB taken')\n"
        "bytearray(1 << 30)\n"
    )
    program = Program([sys.executable, "-c", hungry], {"PATH": "/usr/bin:/bin"}, "/opt/ml")
    lines: list[str] = []
    launch = Launch(folder, program, lines.append, isolate=isolate, memory_mb=512)
    ended = asyncio.run(launch.run(30, 5))
    assert ended.exit_code == 1
    assert "limit 512" in lines and "64 MiB taken" in lines
    assert "MemoryError" in lines
