from __future__ import annotations

from pathlib import Path

from sluice import entities as e
from sluice.store.deployment_repo import DeploymentRepository
from sluice.store.repos import Repository
from sluice.store.serving_history import ServingHistory


def _setup(repo: Repository) -> None:
    for name, package in (("m1", "churn/1"), ("m2", "churn/2")):
        repo.add_model(e.Model(name, "/a", "/b", "sklearn", None, {}, None, {}, package))  # type: ignore[arg-type]
    for config, model in (("c1", "m1"), ("c2", "m2"), ("c3", "m2")):
        capture = e.DataCapture(destination=f"/srv/capture/{config}")
        repo.add_config(e.EndpointConfig(config, (e.VariantSpec("A", model),), capture))
    variants = [e.EndpointVariant("A", "m1", e.VariantKind.PRODUCTION, 1, 1, 1, 1, 100, "x")]
    repo.add_endpoint("ep", "c1", variants)
    repo.set_endpoint_status("ep", e.EndpointStatus.IN_SERVICE)


def test_what_served_when_across_updates_rollbacks_and_deletion(repo: Repository) -> None:
    _setup(repo)
    deployments = DeploymentRepository(repo.db)
    history = ServingHistory(repo.db)
    [first] = history.periods(endpoint="ep")
    assert (first.config, first.model, first.package, first.until) == ("c1", "m1", "churn/1", None)
    assert first.capture == "/srv/capture/c1"  # kept even if the config goes

    rolled_back = deployments.start("ep", "c2", {}, [])
    during = history.periods(endpoint="ep")
    assert [(p.config, p.until) for p in during] == [("c1", None), ("c2", None)]  # both serve
    deployments.finish(
        rolled_back.id, e.DeploymentState.ROLLED_BACK, "alarm", e.EndpointStatus.IN_SERVICE
    )
    after = {p.config: p for p in history.periods(endpoint="ep")}
    assert after["c1"].until is None and after["c2"].until is not None
    assert after["c2"].deployment == rolled_back.id

    completed = deployments.start("ep", "c3", {}, [])
    moved = [e.EndpointVariant("A", "m2", e.VariantKind.PRODUCTION, 1, 1, 1, 1, 100, "x")]
    deployments.finish(
        completed.id, e.DeploymentState.COMPLETED, None, e.EndpointStatus.IN_SERVICE, moved
    )
    open_now = [p.config for p in history.periods(endpoint="ep") if p.until is None]
    assert open_now == ["c3"]
    assert [p.config for p in history.periods(packages=["churn/2"])] == ["c2", "c3"]

    repo.delete_endpoint("ep")
    periods = history.periods(endpoint="ep")
    assert len(periods) == 3 and all(p.until is not None for p in periods)  # kept, closed


def test_the_history_begins_with_what_endpoints_served_before_it_existed(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from sluice.store.db import MIGRATIONS, Database

    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(text(
            "INSERT INTO models (name, artifact_uri, model_dir, runtime, environment, created_at,"
            " details) VALUES ('m', '/a', '/b', 'sklearn', '{}', '2026-01-01', '{}')"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO endpoint_configs (name, created_at, details) "
            "VALUES ('c', '2026-01-01', '{}')"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO endpoint_config_variants (config_name, name, position, kind, model_name,"
            " initial_weight, instance_count, sampling_percentage, details) "
            "VALUES ('c', 'A', 0, 'production', 'm', 1, 1, 100, '{}')"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO endpoints (name, config_name, status, created_at, updated_at, version) "
            "VALUES ('ep', 'c', 'InService', '2026-01-02', '2026-01-02', 1)"
        ))  # fmt: skip
    database.migrate()
    [period] = ServingHistory(database).periods(endpoint="ep")
    assert (period.config, period.variant, period.model, period.until) == ("c", "A", "m", None)
    database.close()
