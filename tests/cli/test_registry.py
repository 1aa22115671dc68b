"""The registry and lineage from the command line, against a running server, registering
from a real git checkout."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sluice.cli.main import cli
from sluice.client import Client
from tests.conftest import RunningServer
from tests.e2e.helpers import digit_rows
from tests.test_lineage import git

pytestmark = pytest.mark.slow


def test_register_approve_deploy_and_trace_back(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    checkout = tmp_path / "training"
    checkout.mkdir()
    git(checkout, "init", "-q")
    (checkout / "train.py").write_text("fit()\n")
    git(checkout, "add", "train.py")
    git(checkout, "commit", "-q", "-m", "train")
    head = git(checkout, "rev-parse", "HEAD")
    data = checkout / "train.csv"
    data.write_text("x,y\n1,0\n")

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--url", server.url, *args], catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    run("registry", "create-group", "churn", "--requires-approval")
    registered = json.loads(
        run(
            "registry", "register", "churn", "--artifact", str(artifacts["logreg"]),
            "--code", str(checkout), "--data", str(data), "--param", "C=0.5",
            "--metric", "accuracy=0.95", "--meta", "owner=ml",
        ).output
    )  # fmt: skip
    lineage = registered["lineage"]
    assert registered["ref"] == "churn/1"
    assert (lineage["code_commit"], lineage["code_dirty"]) == (head, False)
    assert lineage["data"][0]["uri"] == data.as_uri() and lineage["parameters"] == {"C": "0.5"}
    refused = run("models", "create", "m1", "--package", "churn/1", code=1)
    assert "PendingManualApproval" in refused.output
    run("registry", "approve", "churn/1", "--reason", "first model", "--by", "alice")
    run("models", "create", "m1", "--package", "churn@latest-approved")
    run("endpoint-configs", "create", "c1", "--variant", "name=A,model=m1", "--capture")
    run("endpoints", "create", "churn", "--config", "c1")
    with Client(server.url) as c:
        c.invoke("churn", digit_rows(1)[0], inference_id="trace-me")

    tree = run("lineage", "--endpoint", "churn").output
    assert "package churn/1" in tree and head[:12] in tree and "alice" in tree
    traced = {}
    deadline = time.monotonic() + 30
    while not traced:  # capture is flushed within a second
        result = CliRunner().invoke(
            cli, ["--url", server.url, "lineage", "--inference-id", "trace-me", "--json"]
        )
        if result.exit_code == 0:
            traced = json.loads(result.output)
        assert time.monotonic() < deadline, result.output
        time.sleep(0.2)
    assert (traced["endpoint"], traced["variant"], traced["ambiguous"]) == ("churn", "A", False)
    assert traced["served_by"][0]["package"]["code"]["commit"] == head

    (checkout / "train.py").write_text("fit(deeper=True)\n")  # uncommitted
    run("registry", "register", "churn", "--artifact", str(artifacts["tree"]),
        "--code", str(checkout), "--parent", "churn/1")  # fmt: skip
    approved = json.loads(
        run("registry", "approve", "churn/2", "--deploy-to", "churn", "--all-at-once").output
    )
    [rollout] = approved["rollouts"]
    with Client(server.url) as c:
        assert c.wait_for_deployment(rollout["deployment_id"], 120).state == "Completed"
    forward = json.loads(run("lineage", "--package", "churn/1", "--json").output)
    assert forward["models"] == ["m1"]
    [period] = forward["endpoints"]
    assert (period["endpoint"], period["config"], period["variant"]) == ("churn", "c1", "A")
    assert period["until"] is not None  # replaced by churn/2
    newer = json.loads(run("lineage", "--package", "churn/2", "--json").output)
    assert newer["package"]["code"]["dirty"] is True
    assert [p["ref"] for p in newer["package"]["parents"]] == ["churn/1"]
    assert [(p["endpoint"], p["until"]) for p in newer["endpoints"]] == [("churn", None)]
    assert "derived from churn/1" in run("lineage", "--package", "churn/2").output
    assert "churn/A (production): model m1 (config c1) from" in tree

    # The history outlives the endpoint, its configs and its models.
    with Client(server.url) as c:
        c.delete_endpoint("churn")
    gone = json.loads(run("lineage", "--package", "churn/2", "--json").output)
    assert [p["endpoint"] for p in gone["endpoints"]] == ["churn"]
    assert gone["endpoints"][0]["until"] is not None
    after = json.loads(run("lineage", "--inference-id", "trace-me", "--json").output)
    assert after["served_by"][0]["package"]["ref"] == "churn/1"
    assert "give one of" in run("lineage", code=1).output
