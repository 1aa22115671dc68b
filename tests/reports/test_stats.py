"""The report's statistics against values worked out by hand or by reference code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score

from sluice.reports import stats


def test_wilson_interval_matches_the_textbook() -> None:
    e = stats.wilson(8, 10)  # Newcombe (1998), table I: 8/10 -> 0.4902 to 0.9433
    assert e.value == 0.8
    assert (round(e.low, 4), round(e.high, 4)) == (0.4902, 0.9433)
    assert math.isnan(stats.wilson(0, 0).value)


def test_mcnemar_exact_on_discordant_pairs() -> None:
    # 2 rows only the baseline got right, 8 only the candidate: p = 2 * (1+10+45) / 1024
    a = np.array([True] * 2 + [False] * 8 + [True] * 90)
    b = np.array([False] * 2 + [True] * 8 + [True] * 90)
    test = stats.paired_proportions(a, b)
    assert (test.only_baseline_right, test.only_candidate_right) == (2, 8)
    assert test.p_value == pytest.approx(2 * 56 / 1024)
    assert test.difference.value == pytest.approx(0.06)
    assert test.difference.low < 0.06 < test.difference.high
    assert stats.paired_proportions(a, a).p_value == 1.0


def test_two_proportion_z_test_by_hand() -> None:
    test = stats.two_proportions(50, 100, 65, 100)
    pooled = 115 / 200
    z = 0.15 / math.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert test.p_value == pytest.approx(2 * sps.norm.sf(z))
    assert test.difference.value == pytest.approx(0.15)
    assert 0 < test.difference.low < 0.15 < test.difference.high
    assert 0 < test.power < 1 and test.mde > 0


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(10, 2, 300), rng.normal(10.5, 3, 200)
    test = stats.two_means(x, y)
    assert test.p_value == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)
    assert test.difference.value == pytest.approx(y.mean() - x.mean())


def test_always_valid_p_is_the_inverse_mixture_likelihood_ratio() -> None:
    v, tau, d = 0.01, 0.1, 0.25
    ratio = math.sqrt(v / (v + tau**2)) * math.exp(d**2 * tau**2 / (2 * v * (v + tau**2)))
    assert stats.msprt_p(d, v, tau) == pytest.approx(1 / ratio)
    assert stats.msprt_p(0.0, v, tau) == 1.0  # no difference, no evidence
    # More data, same true difference: the evidence grows.
    assert stats.msprt_p(0.1, 0.0001, tau) < stats.msprt_p(0.1, 0.01, tau)


def test_always_valid_p_keeps_false_alarms_under_alpha_when_peeking() -> None:
    """A/A tests looked at after every 100 visitors: the share ever "significant" stays
    below 5 % with the sequential p-value, and is far above it with the fixed one."""
    rng = np.random.default_rng(7)
    sequential = fixed = 0
    runs = 200
    for _ in range(runs):
        a, b = rng.random(5000) < 0.1, rng.random(5000) < 0.1
        seq_hit = fix_hit = False
        for n in range(100, 5001, 100):
            t = stats.two_proportions(int(a[:n].sum()), n, int(b[:n].sum()), n)
            seq_hit |= t.always_valid_p < 0.05
            fix_hit |= t.p_value < 0.05
        sequential += seq_hit
        fixed += fix_hit
    assert sequential / runs <= 0.05
    assert fixed / runs > 0.15


def test_macro_f1_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, 500)
    predicted = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500))
    assert stats.macro_f1(truth, predicted, 4) == pytest.approx(
        f1_score(truth, predicted, average="macro")
    )
    fa, fb, diff = stats.bootstrap_f1(truth, predicted, truth, 4, rounds=50)
    assert fb.value == 1.0 and fa.low < fa.value < fa.high
    assert diff.low > 0


def test_paired_numbers_uses_wilcoxon() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(5, 1, 400)
    b = a + rng.normal(0.3, 1, 400)
    test = stats.paired_numbers(a, b)
    assert test.p_value == pytest.approx(sps.wilcoxon(b - a, zero_method="zsplit").pvalue)
    assert test.difference.low < 0.3 + 0.2 and test.mde > 0
