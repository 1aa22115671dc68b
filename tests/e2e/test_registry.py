"""The model registry through the native API against a running server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sluice.client import Client
from sluice.errors import SluiceError
from tests.conftest import RunningServer, database_env
from tests.e2e.helpers import digit_rows

pytestmark = pytest.mark.slow


@pytest.fixture
def client(server: RunningServer) -> Client:
    with Client(server.url) as c:
        yield c  # type: ignore[misc]


def _fails(status: int, match: str, call: object, *args: object, **kwargs: object) -> SluiceError:
    with pytest.raises(SluiceError, match=match) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.status == status, caught.value
    return caught.value


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_versions_are_numbered_in_order_under_concurrent_registrations(
    tmp_path: Path, artifacts: dict[str, Path], database: str, request: pytest.FixtureRequest
) -> None:
    env = database_env(database, request)
    server = RunningServer(tmp_path / "home", env)
    request.addfinalizer(server.stop)
    with Client(server.url) as c:
        c.create_package_group("churn", "churn models")

    def register(i: int) -> int:
        with Client(server.url) as c:
            return c.register_package("churn", str(artifacts["logreg"]), metrics={"i": i}).version

    with ThreadPoolExecutor(8) as pool:
        versions = sorted(pool.map(register, range(24)))
    assert versions == list(range(1, 25))
    with Client(server.url) as c:
        assert c.get_package_group("churn").latest_version == 24
        listed = c.list_packages("churn")
        assert [p.version for p in listed] == sorted(p.version for p in listed)
        c.delete_package("churn/24")
        assert c.register_package("churn", str(artifacts["logreg"])).version == 25  # never reused


def test_only_approved_packages_deploy_from_a_group_that_requires_approval(
    client: Client, artifacts: dict[str, Path]
) -> None:
    client.create_package_group("fraud", requires_approval=True)
    first = client.register_package(
        "fraud", str(artifacts["logreg"]), metrics={"accuracy": 0.96}, created_by="ci"
    )
    assert (first.ref, first.approval) == ("fraud/1", "PendingManualApproval")
    _fails(409, "PendingManualApproval; group 'fraud' deploys only Approved", client.create_model,
           "m1", package="fraud/1")  # fmt: skip
    _fails(404, "no Approved package", client.create_model, "m1", package="fraud@latest-approved")

    approved = client.set_approval("fraud/1", "Approved", by="alice", reason="beats v0").package
    assert (approved.approval, approved.approval_by, approved.approval_reason) == (
        "Approved", "alice", "beats v0",
    )  # fmt: skip
    assert [(h.kind, h.actor) for h in approved.history] == [
        ("registered", "ci"), ("approval", "alice"),
    ]  # fmt: skip
    model = client.create_model("m1", package="fraud@latest-approved")
    assert model.package == "fraud/1" and model.runtime == "sklearn"

    client.create_endpoint_config("c1", [{"name": "A", "model": "m1"}])
    client.set_approval("fraud/1", "Rejected", by="bob", reason="leaks a feature")
    _fails(409, "fraud/1 is Rejected", client.create_endpoint, "ep", "c1")
    client.set_approval("fraud/1", "Approved", by="bob")
    client.create_endpoint("ep", "c1", wait=True)
    assert client.invoke("ep", digit_rows(1)[0]).variant == "A"

    # An endpoint may not move to a config whose package was rejected meanwhile.
    client.register_package("fraud", str(artifacts["tree"]), approval="Approved")
    client.create_model("m2", package="fraud/2")
    client.create_endpoint_config("c2", [{"name": "A", "model": "m2"}])
    client.set_approval("fraud/2", "Rejected")
    _fails(409, "fraud/2 is Rejected", client.update_endpoint, "ep", "c2")

    # Packages in use and groups with packages stay.
    _fails(409, "in use by model", client.delete_package, "fraud/1")
    _fails(409, "still holds 2 model package", client.delete_package_group, "fraud")


def test_approval_updates_named_endpoints_and_records_it(
    client: Client, artifacts: dict[str, Path]
) -> None:
    client.create_package_group("digits")
    client.register_package("digits", str(artifacts["logreg"]), approval="Approved")
    client.create_model("digits-v1", package="digits/1")
    client.create_model("other", str(artifacts["tree"]))
    client.create_endpoint_config(
        "v1",
        [
            {"name": "A", "model": "digits-v1", "weight": 3},
            {"name": "B", "model": "other", "weight": 1},
        ],
    )
    client.create_endpoint("ep", "v1", wait=True)
    second = client.register_package("digits", str(artifacts["tree"]), description="a tree")
    policy = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 1,
            },
            "TerminationWaitInSeconds": 0,
        }
    }
    answer = client.set_approval(
        second.ref, "Approved", by="carol", deploy_to=["ep", "nowhere"], deployment_config=policy
    )
    rollout, missing = answer.rollouts
    assert rollout.endpoint == "ep" and rollout.deployment_id is not None and not rollout.error
    assert missing.error and "nowhere" in missing.error
    done = client.wait_for_deployment(rollout.deployment_id, 120)
    assert done.state == "Completed"
    config = client.get_endpoint_config(client.get_endpoint("ep").config)
    models = {v.name: v.model for v in config.variants}
    assert models == {"A": "digits-v2", "B": "other"}  # only the group's variant moved
    assert client.get_model("digits-v2").package == "digits/2"
    history = client.get_package("digits/2").history
    assert [h.kind for h in history] == ["registered", "approval", "deployment", "deployment"]
    assert history[2].details["deployment"] == rollout.deployment_id
    assert "could not update endpoint nowhere" in history[3].message

    # Only metadata, description and evaluations change after registration.
    changed = client.update_package(
        "digits/2", description="a deeper tree", metadata={"owner": "ml", "ticket": "ML-1"}
    )
    changed = client.update_package("digits/2", remove_metadata=["ticket"])
    assert (changed.description, changed.metadata) == ("a deeper tree", {"owner": "ml"})
    changed = client.attach_report("digits/2", "holdout", "file:///reports/holdout.json",
                                   metrics={"accuracy": 0.91})  # fmt: skip
    assert changed.metrics == {"accuracy": 0.91} and changed.reports[0]["name"] == "holdout"
    assert changed.containers == second.containers
    kept = client.attach_report("digits/2", "card.md", content_type="text/markdown",
                                content="# Model card\n")  # fmt: skip
    assert [r["name"] for r in kept.reports] == ["holdout", "card.md"]
    assert client.read_report("digits/2", "card.md") == b"# Model card\n"
    _fails(404, "not kept here", client.read_report, "digits/2", "holdout")
    _fails(400, "content or its uri", client.attach_report, "digits/2", "x", "file:///x",
           content="both")  # fmt: skip
    _fails(400, "report name", client.attach_report, "digits/2", "../escape", content="x")


def test_bad_requests_are_refused_clearly(client: Client, artifacts: dict[str, Path]) -> None:
    _fails(404, "group 'ghost' does not exist", client.register_package, "ghost", "/x")
    _fails(400, "must match", client.create_package_group, "bad_name")
    client.create_package_group("g")
    _fails(409, "already exists", client.create_package_group, "G")
    _fails(400, "outside the folders", client.register_package, "g", "/no/such/artifact")
    _fails(400, "parent", client.register_package, "g", str(artifacts["logreg"]),
           lineage={"parent": "g/7"})  # fmt: skip
    _fails(404, "g/3 does not exist", client.get_package, "g/3")
    _fails(400, "names no model package", client.create_model, "m", package="g")
    _fails(400, "exactly one of artifact and package", client.create_model, "m",
           str(artifacts["logreg"]), package="g/1")  # fmt: skip
    client.register_package("g", str(artifacts["logreg"]), approval="Approved")
    child = client.register_package("g", str(artifacts["logreg"]),
                                    lineage={"parent": "g@latest-approved"})  # fmt: skip
    assert child.lineage["parent"] == "g/1"  # pinned to the version it named then
    _fails(400, "only an approval can update", client.set_approval, "g/1", "Rejected",
           deploy_to=["ep"])  # fmt: skip
    assert client.get_package("g/1").approval == "Approved"  # nothing changed
