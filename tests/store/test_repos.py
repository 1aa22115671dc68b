from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from sluice import entities as e
from sluice.errors import AlreadyExists, NotFound
from sluice.store.db import open_database
from sluice.store.repos import Repository


def _model(name: str = "m1") -> e.Model:
    return e.Model(name, "/a", "/b", "sklearn", None, {"K": "V"}, None)  # type: ignore[arg-type]


def test_migrations_create_every_table_and_are_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sluice.db'}"
    first = open_database(url)
    tables = set(inspect(first.engine).get_table_names())
    assert {
        "models",
        "endpoint_configs",
        "endpoint_config_variants",
        "endpoints",
        "endpoint_variants",
        "alembic_version",
    } <= tables
    first.close()
    open_database(url).close()  # a second start finds the schema current


def test_models_round_trip_and_unique(repo: Repository) -> None:
    stored = repo.add_model(_model())
    assert stored.environment == {"K": "V"} and stored.created_at.tzinfo is not None
    with pytest.raises(AlreadyExists):
        repo.add_model(_model())
    assert [m.name for m in repo.list_models()] == ["m1"]
    with pytest.raises(AlreadyExists):  # SageMaker's names (and our ARNs) ignore case
        repo.add_model(_model("M1"))
    repo.delete_model("m1")
    with pytest.raises(NotFound, match="model 'm1' does not exist"):
        repo.get_model("m1")
    repo.add_model(_model("M1"))


def test_configs_keep_variant_order_and_capture(repo: Repository) -> None:
    config = e.EndpointConfig(
        "c1",
        (
            e.VariantSpec("B", "m1", initial_weight=2),
            e.VariantSpec("A", "m1"),
            e.VariantSpec("S", "m1", e.VariantKind.SHADOW, sampling_percentage=30),
        ),
        e.DataCapture(sampling_percentage=50, destination="/tmp/x"),
        "x-user",
    )
    stored = repo.add_config(config)
    assert [v.name for v in stored.variants] == ["B", "A", "S"]
    assert stored.shadows[0].sampling_percentage == 30
    assert stored.data_capture == config.data_capture
    assert stored.sticky_header == "x-user"


def test_endpoint_status_and_weights(repo: Repository) -> None:
    repo.add_model(_model())
    variants = [
        e.EndpointVariant("A", "m1", e.VariantKind.PRODUCTION, 0, 1, 0, 2, 100, "Creating"),
        e.EndpointVariant("B", "m1", e.VariantKind.PRODUCTION, 0, 3, 0, 1, 100, "Creating"),
    ]
    created = repo.add_endpoint("ep", "c1", variants)
    assert created.status is e.EndpointStatus.CREATING
    live = repo.set_endpoint_status("ep", e.EndpointStatus.IN_SERVICE)
    assert [(v.current_weight, v.current_instance_count) for v in live.variants] == [(1, 2), (3, 1)]
    updated = repo.set_weights("ep", {"B": 0.5})
    assert updated.variant("B").current_weight == 0.5  # type: ignore[union-attr]
    assert updated.variant("A").current_weight == 1  # type: ignore[union-attr]
    failed = repo.set_endpoint_status("ep", e.EndpointStatus.FAILED, "boom")
    assert failed.failure_reason == "boom"
    assert repo.endpoints_using_config("c1") == ["ep"]
    repo.delete_endpoint("ep")
    assert repo.list_endpoints() == []
