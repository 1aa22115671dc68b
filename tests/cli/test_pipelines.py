"""`sluice pipeline run` as CI uses it (exit code, JUnit report, the cache), `why-miss`,
and `sluice jobs` on the jobs a pipeline ran."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from sluice.cli.main import cli
from tests.conftest import RunningServer
from tests.e2e.test_pipeline_executions import DEFINITION, PROBE, SPLIT, data  # noqa: F401

pytestmark = pytest.mark.slow


def test_a_pipeline_run_from_the_command_line(
    server: RunningServer,
    data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    split, probe = (dict(step) for step in DEFINITION["Steps"][:2])
    split["CacheConfig"] = {"Enabled": True, "ExpireAfter": "PT1H"}
    definition = {**DEFINITION, "Steps": [split, probe]}
    path = tmp_path / "nightly.json"
    path.write_text(json.dumps(definition))
    (data / "flag" / "flag.txt").write_text("ok")
    run = CliRunner(env={"COLUMNS": "240"}).invoke  # room for the tables' columns
    base = ["--url", server.url]

    report = tmp_path / "report.xml"
    first = run(
        cli,
        [
            *base,
            "pipeline",
            "run",
            "--definition",
            str(path),
            "-p",
            "Pause=0",
            "--junit",
            str(report),
        ],
    )
    assert first.exit_code == 0, first.output
    suite = ET.parse(report).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")
    assert {case.get("name") for case in suite} == {"Split", "Probe"}

    second = run(cli, [*base, "pipeline", "run", "--definition", str(path), "-p", "Pause=0"])
    assert second.exit_code == 0, second.output
    assert "hit (" in second.output.split("│ Split")[1].split("\n")[0]
    executions = run(cli, [*base, "pipeline", "executions", "nightly"])
    assert executions.output.count("Succeeded") == 2

    # New code for the split: it runs again, and why-miss names the input that changed.
    (data / "code" / "split.py").write_text(textwrap.dedent(SPLIT) + "\nprint('v2')\n")
    third = run(cli, [*base, "pipeline", "run", "--definition", str(path), "-p", "Pause=0"])
    assert third.exit_code == 0 and "hit (" not in third.output
    execution = third.output.split("execution ", 1)[1].split()[0]
    why = run(cli, [*base, "pipeline", "why-miss", execution, "Split"])
    assert (
        "ProcessingInputs[0].S3Input.S3Uri holds other bytes now (s3://data/code/split.py)"
        in why.output
    )

    # A failing step: exit code 1, and the report says which step failed.
    (data / "flag" / "flag.txt").write_text("bad")
    failed = run(
        cli,
        [
            *base,
            "pipeline",
            "run",
            "--definition",
            str(path),
            "-p",
            "Pause=0",
            "--junit",
            str(report),
        ],
    )
    assert failed.exit_code == 1
    failures = [
        case.get("name") for case in ET.parse(report).getroot() if case.find("failure") is not None
    ]
    assert failures == ["Probe"]

    # Only the failed step again, once its flag is right (a selective execution).
    (data / "flag" / "flag.txt").write_text("ok")
    source = failed.output.split("execution ", 1)[1].split()[0]
    again = run(
        cli,
        [*base, "pipeline", "start", "nightly", "--step", "Probe", "--from", source, "--wait"],
    )
    assert again.exit_code == 0, again.output
    assert "│ Probe" in again.output and "│ Split" not in again.output
    refused = run(cli, [*base, "pipeline", "start", "nightly", "--step", "Nope"])
    assert refused.exit_code != 0 and "the pipeline has no step 'Nope'" in refused.output

    jobs = run(cli, [*base, "jobs", "list", "--kind", "processing", "--status", "Failed"])
    assert jobs.exit_code == 0 and "exited with code 3" in jobs.output
    name = next(
        line.split("│")[2].strip() for line in jobs.output.splitlines() if "pipelines-" in line
    )
    logs = run(cli, [*base, "jobs", "logs", "processing", name])
    assert "flag bad" in logs.output


def test_pipeline_files_are_checked_before_anything_is_sent(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = CliRunner().invoke(cli, ["pipeline", "run", "--definition", str(bad)])
    assert result.exit_code == 1 and "does not hold a pipeline definition" in result.output
    assert PROBE  # the probe script of the shared fixture data
