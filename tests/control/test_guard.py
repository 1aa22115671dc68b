from __future__ import annotations

import numpy as np

from sluice.control.guard import compare, error_rate, latency_shift, latency_tail
from sluice.control.policies import ComparativeGuard
from sluice.gateway.fleet_stats import FleetStats, bin_of

ALPHA = 0.01


def _bins(latencies: np.ndarray) -> dict[int, int]:
    out: dict[int, int] = {}
    for value in latencies:
        index = bin_of(float(value))
        out[index] = out.get(index, 0) + 1
    return out


def test_sparse_errors_do_not_trip_the_error_check() -> None:
    # A lone error on a fleet with a tenth of the traffic is no evidence, nor are a few
    # errors on both fleets; a z-test on such counts divides by a variance near zero.
    assert not error_rate(1, 200, 0, 1800, 0.0, ALPHA).worse
    assert not error_rate(2, 200, 1, 1800, 0.0, ALPHA).worse
    assert not error_rate(1, 200, 3, 1800, 0.0, ALPHA).worse
    assert not error_rate(0, 200, 0, 1800, 0.0, ALPHA).worse
    # Two errors, both on green, happen by chance one time in a hundred: at the level a
    # deployment uses once alpha is split over its looks (0.05 / 60 here) that is no alarm.
    assert not error_rate(2, 200, 0, 1800, 0.0, 0.05 / 60).worse


def test_a_real_error_rate_rise_trips_it() -> None:
    check = error_rate(12, 200, 1, 1800, 0.0, ALPHA)
    assert check.worse and check.decided and check.p_value is not None and check.p_value < ALPHA


def test_the_margin_tolerates_a_small_significant_rise() -> None:
    # 2 % vs 0 % on many requests is significant, but within a 5-point margin.
    assert error_rate(200, 10_000, 0, 10_000, 0.0, ALPHA).worse
    assert not error_rate(200, 10_000, 0, 10_000, 0.05, ALPHA).worse


def test_too_few_requests_is_undecided() -> None:
    check = error_rate(3, 10, 0, 10, 0.0, ALPHA, minimum=50)
    assert not check.decided and not check.worse


def test_latency_shift_catches_a_slower_green_and_respects_the_margin() -> None:
    rng = np.random.default_rng(1)
    blue = _bins(rng.lognormal(np.log(0.010), 0.3, 2000))
    slower = _bins(rng.lognormal(np.log(0.015), 0.3, 300))  # 50 % slower
    same = _bins(rng.lognormal(np.log(0.010), 0.3, 300))
    assert latency_shift(blue, slower, 0.2, ALPHA).worse
    assert not latency_shift(blue, slower, 0.8, ALPHA).worse  # within an 80 % margin
    assert not latency_shift(blue, same, 0.2, ALPHA).worse


def test_latency_tail_catches_a_growing_tail_that_a_rank_test_misses() -> None:
    rng = np.random.default_rng(2)
    blue = _bins(rng.lognormal(np.log(0.010), 0.2, 5000))
    body = rng.lognormal(np.log(0.010), 0.2, 4750)
    tail = rng.lognormal(np.log(0.200), 0.2, 250)  # 5 % of requests 20x slower
    green = _bins(np.concatenate([body, tail]))
    assert not latency_shift(blue, green, 0.2, ALPHA).worse
    assert latency_tail(blue, green, 99, 0.2, ALPHA).worse
    same = _bins(rng.lognormal(np.log(0.010), 0.2, 5000))
    assert not latency_tail(blue, same, 99, 0.2, ALPHA).worse


def test_compare_reads_windows_of_fleet_stats() -> None:
    blue, green = FleetStats(), FleetStats()
    for i in range(1000):
        blue.record(0.002, 0.0001, 0)
        green.record(0.002, 0.0001, 5 if i % 5 == 0 else 0)
    checks = compare(blue.snapshot(), green.snapshot(), ComparativeGuard(), ALPHA)
    by_name = {c.name: c for c in checks}
    assert by_name["5xx error rate"].worse
    assert not by_name["latency shift"].worse  # identical latencies: all ties
