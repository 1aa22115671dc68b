from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier

from sluice.errors import ModelError, ValidationError
from sluice.runtimes.multi_model import MultiModelRuntime
from tests import models

ROW = json.dumps([models.digits()[0][0].tolist()]).encode()
REQUEST = (ROW, "application/json", "application/json")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five forests of about 2.2 MiB each (on disk and more in memory), and a broken one."""
    root = tmp_path_factory.mktemp("store")
    x, y = models.digits()
    for i in range(5):
        forest = RandomForestClassifier(n_estimators=40, random_state=i).fit(x, y)
        models.write_sklearn(root / f"forest-{i}", forest)
    (root / "broken").mkdir()
    (root / "broken" / "model.joblib").write_bytes(b"not a pickle")
    return root


def _runtime(store: Path, **environment: str) -> MultiModelRuntime:
    runtime = MultiModelRuntime(store, environment)
    runtime.load()
    return runtime


def _ask(runtime: MultiModelRuntime, store: Path, name: str) -> bool:
    answers, outcome = runtime.invoke_target("sklearn", str(store / name), [REQUEST])
    assert not isinstance(answers[0], Exception), answers[0]
    assert json.loads(answers[0][0])["predictions"] == [0]
    assert outcome.loaded == len(runtime.models)
    return outcome.hit


def test_models_are_evicted_least_recently_used_by_memory(store: Path) -> None:
    runtime = _runtime(store, SLUICE_MODEL_CACHE_MB="7")  # room for two or three, not five
    assert [_ask(runtime, store, f"forest-{i}") for i in range(3)] == [False] * 3
    assert runtime.used <= runtime.budget
    assert _ask(runtime, store, "forest-2")  # the newest stays
    assert not _ask(runtime, store, "forest-3")
    assert not _ask(runtime, store, "forest-4")
    assert runtime.used <= runtime.budget
    loaded = [Path(d).name for d in runtime.models]
    assert loaded[-1] == "forest-4" and "forest-0" not in loaded
    assert 1 < len(loaded) < 5
    for model in runtime.models.values():  # measured, at least the size on disk
        assert model.bytes >= 2 * 2**20


def test_a_model_over_the_budget_is_served_alone(store: Path) -> None:
    runtime = _runtime(store, SLUICE_MODEL_CACHE_MB="1")
    assert not _ask(runtime, store, "forest-0")
    assert not _ask(runtime, store, "forest-1")
    assert [Path(d).name for d in runtime.models] == ["forest-1"]


def test_with_the_cache_disabled_every_request_loads(store: Path) -> None:
    runtime = _runtime(store, SLUICE_MODEL_CACHE="disabled")
    assert not _ask(runtime, store, "forest-0")
    assert not _ask(runtime, store, "forest-0")
    assert not runtime.models


def test_a_model_that_fails_to_load_is_a_model_error(store: Path) -> None:
    runtime = _runtime(store)
    with pytest.raises(ModelError, match="failed to load"):
        runtime.invoke_target("sklearn", str(store / "broken"), [REQUEST])
    assert not runtime.models
    assert not _ask(runtime, store, "forest-0")


def test_only_directories_under_the_store_load(store: Path, tmp_path: Path) -> None:
    runtime = _runtime(store / "forest-0")
    with pytest.raises(ValidationError, match="no model"):
        runtime.invoke_target("sklearn", str(store / "forest-1"), [REQUEST])
    with pytest.raises(ValidationError, match="no model"):
        runtime.invoke_target("sklearn", str(store / "forest-0" / ".." / "forest-1"), [REQUEST])
    with pytest.raises(ValidationError, match="name the model"):
        runtime.invoke(ROW, "application/json", "application/json")


def test_pinned_models_load_first_and_are_never_evicted(store: Path) -> None:
    pinned = json.dumps([["sklearn", str(store / "forest-0")]])
    runtime = _runtime(store, SLUICE_MODEL_CACHE_MB="5", SLUICE_MODEL_PINNED=pinned)
    assert [Path(d).name for d in runtime.models] == ["forest-0"]  # before any request
    assert _ask(runtime, store, "forest-0")
    for i in (1, 2, 3, 1):
        _ask(runtime, store, f"forest-{i}")
    loaded = [Path(d).name for d in runtime.models]
    assert "forest-0" in loaded and loaded[-1] == "forest-1"  # the rest came and went
    assert "forest-2" not in loaded


def test_a_pinned_model_stays_with_the_cache_disabled(store: Path) -> None:
    pinned = json.dumps([["sklearn", str(store / "forest-0")]])
    runtime = _runtime(store, SLUICE_MODEL_CACHE="disabled", SLUICE_MODEL_PINNED=pinned)
    assert _ask(runtime, store, "forest-0") and _ask(runtime, store, "forest-0")
    assert not _ask(runtime, store, "forest-1")
    assert [Path(d).name for d in runtime.models] == ["forest-0"]


def test_a_pinned_model_outside_the_store_is_refused(store: Path) -> None:
    pinned = json.dumps([["sklearn", str(store / "forest-1")]])
    with pytest.raises(ValidationError, match="no model"):
        _runtime(store / "forest-0", SLUICE_MODEL_PINNED=pinned)
