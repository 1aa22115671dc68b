from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.errors import NotFound, ValidationError, WorkerUnavailable
from sluice.gateway.metrics import Metrics
from sluice.gateway.routing import Router, RouteTable, VariantRoute
from sluice.gateway.sticky import owner, rebalance

METRICS = Metrics()


def _table(weights: dict[str, float], **kwargs: Any) -> RouteTable:
    routes = tuple(
        VariantRoute(name, None, w, METRICS.for_variant("ep", name))  # type: ignore[arg-type]
        for name, w in weights.items()
    )
    return RouteTable("ep", routes, **kwargs)


def test_weighted_pick_follows_weights() -> None:
    random.seed(1)
    table = _table({"A": 1, "B": 3, "C": 0})
    counts = Counter(table.pick().name for _ in range(40_000))
    assert counts["C"] == 0
    assert abs(counts["B"] / 40_000 - 0.75) < 0.015


def test_target_variant() -> None:
    table = _table({"A": 1, "B": 0})
    assert table.pick(target="B").name == "B"  # a target overrides a zero weight, as SageMaker
    with pytest.raises(ValidationError, match="'Z' is not a production variant") as info:
        table.pick(target="Z")
    assert info.value.field == "X-Amzn-SageMaker-Target-Variant"


def test_all_zero_weights() -> None:
    with pytest.raises(WorkerUnavailable):
        _table({"A": 0}).pick()


def _sticky(weights: dict[str, float], previous: RouteTable | None = None) -> RouteTable:
    layout = rebalance(previous.sticky_layout if previous else (), weights)
    return _table(weights, sticky_header="x-user", sticky_layout=tuple(layout))


def test_sticky_keys_stay_and_move_minimally() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    before = _sticky({"A": 50, "B": 50})
    after = _sticky({"A": 40, "B": 50, "C": 10}, before)
    first = {k: before.pick(sticky_key=k).name for k in keys}
    assert all(before.pick(sticky_key=k).name == first[k] for k in keys[:500])
    share_a = sum(v == "A" for v in first.values()) / len(keys)
    assert abs(share_a - 0.5) < 0.02
    second = {k: after.pick(sticky_key=k).name for k in keys}
    moved = [k for k in keys if first[k] != second[k]]
    # only keys that go to the new variant move, about its 10 % share
    assert all(second[k] == "C" for k in moved)
    assert abs(len(moved) / len(keys) - 0.10) < 0.02
    later = _sticky({"A": 40, "B": 20, "C": 40}, after)
    third = {k: later.pick(sticky_key=k).name for k in keys}
    moved = [k for k in keys if second[k] != third[k]]
    assert all(second[k] == "B" and third[k] == "C" for k in moved)
    assert abs(len(moved) / len(keys) - 0.30) < 0.02


@given(
    st.lists(
        st.dictionaries(st.sampled_from("ABCD"), st.integers(0, 100), min_size=1),
        min_size=1,
        max_size=6,
    )
)
def test_rebalance_moves_exactly_the_weight_change(steps: list[dict[str, int]]) -> None:
    layout: list = []
    previous: dict[str, float] = {}
    for weights in steps:
        total = sum(weights.values())
        if total == 0:
            continue
        new = rebalance(layout, weights)
        share = {v: sum(e - s for s, e, o in new if o == v) for v in "ABCD"}
        for v in "ABCD":
            assert abs(share[v] - weights.get(v, 0) / total) < 1e-9
        assert abs(sum(e - s for s, e, _ in new) - 1) < 1e-9
        if layout:
            moved = _moved(layout, new)
            change = sum(max(previous.get(v, 0) - weights.get(v, 0) / total, 0) for v in "ABCD")
            assert abs(moved - change) < 1e-9
        layout, previous = new, {v: w / total for v, w in weights.items()}


def _moved(old: list, new: list) -> float:
    points = sorted({p for s, e, _ in old + new for p in (s, e)})
    moved = 0.0
    for a, b in zip(points, points[1:], strict=False):
        mid = (a + b) / 2
        if owner(old, [s for s, _, _ in old], mid) != owner(new, [s for s, _, _ in new], mid):
            moved += b - a
    return moved


def test_router_swaps_whole_tables_and_explains_missing_ones() -> None:
    router = Router()
    with pytest.raises(NotFound):
        router.get("ep")
    router.withdraw("ep", reason="it is being created")
    with pytest.raises(ValidationError, match="not in service: it is being created"):
        router.get("ep")
    table = _table({"A": 1})
    router.publish(table)
    assert router.get("ep") is table
