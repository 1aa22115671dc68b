"""`sluice validate` against a running server, on models whose answers are known: the
baseline answers every row right; candidates get the first K of 100 rows wrong."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sluice.cli.main import cli
from sluice.client import Client
from tests import models
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow

WRONG_ON_FIRST = """
import numpy as np

def model_fn(model_dir):
    return {wrong}

def predict_fn(data, wrong):
    truth = data[:, 0].astype(int)
    return np.where(data[:, 1] < wrong, 1 - truth, truth)
"""


def _model(root: Path, wrong: int) -> str:
    folder = root / f"wrong-{wrong}"
    models.write_handler(folder, WRONG_ON_FIRST.format(wrong=wrong), with_model=False)
    return str(folder)


def test_the_gate_passes_fails_and_fails_only_when_significant(
    server: RunningServer, tmp_path: Path
) -> None:
    data = tmp_path / "validation.csv"
    data.write_text("truth,rank,label\n" + "".join(f"{i % 2},{i},{i % 2}\n" for i in range(100)))
    with Client(server.url) as c:
        c.create_package_group("digits")
        for wrong in (0, 3, 30):  # digits/1, digits/2, digits/3
            c.register_package("digits", _model(tmp_path, wrong), runtime="python")
        c.create_model("current", package="digits/1")
        c.create_endpoint_config("c", [{"name": "A", "model": "current"}])
        c.create_endpoint("live", "c", wait=True)

    def gate(candidate: str, baseline: str, *extra: str, code: int) -> Result:
        report = str(tmp_path / f"{candidate.replace('/', '-')}.json")
        args = ["--url", server.url, "validate", "--candidate", candidate, "--baseline",
                baseline, "--data", str(data), "--label", "label", "--max-drop", "0.01",
                "--report", report, *extra]  # fmt: skip
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    same = gate("digits/1", "live", "--junit", str(tmp_path / "same.xml"), code=0)
    assert "endpoint live (A: current)" in same.output
    suite = ET.parse(tmp_path / "same.xml").getroot()[0]
    assert suite.get("failures") == "0" and suite.get("tests") == "3"

    slightly = gate("digits/2", "digits/1", "--junit", str(tmp_path / "gate.xml"),
                    "--markdown", str(tmp_path / "gate.md"), code=1)  # fmt: skip
    assert "validation gate failed: accuracy" in slightly.output
    failure = ET.parse(tmp_path / "gate.xml").getroot()[0].find("testcase/failure")
    assert failure is not None and "accuracy" in failure.get("message", "")
    assert "| accuracy | 1.0000 | 0.9700 |" in (tmp_path / "gate.md").read_text()
    gate("digits/2", "digits/1", "--significant", code=0)  # 3 rows in 100: not significant
    gate("digits/3", "digits/1", "--significant", code=1)  # 30 rows: significant

    result = json.loads((tmp_path / "digits-3.json").read_text())
    accuracy = result["checks"][0]
    assert (accuracy["name"], accuracy["baseline"], accuracy["candidate"]) == ("accuracy", 1, 0.7)
    assert result["passed"] is False and result["rows"] == 100
    with Client(server.url) as c:
        recorded = c.get_package("digits/3")
        kept = json.loads(c.read_report("digits/3", "validation-vs-digits-1.json"))
    assert recorded.metrics["validation.accuracy"] == pytest.approx(0.7)
    assert [r["name"] for r in recorded.reports] == ["validation-vs-digits-1.json"]
    assert recorded.history[-1].kind == "evaluation"
    assert kept["checks"] == result["checks"]  # the server's copy of the report

    bad = gate("digits/1", "digits/1", "--metric", "mae", code=1)
    assert "cannot be computed" in bad.output
