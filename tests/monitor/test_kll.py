from __future__ import annotations

import json

import numpy as np
import pytest

from sluice.monitor.kll import KllSketch


def _sketch(values: np.ndarray, chunk: int = 10_000, **options: float) -> KllSketch:
    sketch = KllSketch(**options)  # type: ignore[arg-type]
    for start in range(0, len(values), chunk):
        sketch.update(values[start : start + chunk])
    return sketch


def _cdf_error(sketch: KllSketch, values: np.ndarray) -> float:
    ordered = np.sort(values)
    points = np.unique(np.quantile(values, np.linspace(0, 1, 4001)))
    exact = np.searchsorted(ordered, points, side="right") / len(values)
    return float(np.max(np.abs(sketch.cdf(points) - exact)))


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.normal(size=200_000),
        lambda rng: rng.exponential(3.0, size=200_000),
        lambda rng: rng.integers(0, 20, size=200_000).astype(float),  # heavy ties
    ],
    ids=["normal", "skewed", "discrete"],
)
def test_ranks_within_a_thousandth_of_exact(draw: object) -> None:
    values = draw(np.random.default_rng(11))  # type: ignore[operator]
    sketch = _sketch(values)
    assert sketch.count == len(values)
    assert _cdf_error(sketch, values) < 1e-3
    assert sketch.size < 3.5 * sketch.k  # a sketch, not a copy of the data


def test_ks_distance_from_the_sketch_matches_the_exact_one() -> None:
    rng = np.random.default_rng(5)
    reference, current = rng.normal(size=300_000), rng.normal(0.05, 1.0, size=100_000)
    ordered_ref, ordered_cur = np.sort(reference), np.sort(current)
    points = np.concatenate([ordered_ref, ordered_cur])
    cur_cdf = np.searchsorted(ordered_cur, points, side="right") / len(current)
    exact = np.max(np.abs(np.searchsorted(ordered_ref, points, side="right") / len(reference)
                          - cur_cdf))  # fmt: skip
    sketched = np.max(np.abs(_sketch(reference).cdf(points) - cur_cdf))
    assert abs(sketched - exact) < 1e-3


def test_quantiles_merge_and_round_trip() -> None:
    rng = np.random.default_rng(9)
    values = rng.lognormal(size=120_000)
    whole = _sketch(values)
    left, right = _sketch(values[:70_000]), _sketch(values[70_000:])
    left.merge(right)
    assert left.count == whole.count == len(values)
    assert _cdf_error(left, values) < 1e-3
    shares = np.array([0.01, 0.25, 0.5, 0.75, 0.99])
    exact = np.quantile(values, shares)
    got = whole.quantiles(shares)
    ranks = np.searchsorted(np.sort(values), got, side="right") / len(values)
    assert np.all(np.abs(ranks - shares) < 1e-3)
    copy = KllSketch.from_dict(json.loads(json.dumps(whole.to_dict())))
    assert copy.count == whole.count and (copy.k, copy.c) == (whole.k, whole.c)
    assert np.array_equal(copy.cdf(exact), whole.cdf(exact))


def test_small_inputs_and_bad_ones() -> None:
    sketch = KllSketch()
    assert np.isnan(sketch.quantiles([0.5])).all() and sketch.cdf([1.0]).tolist() == [0.0]
    sketch.update([3.0, 1.0, 2.0])
    assert sketch.quantiles([0.0, 0.5, 1.0]).tolist() == [1.0, 2.0, 3.0]  # exact while small
    assert sketch.cdf([0.5, 2.0, 9.0]).tolist() == [0.0, pytest.approx(2 / 3), 1.0]
    with pytest.raises(ValueError, match="NaN"):
        sketch.update([1.0, float("nan")])
    with pytest.raises(ValueError, match="k >= 8"):
        KllSketch(k=4)
