from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sluice.cli.main import SUBCOMMANDS, cli
from tests import models
from tests.conftest import RunningServer, free_port


def _help_targets() -> list[list[str]]:
    targets = [[]]
    for name in SUBCOMMANDS:
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        targets.append([name])
        for sub in getattr(command, "commands", {}):
            targets.append([name, sub])
    return targets


@pytest.mark.parametrize("args", _help_targets(), ids=lambda a: " ".join(a) or "sluice")
def test_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from sluice.cli.main import main; sys.argv=['sluice','--help'];\n"
        "try: main()\nexcept SystemExit: pass\n"
        "print(sorted(m for m in ('numpy','sqlalchemy','ray','sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")


def test_unreachable_server_is_one_line_and_exit_1() -> None:
    result = CliRunner().invoke(cli, ["--url", f"http://127.0.0.1:{free_port()}", "models", "list"])
    assert result.exit_code == 1
    assert "is `sluice server` running there?" in result.output
    assert "Traceback" not in result.output


def test_bad_variant_option() -> None:
    result = CliRunner().invoke(cli, ["endpoint-configs", "create", "c", "--variant", "name=A"])
    assert result.exit_code == 2 and "name= and model= are required" in result.output


@pytest.mark.slow
def test_a_whole_session_from_the_command_line(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    run = CliRunner().invoke
    base = ["--url", server.url]
    steps = [
        ["models", "create", "lr", "--artifact", str(artifacts["logreg_tar"])],
        ["models", "create", "tree", "--artifact", str(artifacts["tree"]), "--env", "A=1"],
        [
            "endpoint-configs",
            "create",
            "cfg",
            "--variant",
            "name=A,model=lr,weight=1",
            "--variant",
            "name=B,model=tree,weight=1,instances=2",
            "--shadow",
            "name=S,model=tree,sampling=50",
            "--capture",
        ],
        ["endpoints", "create", "digits", "--config", "cfg"],
        ["endpoints", "update-weights", "digits", "A=1", "B=0"],
    ]
    for args in steps:
        result = run(cli, base + args)
        assert result.exit_code == 0, (args, result.output)
    result = run(cli, base + ["endpoints", "describe", "digits"])
    described = json.loads(result.output)
    assert described["status"] == "InService"
    assert {v["name"]: v["current_weight"] for v in described["variants"]} == {
        "A": 1.0,
        "B": 0.0,
        "S": 0.0,
    }
    row = json.dumps([models.digits()[0][3].tolist()])
    result = run(cli, base + ["invoke", "digits", "--data", row])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["predictions"] == [int(models.digits()[1][3])]
    for listing in (["models", "list"], ["endpoint-configs", "list"], ["endpoints", "list"]):
        result = run(cli, base + listing)
        assert result.exit_code == 0 and "digits" in result.output or "lr" in result.output
    result = run(cli, base + ["endpoints", "delete", "nope"])
    assert (
        result.exit_code == 1
        and "ResourceNotFound (name): endpoint 'nope' does not exist" in result.output
    )
    result = run(cli, base + ["endpoints", "delete", "digits"])
    assert result.exit_code == 0
