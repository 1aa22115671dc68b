"""Guarded endpoint updates on a real server with real workers, under continuous load."""

from __future__ import annotations

import copy
import json
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from sluice.api.schemas import DeploymentOut
from sluice.client import Client
from sluice.errors import SluiceError
from tests import models
from tests.conftest import RunningServer, database_env
from tests.e2e.helpers import Load, canary, digit_rows, metric, worker_processes

pytestmark = pytest.mark.slow

NEGATIVE = json.dumps([[-1.0] + [0.0] * 63]).encode()
"""A row the crashing model refuses (the logistic regression answers it)."""


def _setup(
    client: Client,
    artifacts: dict[str, Path],
    configs: dict[str, str],
    instances: int = 1,
    name: str = "ep",
) -> None:
    """Models from `artifacts`, one config per (config name -> model), endpoint on the first."""
    for model in sorted(set(configs.values())):
        if model not in {m.name for m in client.list_models()}:
            client.create_model(model, str(artifacts[model]))
    for config, model in configs.items():
        client.create_endpoint_config(
            config, [{"name": "A", "model": model, "instances": instances}]
        )
    client.create_endpoint(name, next(iter(configs)), wait=True, timeout=60)


def _green_share(load: Load, deployment: DeploymentOut, index: int) -> tuple[float, int]:
    step = deployment.steps[index]
    assert step.ended_at is not None
    # Leave out the edges: requests in flight at a swap started under the old split.
    replies = load.between(step.started_at.timestamp() + 0.2, step.ended_at.timestamp() - 0.05)
    green = sum(1 for r in replies if r.config == deployment.to_config)
    return green / max(1, len(replies)), len(replies)


def test_canary_linear_and_all_at_once_drop_nothing_and_split_as_planned(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg", "v2": "tree", "v3": "logreg", "v4": "tree"})
        policies: list[tuple[str, dict[str, Any], list[float]]] = [
            ("v2", canary(20, 3, TerminationWaitInSeconds=1), [0.2, 1.0, 1.0]),
            (
                "v3",
                {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {
                            "Type": "LINEAR",
                            "WaitIntervalInSeconds": 2,
                            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                        }
                    }
                },
                [0.5, 1.0],
            ),
            (
                "v4",
                {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {
                            "Type": "ALL_AT_ONCE",
                            "WaitIntervalInSeconds": 2,
                        }
                    }
                },
                [1.0],
            ),
        ]
        with Load(server.url, "ep", digit_rows(200)) as load:
            time.sleep(0.3)
            done = []
            for config, policy, shares in policies:
                started = client.update_endpoint("ep", config, policy)
                assert started.state == "Provisioning"
                assert client.get_endpoint("ep").status == "Updating"
                finished = client.wait_for_deployment(started.id, 60)
                assert finished.state == "Completed", finished.reason
                assert [s.green_shares["A"] for s in finished.steps] == shares
                assert all(s.decision == "passed" for s in finished.steps)
                done.append(finished)
                endpoint = client.get_endpoint("ep")
                assert (endpoint.status, endpoint.config) == ("InService", config)
            time.sleep(0.3)
        assert load.replies and not load.failed(), load.failed()[:3]
        for deployment in done:
            for index, step in enumerate(deployment.steps):
                if step.bake_s >= 2:
                    share, count = _green_share(load, deployment, index)
                    assert count > 200
                    assert abs(share - step.green_shares["A"]) < 0.06, (step.label, share)
        history = client.list_deployments("ep")
        assert [d.to_config for d in history] == ["v4", "v3", "v2"]
        assert [d.kind for d in history] == ["ALL_AT_ONCE", "LINEAR", "CANARY"]
        assert all(d.duration_s > 0 and d.finished_at for d in history)


def test_failing_green_trips_the_alarm_and_blue_takes_everything_back(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    period = 2
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg", "v2": "crashing"})
        # The webhook points at a port nobody answers: notifying must not hold up the rollback.
        client.put_alarm(
            "ep-5xx",
            metric="Invocation5XXErrors",
            statistic="Average",
            threshold=0.05,
            period_s=period,
            endpoint="ep",
            webhook_url="http://127.0.0.1:9/unreachable",
        )
        bodies = digit_rows(40) + [NEGATIVE] * 10  # green fails one request in five
        with Load(server.url, "ep", bodies) as load:
            time.sleep(0.3)
            policy = canary(50, 60, TerminationWaitInSeconds=0)
            policy["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": "ep-5xx"}]}
            started = client.update_endpoint("ep", "v2", policy)
            finished = client.wait_for_deployment(started.id, 60)
            time.sleep(1.5)
        assert finished.state == "RolledBack"
        assert finished.reason is not None and "alarm ep-5xx is in ALARM" in finished.reason
        endpoint = client.get_endpoint("ep")
        assert (endpoint.status, endpoint.config) == ("InService", "v1")
        assert endpoint.failure_reason == finished.reason
        shifted = finished.steps[0].started_at.timestamp()
        swap = next(e for e in finished.events if e.message.startswith("all traffic on blue"))
        alarm = next(t for t in finished.alarm_transitions if t.new_state == "ALARM")
        assert alarm.scope.startswith("green fleet (v2)")
        # Within one evaluation period (plus the partial one green started in) and a second.
        assert swap.at.timestamp() - shifted < 2 * period + 1.5
        assert swap.at.timestamp() - alarm.at.timestamp() < 2.0
        # Every failure came from green's model; after the swap, blue answered everything.
        for reply in load.failed():
            assert reply.status == 424 and b"negative pixel values" in reply.body
            assert reply.at < swap.at.timestamp() + 0.5
        after = load.between(swap.at.timestamp() + 0.5, time.time())
        assert len(after) > 50 and {(r.status, r.config) for r in after} == {(200, "v1")}
        assert metric(server.url, "sluice_worker_processes", endpoint="ep") == 1


def test_slow_green_trips_a_latency_alarm(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg"})
        client.create_model("slow", str(artifacts["slow"]), environment={"SLOW_SECONDS": "0.05"})
        client.create_endpoint_config("v2", [{"name": "A", "model": "slow"}])
        client.put_alarm(
            "ep-p99",
            metric="ModelLatency",
            statistic="p99",
            threshold=20,
            period_s=2,
            endpoint="ep",
        )
        with Load(server.url, "ep", digit_rows(50)) as load:
            time.sleep(0.3)
            policy = {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "LINEAR",
                        "WaitIntervalInSeconds": 30,
                        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                    }
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "ep-p99"}]},
            }
            finished = client.wait_for_deployment(client.update_endpoint("ep", "v2", policy).id, 60)
        assert finished.state == "RolledBack" and "ep-p99" in (finished.reason or "")
        assert "ModelLatency p99 > 20" in (finished.reason or "")
        assert not load.failed()
        assert client.get_endpoint("ep").config == "v1"


def test_comparative_guard_rolls_back_a_worse_green_without_alarms(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg", "v2": "crashing"})
        bodies = digit_rows(90) + [NEGATIVE] * 10  # green fails one request in ten
        with Load(server.url, "ep", bodies) as load:
            time.sleep(0.3)
            policy = canary(30, 60)
            policy["ComparativeGuard"] = {"EvaluationIntervalInSeconds": 1, "MinimumRequests": 30}
            finished = client.wait_for_deployment(client.update_endpoint("ep", "v2", policy).id, 60)
        assert finished.state == "RolledBack"
        assert "comparative guard" in (finished.reason or "")
        assert "5xx error rate" in (finished.reason or "")
        step = finished.steps[0]
        assert step.decision == "rolled back" and step.fleets["green"]["errors_5xx"] > 0
        assert step.fleets["blue"]["errors_5xx"] == 0
        assert all(r.status == 424 for r in load.failed())


def test_execution_timeout_rolls_back(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    sleepy = models.write_handler(
        tmp_path / "sleepy",
        """
        import time, joblib, os

        def model_fn(model_dir):
            time.sleep(8)
            return joblib.load(os.path.join(model_dir, "model.joblib"))
        """,
    )
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg"})
        client.create_model("sleepy", str(sleepy))
        client.create_endpoint_config("v2", [{"name": "A", "model": "sleepy"}])
        policy = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "MaximumExecutionTimeoutInSeconds": 2,
            }
        }
        with Load(server.url, "ep", digit_rows(50)) as load:
            started = time.time()
            finished = client.wait_for_deployment(client.update_endpoint("ep", "v2", policy).id, 60)
            elapsed = time.time() - started
        assert finished.state == "RolledBack"
        assert "MaximumExecutionTimeoutInSeconds (2 s)" in (finished.reason or "")
        assert elapsed < 6 and not load.failed()
        assert client.get_endpoint("ep").config == "v1"


def test_one_update_at_a_time_and_cancel_rolls_back(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg", "v2": "tree", "v3": "tree"})
        with Load(server.url, "ep", digit_rows(50)) as load:
            started = client.update_endpoint("ep", "v2", canary(10, 600))
            with pytest.raises(SluiceError, match="already being updated") as refused:
                client.update_endpoint("ep", "v3")
            assert (refused.value.status, refused.value.code) == (409, "ResourceInUse")
            with pytest.raises(SluiceError, match="not InService"):
                client.update_weights("ep", {"A": 2})
            _wait_state(client, started.id, "Baking")
            client.cancel_update("ep")
            finished = client.wait_for_deployment(started.id, 30)
        assert finished.state == "RolledBack" and finished.reason == "cancelled by the user"
        assert not load.failed()
        with pytest.raises(SluiceError, match="no update running"):
            client.cancel_update("ep")
        response = client.http.post(
            "/api/v1/endpoints/ep/deployments",
            json={
                "config": "v2",
                "deployment_config": {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {}}},
            },
        )
        assert response.status_code == 400 and "Type" in response.json()["message"]


def test_rolling_update_keeps_capacity_and_drops_nothing(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg", "v2": "tree"}, instances=4)
        policy = {
            "RollingUpdatePolicy": {
                "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 1,
            }
        }
        seen: list[float] = []
        with Load(server.url, "ep", digit_rows(50)) as load:
            started = client.update_endpoint("ep", "v2", policy)
            while client.get_deployment(started.id).finished_at is None:
                seen.append(metric(server.url, "sluice_worker_processes", endpoint="ep"))
                time.sleep(0.05)
            finished = client.get_deployment(started.id)
        assert finished.state == "Completed", finished.reason
        assert [s.green_shares["A"] for s in finished.steps] == [0.25, 0.5, 0.75, 1.0]
        assert min(seen) >= 4 - 1 and max(seen) <= 4 + 1
        assert not load.failed()
        assert metric(server.url, "sluice_worker_processes", endpoint="ep") == 4


ROLLING_30S: dict[str, Any] = {
    "RollingUpdatePolicy": {
        "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "RollbackMaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 30,
    }
}


def test_rolling_rollback_brings_blue_back_batch_by_batch(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg", "v2": "tree"}, instances=4)
        seen: list[float] = []
        with Load(server.url, "ep", digit_rows(50)) as load:
            policy = copy.deepcopy(ROLLING_30S)
            policy["RollingUpdatePolicy"]["MaximumBatchSize"]["Value"] = 2
            started = client.update_endpoint("ep", "v2", policy)
            _wait_state(client, started.id, "Baking", step=0)  # blue 2, green 2
            client.cancel_update("ep")
            while client.get_deployment(started.id).finished_at is None:
                seen.append(metric(server.url, "sluice_worker_processes", endpoint="ep"))
                time.sleep(0.05)
            finished = client.get_deployment(started.id)
            time.sleep(0.3)
        assert finished.state == "RolledBack" and finished.reason == "cancelled by the user"
        batches = [e for e in finished.events if e.message.startswith("rollback batch")]
        # One blue instance back, one green gone, twice; never more than one extra instance.
        assert [e.data["counts"]["A"] for e in batches] == [[3, 1], [4, 0]]
        assert seen and min(seen) >= 4 and max(seen) <= 5
        assert not load.failed()
        endpoint = client.get_endpoint("ep")
        assert (endpoint.status, endpoint.config) == ("InService", "v1")
        assert endpoint.variants[0].current_instance_count == 4
        assert metric(server.url, "sluice_worker_processes", endpoint="ep") == 4
        assert {r.config for r in load.replies[-20:]} == {"v1"}


def test_failed_rollback_leaves_the_endpoint_serving_and_a_retry_recovers(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "blue-artifact-broken"
    fragile = models.write_handler(
        tmp_path / "fragile",
        """
        import os, joblib

        def model_fn(model_dir):
            if os.path.exists(os.environ["BROKEN_MARKER"]):
                raise RuntimeError("the model artifact is unreadable")
            return joblib.load(os.path.join(model_dir, "model.joblib"))
        """,
    )
    with Client(server.url) as client:
        client.create_model("fragile", str(fragile), environment={"BROKEN_MARKER": str(broken)})
        _setup(client, artifacts, {"v1": "fragile", "v2": "tree"}, instances=2)
        with Load(server.url, "ep", digit_rows(50)) as load:
            started = client.update_endpoint("ep", "v2", ROLLING_30S)
            _wait_state(client, started.id, "Baking", step=0)  # blue 1, green 1
            broken.touch()  # blue can no longer start new instances
            client.cancel_update("ep")
            failed = client.wait_for_deployment(started.id, 30)
            assert failed.state == "RollbackFailed"
            assert failed.reason is not None
            assert failed.reason.startswith("cancelled by the user; the rollback failed too")
            assert "the model artifact is unreadable" in failed.reason
            endpoint = client.get_endpoint("ep")
            assert endpoint.status == "UpdateRollbackFailed"
            assert endpoint.failure_reason == failed.reason
            # Still serving, from both configs; nothing else is accepted meanwhile.
            time.sleep(0.5)
            assert {r.config for r in load.replies[-40:]} == {"v1", "v2"}
            with pytest.raises(SluiceError, match="UpdateRollbackFailed, not InService"):
                client.update_endpoint("ep", "v2")
            # Fixed: a cancel retries the rollback.
            broken.unlink()
            retried = client.cancel_update("ep")
            assert retried.id == started.id and retried.state == "RollingBack"
            finished = client.wait_for_deployment(started.id, 30)
            time.sleep(0.3)
        assert finished.state == "RolledBack", finished.reason
        assert finished.reason == "cancelled by the user"
        assert any(e.message == "rollback retried by the user" for e in finished.events)
        assert not load.failed()
        endpoint = client.get_endpoint("ep")
        assert (endpoint.status, endpoint.config) == ("InService", "v1")
        assert metric(server.url, "sluice_worker_processes", endpoint="ep") == 2
        assert {r.config for r in load.replies[-20:]} == {"v1"}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_mid_update_rolls_back_on_restart(
    tmp_path: Path, artifacts: dict[str, Path], database: str, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "home"
    env = database_env(database, request)
    running = RunningServer(home, env)
    try:
        with Client(running.url) as client:
            _setup(client, artifacts, {"v1": "logreg", "v2": "tree"})
            started = client.update_endpoint("ep", "v2", canary(25, 600))
            _wait_state(client, started.id, "Baking")
        assert len(worker_processes(running.process.pid)) == 2  # blue and green
        family = psutil.Process(running.process.pid).children(recursive=True)
        running.stop(signal.SIGKILL)
        _, alive = psutil.wait_procs(family, timeout=10)  # they leave with their gateway
        assert not alive
        running = RunningServer(home, env)
        with Client(running.url) as client:
            endpoint = client.wait_for_endpoint("ep", 30)
            assert endpoint.config == "v1"
            assert endpoint.failure_reason and "server restarted" in endpoint.failure_reason
            deployment = client.get_deployment(started.id)
            assert deployment.state == "RolledBack" and "at step 1 of 2" in (
                deployment.reason or ""
            )
            reply = client.invoke("ep", digit_rows(1)[0])
            assert reply.variant == "A"
            # The endpoint takes a new update as usual.
            again = client.update_endpoint("ep", "v2", wait=True, timeout=60)
            assert again.state == "Completed"
    finally:
        running.stop()


def test_resume_policy_continues_an_interrupted_update(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    env = {"SLUICE_DEPLOYMENT_RESTART_POLICY": "resume"}
    running = RunningServer(home, env)
    try:
        with Client(running.url) as client:
            _setup(client, artifacts, {"v1": "logreg", "v2": "tree"})
            started = client.update_endpoint("ep", "v2", canary(25, 3))
            _wait_state(client, started.id, "Baking")
        running.stop(signal.SIGKILL)
        running = RunningServer(home, env)
        with Client(running.url) as client:
            finished = client.wait_for_deployment(started.id, 60)
            assert finished.state == "Completed", finished.reason
            assert any("resuming at step 1" in e.message for e in finished.events)
            assert client.get_endpoint("ep").config == "v2"
    finally:
        running.stop()


def test_live_capacity_change_drops_nothing(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        _setup(client, artifacts, {"v1": "logreg"})
        with Load(server.url, "ep", digit_rows(50)) as load:
            time.sleep(0.2)
            assert client.update_weights("ep", instances={"A": 3}).status == "Updating"
            endpoint = client.wait_for_endpoint("ep", 30)
            assert endpoint.variants[0].current_instance_count == 3
            assert metric(server.url, "sluice_worker_processes", endpoint="ep") == 3
            client.update_weights("ep", {"A": 2}, instances={"A": 1})
            endpoint = client.wait_for_endpoint("ep", 30)
            time.sleep(1.0)  # load on the one instance left, too
        assert endpoint.variants[0].current_instance_count == 1
        assert endpoint.variants[0].current_weight == 2
        assert metric(server.url, "sluice_worker_processes", endpoint="ep") == 1
        assert len(load.replies) > 200 and not load.failed()


def _wait_state(
    client: Client, deployment_id: int, state: str, timeout: float = 30, step: int | None = None
) -> None:
    """Until the deployment is in `state` (at step index `step`, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        current = client.get_deployment(deployment_id)
        if current.state == state and step in (None, current.step_index):
            return
        assert time.monotonic() < deadline, current
        time.sleep(0.05)
