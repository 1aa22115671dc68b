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


def test_policy_flags_become_a_deployment_config() -> None:
    from sluice.cli.deploy import deployment_config

    doc = deployment_config(
        "10%", None, False, None, None, "5m", "30s", "1h", ("a", "b"), True, 0.01, 0.2
    )
    assert doc == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 300,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
            "TerminationWaitInSeconds": 30,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}, {"AlarmName": "b"}]},
        "ComparativeGuard": {"ErrorRateMargin": 0.01, "LatencyMargin": 0.2},
    }
    rolling = deployment_config(None, None, False, "1", "2", "10s", "0s", None, (), False, 0, 0)
    assert rolling == {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": 10,
            "RollbackMaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 2},
        }
    }
    assert (
        deployment_config(None, None, False, None, None, "0s", "0s", None, (), False, 0, 0) is None
    )
    result = CliRunner().invoke(
        cli, ["endpoints", "update", "e", "--config", "c", "--canary", "10%", "--linear", "20%"]
    )
    assert result.exit_code == 2 and "choose one of --canary, --linear" in result.output
    result = CliRunner().invoke(
        cli, ["endpoints", "update", "e", "--config", "c", "--canary", "ten", "--wait", "1s"]
    )
    assert result.exit_code == 2 and "percentage (10%) or an instance count" in result.output


@pytest.mark.slow
def test_a_guarded_update_from_the_command_line(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    run = CliRunner().invoke
    base = ["--url", server.url]
    for name in ("logreg", "tree"):
        assert (
            run(
                cli, [*base, "models", "create", name, "--artifact", str(artifacts[name])]
            ).exit_code
            == 0
        )
    for config, model in (("v1", "logreg"), ("v2", "tree")):
        variant = f"name=A,model={model}"
        assert (
            run(cli, [*base, "endpoint-configs", "create", config, "--variant", variant]).exit_code
            == 0
        )
    assert run(cli, [*base, "endpoints", "create", "ep", "--config", "v1"]).exit_code == 0
    result = run(
        cli,
        [
            *base,
            "alarms",
            "put",
            "ep-5xx",
            "--endpoint",
            "ep",
            "--metric",
            "Invocation5XXErrors",
            "--threshold",
            "0.01",
            "--period",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    result = run(
        cli,
        [
            *base,
            "endpoints",
            "update",
            "ep",
            "--config",
            "v2",
            "--canary",
            "50%",
            "--wait",
            "1s",
            "--alarm",
            "ep-5xx",
            "--guard",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Completed" in result.output
    history = run(cli, [*base, "endpoints", "history", "ep"])
    assert history.exit_code == 0 and "v1 -> v2" in history.output and "CANARY" in history.output
    steps = run(cli, [*base, "endpoints", "deployment", "1"])
    assert steps.exit_code == 0 and "canary 50 %" in steps.output and "passed" in steps.output
    frame = run(cli, [*base, "endpoints", "watch", "ep", "--once"])
    assert frame.exit_code == 0 and "InService" in frame.output and "ep-5xx" in frame.output
    alarms = run(cli, [*base, "alarms", "list"])
    assert alarms.exit_code == 0 and "ep-5xx" in alarms.output
    assert run(cli, [*base, "alarms", "history", "ep-5xx"]).exit_code == 0
    refused = run(cli, [*base, "endpoints", "update", "ep", "--config", "v2"])
    assert refused.exit_code == 1 and "already runs endpoint config 'v2'" in refused.output


@pytest.mark.slow
def test_a_shadow_test_from_the_command_line(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    run = CliRunner().invoke
    base = ["--url", server.url]
    setup = [
        ["models", "create", "logreg", "--artifact", str(artifacts["logreg"])],
        ["models", "create", "tree", "--artifact", str(artifacts["tree"])],
        ["endpoint-configs", "create", "v1", "--variant", "name=A,model=logreg", "--capture"],
        ["endpoints", "create", "ep", "--config", "v1"],
    ]
    for args in setup:
        assert run(cli, base + args).exit_code == 0, args
    result = run(
        cli,
        base
        + ["experiments", "create", "t", "--endpoint", "ep", "--source", "A"]
        + ["--shadow", "name=cand,model=tree,sampling=100", "--start", "+1h", "--duration", "2h"],
    )
    assert result.exit_code == 0, result.output
    assert "t: Created" in result.output and "cand" in result.output
    result = run(cli, base + ["experiments", "start", "t"])
    assert result.exit_code == 0 and "t: Running" in result.output, result.output
    result = run(cli, base + ["experiments", "list"])
    assert "Running" in result.output and "cand:tree" in result.output
    x, _ = models.digits()
    for i in range(40):
        row = json.dumps([x[i].tolist()])
        assert run(cli, base + ["invoke", "ep", "--data", row]).exit_code == 0
    html = tmp_path / "report.html"
    result = run(cli, base + ["experiments", "report", "t", "--refresh", "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "cand against A" in result.output and html.read_text().startswith("<!doctype html>")
    result = run(cli, base + ["experiments", "stop", "t", "--retain", "cand", "--canary", "10%"])
    assert result.exit_code == 2 and "applies to --promote only" in result.output
    result = run(cli, base + ["experiments", "stop", "t", "--promote", "cand", "--all-at-once"])
    assert result.exit_code == 0, result.output
    assert "t: Completed" in result.output
    described = json.loads(run(cli, base + ["endpoints", "describe", "ep"]).output)
    assert [(v["name"], v["model"]) for v in described["variants"]] == [("A", "tree")]
    result = run(cli, base + ["experiments", "describe", "t"])
    assert "promoting cand" in result.output
    result = run(cli, base + ["experiments", "stop", "t"])
    assert result.exit_code == 1 and "is Completed" in result.output
