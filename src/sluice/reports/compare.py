"""Build a comparison report (a JSON-ready dict, schema `sluice.report/1`) from capture.

Two kinds: `shadow` pairs a production variant's answers with each shadow's answers to
the same requests; `ab` compares production variants that each answered their own share
of traffic. Both join ground truth (by inference id and row) and outcomes, and end in a
one-line verdict per candidate on quality and on latency.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sluice.gateway.fleet_stats import bin_edge, mean, percentile, to_ms
from sluice.reports import stats
from sluice.reports.collect import (
    MAX_CLASSES,
    KeyedValues,
    VariantData,
    Vocabulary,
    extract_all,
    read_ground_truth,
    read_outcomes,
)
from sluice.reports.pairs import Pairs, disagreements, pair
from sluice.reports.stats import rounded

SCHEMA = "sluice.report/1"
MIN_LABELLED = 30
"""Fewer labelled rows than this: the quality verdict is "not enough ground truth"."""
CONFUSION_LABELS = 30


@dataclass(frozen=True)
class ReportOptions:
    alpha: float = 0.05
    latency_margin: float = 0.05
    """Latency differences smaller than this share are "no detectable difference"."""
    quality_margin: float = 0.0
    """Quality differences (accuracy points, or MAE) smaller than this are not called."""
    problem_type: str | None = None
    """classification or regression; None: inferred from the predictions."""
    bootstrap_rounds: int = 100


@dataclass(frozen=True)
class Source:
    """Where the capture of one endpoint and its labels are."""

    endpoint: str
    capture_root: Path
    ground_truth_root: Path | None = None
    outcomes_root: Path | None = None
    start: float | None = None
    end: float | None = None
    folders: Mapping[str, Path] = field(default_factory=dict)
    """Variants whose capture lies elsewhere (a replay's output)."""

    def variant_folder(self, variant: str) -> Path:
        return self.folders.get(variant) or self.capture_root / self.endpoint / variant


@dataclass
class Extras:
    """Figures only the running server knows, per variant (optional)."""

    cpu_seconds: dict[str, float] = field(default_factory=dict)
    memory_bytes: dict[str, float] = field(default_factory=dict)
    shed_copies: dict[str, float] = field(default_factory=dict)


def shadow_report(
    source: Source,
    baseline: str,
    candidates: Sequence[str],
    options: ReportOptions = ReportOptions(),
    extras: Extras | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Production variant `baseline` against each shadow in `candidates`, pair by pair."""
    started = time.perf_counter()
    data, vocabulary, truth, _ = _read(source, [baseline, *candidates], with_outcomes=False)
    problem = _problem(options, data.values())
    report = _header("shadow", source, baseline, list(candidates), problem, title)
    base_requests = len(data[baseline].status)
    report["variants"] = {
        name: _operational(
            name, "production" if name == baseline else "shadow", d, base_requests, extras
        )
        for name, d in data.items()
    }
    report["comparisons"] = [
        _paired(
            source,
            baseline,
            c,
            pair(data[baseline], data[c], vocabulary),
            truth,
            vocabulary,
            problem,
            options,
        )
        for c in candidates
    ]
    report["labels"] = {"ground_truth_rows": len(truth)}
    report["seconds_to_compute"] = round(time.perf_counter() - started, 3)
    return report


def ab_report(
    source: Source,
    baseline: str,
    candidates: Sequence[str],
    options: ReportOptions = ReportOptions(),
    extras: Extras | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Production variants that split live traffic: `baseline` against each candidate."""
    started = time.perf_counter()
    data, vocabulary, truth, outcomes = _read(source, [baseline, *candidates], with_outcomes=True)
    problem = _problem(options, data.values())
    report = _header("ab", source, baseline, list(candidates), problem, title)
    total = sum(len(d.status) for d in data.values())
    report["variants"] = {
        name: _operational(name, "production", d, total, extras) for name, d in data.items()
    }
    report["comparisons"] = [
        _unpaired(data[baseline], data[c], vocabulary, truth, outcomes, problem, options)
        for c in candidates
    ]
    report["labels"] = {
        "ground_truth_rows": len(truth),
        "outcomes": {name: len(values) for name, values in outcomes.items()},
    }
    report["seconds_to_compute"] = round(time.perf_counter() - started, 3)
    return report


# -- parts


def _read(
    source: Source, names: Sequence[str], with_outcomes: bool
) -> tuple[dict[str, VariantData], Vocabulary, KeyedValues, dict[str, KeyedValues]]:
    """Each variant's capture in the window, with the labels (and outcomes) read meanwhile."""
    vocabulary = Vocabulary()
    data, (truth, outcomes) = extract_all(
        [(source.variant_folder(n), n) for n in names],
        source.start,
        source.end,
        lambda: (_truth(source, vocabulary), _outcomes(source) if with_outcomes else {}),
    )
    return data, vocabulary, truth, outcomes


def _truth(source: Source, vocabulary: Vocabulary) -> KeyedValues:
    if source.ground_truth_root is None:
        return KeyedValues.empty()
    return read_ground_truth(source.ground_truth_root / source.endpoint, vocabulary)


def _outcomes(source: Source) -> dict[str, KeyedValues]:
    if source.outcomes_root is None:
        return {}
    return read_outcomes(source.outcomes_root / source.endpoint)


def _problem(options: ReportOptions, data: Iterable[VariantData]) -> str:
    if options.problem_type:
        return options.problem_type
    data = list(data)
    labels = {label for d in data for label in d.labels}
    fractional = any(d.fractional for d in data)
    return "regression" if fractional or len(labels) >= MAX_CLASSES else "classification"


def _header(
    kind: str,
    source: Source,
    baseline: str,
    candidates: list[str],
    problem: str,
    title: str | None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": kind,
        "title": title or f"{source.endpoint}: {', '.join(candidates)} against {baseline}",
        "endpoint": source.endpoint,
        "window": {"start": source.start, "end": source.end},
        "generated_at": time.time(),
        "baseline": baseline,
        "candidates": candidates,
        "problem_type": problem,
    }


def _operational(
    name: str, role: str, data: VariantData, reference_requests: int, extras: Extras | None
) -> dict[str, Any]:
    s = data.stats()
    bins = s.model_bins
    ms = {q: to_ms(percentile(bins, q)) for q in (50, 90, 99)}
    out: dict[str, Any] = {
        "role": role,
        "requests": s.invocations,
        "rows": len(data.keys),
        "share": round(s.invocations / reference_requests, 6) if reference_requests else None,
        "errors": {"4xx": s.errors_4xx, "5xx": s.errors_5xx},
        "error_rate": (
            round((s.errors_4xx + s.errors_5xx) / s.invocations, 6) if s.invocations else None
        ),
        "latency_ms": {
            "p50": ms[50],
            "p90": ms[90],
            "p99": ms[99],
            "mean": to_ms(mean(bins)),
            "histogram": _histogram(bins),
        },
        "first_at": data.first if math.isfinite(data.first) else None,
        "last_at": data.last if math.isfinite(data.last) else None,
    }
    if extras is not None:
        out["cpu_seconds"] = extras.cpu_seconds.get(name)
        out["memory_bytes"] = extras.memory_bytes.get(name)
        if role == "shadow":
            out["shed_copies"] = extras.shed_copies.get(name)
    return out


def _histogram(bins: Mapping[int, int], merge: int = 10) -> dict[str, list[float]]:
    """Latency bins merged `merge` at a time (10 % wide): edges in ms and counts."""
    if not bins:
        return {"edges_ms": [], "counts": []}
    low, high = min(bins) // merge, max(bins) // merge
    counts = [0] * (high - low + 1)
    for index, count in bins.items():
        counts[index // merge - low] += count
    edges = [round(bin_edge((low + i) * merge) * 1000, 4) for i in range(high - low + 2)]
    return {"edges_ms": edges, "counts": [float(c) for c in counts]}


# -- shadow: paired comparison


def _paired(
    source: Source,
    baseline: str,
    candidate: str,
    pairs: Pairs,
    truth: KeyedValues,
    vocabulary: Vocabulary,
    problem: str,
    options: ReportOptions,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "baseline": baseline,
        "candidate": candidate,
        "paired_rows": len(pairs),
        "errored_pairs": pairs.errored,
        "candidate_without_baseline": pairs.candidate_without_baseline,
    }
    numeric = problem == "regression"
    if numeric:
        out["differences"] = _differences(pairs.values_a, pairs.values_b)
    else:
        out["agreement"] = _agreement(pairs, vocabulary)
    out["disagreements"] = disagreements(
        pairs, vocabulary, numeric, source.variant_folder(baseline), source.start, source.end
    )
    found, truth_codes, truth_values = truth.lookup(pairs.keys)
    if numeric:
        out["quality"] = _paired_regression(found, truth_values, pairs.values_a, pairs.values_b)
    else:
        out["quality"] = _paired_classification(
            found, truth_codes, pairs.codes_a, pairs.codes_b, len(vocabulary.labels), options
        )
    out["latency"] = _paired_latency(pairs.latency_a, pairs.latency_b, options)
    out["verdict"] = _verdict(baseline, candidate, problem, out["quality"], out["latency"], options)
    return out


def _agreement(pairs: Pairs, vocabulary: Vocabulary) -> dict[str, Any]:
    codes_a, codes_b = pairs.codes_a, pairs.codes_b
    n = len(codes_a)
    agree = int(np.count_nonzero(codes_a == codes_b))
    both = np.concatenate([codes_a, codes_b])
    both = both[both >= 0]
    counts = np.bincount(both, minlength=len(vocabulary.labels))
    shown = [int(c) for c in np.argsort(-counts, kind="stable")[:CONFUSION_LABELS] if counts[c]]
    shown.sort(key=lambda c: _sort_key(vocabulary.labels[c]))
    table = np.zeros((len(shown), len(shown)), dtype=np.int64)
    if shown:
        index = np.full(len(vocabulary.labels) + 1, -1)
        index[shown] = np.arange(len(shown))
        ia, ib = index[codes_a], index[codes_b]
        keep = (ia >= 0) & (ib >= 0)
        np.add.at(table, (ia[keep], ib[keep]), 1)
    overlap = pairs.overlap
    known = overlap[np.isfinite(overlap)] if overlap is not None else np.zeros(0)
    return {
        "rate": stats.wilson(agree, n).to_dict(),
        "agreeing_rows": agree,
        "top_k": {
            "k": pairs.top_k,
            "overlap": rounded(float(known.mean())) if len(known) else None,
            "rows": int(len(known)),
        },
        "confusion": {
            "labels": [vocabulary.labels[c] for c in shown],
            "counts": table.tolist(),
            "note": "rows: baseline's label; columns: candidate's label",
        },
    }


def _sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _differences(values_a: np.ndarray, values_b: np.ndarray) -> dict[str, Any]:
    ok = np.isfinite(values_a) & np.isfinite(values_b)
    d = values_b[ok] - values_a[ok]
    if len(d) == 0:
        return {"rows": 0}
    correlation = float(np.corrcoef(values_a[ok], values_b[ok])[0, 1]) if len(d) > 1 else math.nan
    counts, edges = np.histogram(d, bins=30)
    return {
        "rows": int(len(d)),
        "mean": rounded(float(d.mean())),
        "median": rounded(float(np.median(d))),
        "max_abs": rounded(float(np.abs(d).max())),
        "correlation": rounded(correlation),
        "histogram": {
            "edges": [rounded(float(e)) for e in edges],
            "counts": counts.astype(float).tolist(),
        },
    }


def _paired_classification(
    found: np.ndarray,
    truth_codes: np.ndarray,
    codes_a: np.ndarray,
    codes_b: np.ndarray,
    classes: int,
    options: ReportOptions,
) -> dict[str, Any]:
    n = int(np.count_nonzero(found))
    out: dict[str, Any] = {"labelled_rows": n, "metric": "accuracy"}
    if n == 0:
        out["status"] = "no ground truth yet"
        return out
    t, a, b = truth_codes[found], codes_a[found], codes_b[found]
    right_a, right_b = a == t, b == t
    test = stats.paired_proportions(right_a, right_b)
    size = max(classes, int(max(t.max(), a.max(), b.max())) + 1)
    f1_a, f1_b, f1_d = stats.bootstrap_f1(
        t.astype(np.int64),
        np.maximum(a, 0).astype(np.int64),
        np.maximum(b, 0).astype(np.int64),
        size,
        options.bootstrap_rounds,
    )
    out.update(
        {
            "status": "ok"
            if n >= MIN_LABELLED
            else f"not enough ground truth ({n} of {MIN_LABELLED} rows)",
            "baseline": {
                "accuracy": stats.wilson(int(right_a.sum()), n).to_dict(),
                "f1_macro": f1_a.to_dict(),
            },
            "candidate": {
                "accuracy": stats.wilson(int(right_b.sum()), n).to_dict(),
                "f1_macro": f1_b.to_dict(),
            },
            "difference": {"accuracy": test.difference.to_dict(), "f1_macro": f1_d.to_dict()},
            "test": {
                "name": "McNemar exact (paired)",
                "p_value": rounded(test.p_value),
                "only_baseline_right": test.only_baseline_right,
                "only_candidate_right": test.only_candidate_right,
            },
            "mde": rounded(test.mde),
        }
    )
    return out


def _paired_regression(
    found: np.ndarray, truth_values: np.ndarray, values_a: np.ndarray, values_b: np.ndarray
) -> dict[str, Any]:
    ok = found & np.isfinite(truth_values) & np.isfinite(values_a) & np.isfinite(values_b)
    n = int(np.count_nonzero(ok))
    out: dict[str, Any] = {"labelled_rows": n, "metric": "mae"}
    if n == 0:
        out["status"] = "no ground truth yet"
        return out
    err_a = np.abs(values_a[ok] - truth_values[ok])
    err_b = np.abs(values_b[ok] - truth_values[ok])
    test = stats.paired_numbers(err_a, err_b)
    out.update(
        {
            "status": "ok"
            if n >= MIN_LABELLED
            else f"not enough ground truth ({n} of {MIN_LABELLED} rows)",
            "baseline": {"mae": stats.mean_interval(err_a).to_dict(), "rmse": _rmse(err_a)},
            "candidate": {"mae": stats.mean_interval(err_b).to_dict(), "rmse": _rmse(err_b)},
            "difference": {"mae": test.difference.to_dict()},
            "test": {
                "name": "Wilcoxon signed-rank on absolute errors (paired)",
                "p_value": rounded(test.p_value),
            },
            "mde": rounded(test.mde),
        }
    )
    return out


def _rmse(errors: np.ndarray) -> dict[str, Any]:
    mse = stats.mean_interval(errors * errors)
    root = stats.Estimate(
        math.sqrt(mse.value), math.sqrt(max(mse.low, 0.0)), math.sqrt(max(mse.high, 0.0))
    )
    return root.to_dict()


def _paired_latency(
    latency_a: np.ndarray, latency_b: np.ndarray, options: ReportOptions
) -> dict[str, Any]:
    ok = (latency_a > 0) & (latency_b > 0)
    n = int(np.count_nonzero(ok))
    if n < 2:
        return {"pairs": n, "status": "too few pairs"}
    la, lb = np.log(latency_a[ok]), np.log(latency_b[ok])
    test = stats.paired_numbers(la, lb)
    d = test.difference
    return {
        "pairs": n,
        "status": "ok",
        "baseline_p50_ms": rounded(float(np.median(latency_a[ok]))),
        "candidate_p50_ms": rounded(float(np.median(latency_b[ok]))),
        "baseline_p99_ms": rounded(float(np.percentile(latency_a[ok], 99))),
        "candidate_p99_ms": rounded(float(np.percentile(latency_b[ok], 99))),
        "ratio": stats.Estimate(math.exp(d.value), math.exp(d.low), math.exp(d.high)).to_dict(),
        "test": {
            "name": "Wilcoxon signed-rank on log latency (paired)",
            "p_value": rounded(test.p_value),
        },
        "margin": options.latency_margin,
    }


# -- A/B: unpaired comparison


def _unpaired(
    a: VariantData,
    b: VariantData,
    vocabulary: Vocabulary,
    truth: KeyedValues,
    outcomes: Mapping[str, KeyedValues],
    problem: str,
    options: ReportOptions,
) -> dict[str, Any]:
    baseline, candidate = a.variant, b.variant
    ka, ca, va, la = a.keys, vocabulary.remap(a.labels, a.codes), a.values, a.latency_ms
    kb, cb, vb, lb = b.keys, vocabulary.remap(b.labels, b.codes), b.values, b.latency_ms
    out: dict[str, Any] = {
        "baseline": baseline,
        "candidate": candidate,
        "rows": {baseline: len(ka), candidate: len(kb)},
    }
    fa, ta, tva = truth.lookup(ka)
    fb, tb, tvb = truth.lookup(kb)
    na, nb = int(fa.sum()), int(fb.sum())
    quality: dict[str, Any] = {"labelled_rows": {baseline: na, candidate: nb}}
    if na == 0 or nb == 0:
        quality["status"] = "no ground truth yet"
    elif problem == "classification":
        quality["metric"] = "accuracy"
        test = stats.two_proportions(
            int((ca[fa] == ta[fa]).sum()), na, int((cb[fb] == tb[fb]).sum()), nb
        )
        quality.update(_two_samples(test, "accuracy"))
        quality["status"] = "ok" if min(na, nb) >= MIN_LABELLED else "not enough ground truth"
    else:
        quality["metric"] = "mae"
        ok_a = np.isfinite(va[fa]) & np.isfinite(tva[fa])
        okb = np.isfinite(vb[fb]) & np.isfinite(tvb[fb])
        test = stats.two_means(np.abs(va[fa] - tva[fa])[ok_a], np.abs(vb[fb] - tvb[fb])[okb])
        quality.update(_two_samples(test, "mae"))
        quality["status"] = "ok" if min(na, nb) >= MIN_LABELLED else "not enough ground truth"
    out["quality"] = quality
    out["outcomes"] = {
        name: _outcome(values, a.request_keys, b.request_keys) for name, values in outcomes.items()
    }
    log_a, log_b = np.log(la[la > 0]), np.log(lb[lb > 0])
    latency = stats.two_means(log_a, log_b)
    out["latency"] = {
        "status": "ok"
        if latency.n_baseline > 1 and latency.n_candidate > 1
        else "too few requests",
        "baseline_p50_ms": rounded(float(np.median(la))) if len(la) else None,
        "candidate_p50_ms": rounded(float(np.median(lb))) if len(lb) else None,
        "ratio": stats.Estimate(
            *(
                math.exp(x)
                for x in (latency.difference.value, latency.difference.low, latency.difference.high)
            )
        ).to_dict(),
        "test": {"name": "Welch t on log latency", "p_value": rounded(latency.p_value)},
        "margin": options.latency_margin,
    }
    out["verdict"] = _verdict(baseline, candidate, problem, quality, out["latency"], options)
    return out


def _outcome(values: KeyedValues, keys_a: np.ndarray, keys_b: np.ndarray) -> dict[str, Any]:
    """An outcome per request (a row-0 key); requests without one count as 0."""
    fa, _, xa = values.lookup(keys_a)
    fb, _, xb = values.lookup(keys_b)
    xa, xb = np.where(fa, xa, 0.0), np.where(fb, xb, 0.0)
    binary = bool(np.isin(values.values, (0.0, 1.0)).all())
    if binary:
        test = stats.two_proportions(int(xa.sum()), len(xa), int(xb.sum()), len(xb))
        kind = "rate"
    else:
        test = stats.two_means(xa, xb)
        kind = "mean"
    return {
        "kind": kind,
        "posted": {"baseline": int(fa.sum()), "candidate": int(fb.sum())},
        **_two_samples(test, kind),
    }


def _two_samples(test: stats.TwoSamples, metric: str) -> dict[str, Any]:
    return {
        "baseline": {metric: test.baseline.to_dict(), "n": test.n_baseline},
        "candidate": {metric: test.candidate.to_dict(), "n": test.n_candidate},
        "difference": {metric: test.difference.to_dict()},
        "test": {
            "name": test.test,
            "p_value": rounded(test.p_value),
            "always_valid_p_value": rounded(test.always_valid_p),
            "sequential": "mixture SPRT (always valid: look as often as you like)",
        },
        "mde": rounded(test.mde),
        "power": rounded(test.power),
    }


# -- verdicts


def _verdict(
    baseline: str,
    candidate: str,
    problem: str,
    quality: Mapping[str, Any],
    latency: Mapping[str, Any],
    options: ReportOptions,
) -> dict[str, str]:
    q, q_why = _quality_verdict(problem, quality, options)
    lat, lat_why = _latency_verdict(latency, options)
    line = f"{candidate} against {baseline}: quality {q} ({q_why}); latency {lat} ({lat_why})"
    return {"quality": q, "latency": lat, "summary": line}


def _quality_verdict(
    problem: str, quality: Mapping[str, Any], options: ReportOptions
) -> tuple[str, str]:
    status = quality.get("status")
    if status != "ok":
        return "unknown", str(status)
    metric = quality["metric"]
    diff = quality["difference"][metric]
    value = diff["value"]
    test = quality["test"]
    # A/B tests are looked at repeatedly: decide on the always-valid p-value.
    p = test["always_valid_p_value"] if "always_valid_p_value" in test else test["p_value"]
    better_when_higher = metric == "accuracy"
    base_value = quality["baseline"][metric]["value"]
    cand_value = quality["candidate"][metric]["value"]
    low, high = (_fmt(x) for x in diff["ci95"])
    evidence = (
        f"{metric} {cand_value:.4g} vs {base_value:.4g}, difference {value:+.4g} "
        f"[{low}, {high}], p={_p(p)}"
    )
    if p is not None and p < options.alpha and abs(value) > options.quality_margin:
        good = value > 0 if better_when_higher else value < 0
        return ("better" if good else "worse"), evidence
    mde = quality.get("mde")
    detect = f"; could detect {mde:.3g}" if mde is not None else ""
    return "no detectable difference", evidence + detect


def _latency_verdict(latency: Mapping[str, Any], options: ReportOptions) -> tuple[str, str]:
    if latency.get("status") != "ok":
        return "unknown", str(latency.get("status"))
    ratio = latency["ratio"]
    p = latency["test"]["p_value"]
    r = ratio["value"]
    evidence = f"{r:.3f}x [{_fmt(ratio['ci95'][0])}, {_fmt(ratio['ci95'][1])}], p={_p(p)}"
    if p is not None and p < options.alpha:
        if r > 1 + options.latency_margin:
            return "worse", "slower: " + evidence
        if r < 1 - options.latency_margin:
            return "better", "faster: " + evidence
    return "no detectable difference", f"within ±{options.latency_margin:.0%}: " + evidence


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<1e-6" if p < 1e-6 else f"{p:.2g}"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
