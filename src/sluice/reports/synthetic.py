"""Capture and ground-truth files of a known shape, written in the real formats.

For tests where the right answer is known in advance, for benchmarks, and for trying a
report without a server: a classifier pair whose accuracies and agreement are set, or a
regression pair with set error sizes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sluice.gateway.capture import CaptureEvent, CaptureTarget, to_record
from sluice.gateway.metrics import Metrics

FLUSH = 20_000


@dataclass(frozen=True)
class Scenario:
    requests: int = 1000
    classes: int = 10
    baseline_accuracy: float = 0.90
    candidate_accuracy: float = 0.90
    baseline_latency_ms: float = 2.0
    candidate_latency_ms: float = 2.0
    sampling: float = 1.0
    """Share of requests the shadow also answered."""
    labelled: float = 1.0
    """Share of requests with ground truth."""
    regression: bool = False
    probabilities: bool = False
    start: float = 1_790_000_000.0
    """Capture time of the first request (epoch seconds)."""
    rate: float = 1000.0
    """Requests per second of capture time."""
    seed: int = 0


def write(
    scenario: Scenario,
    capture_root: Path,
    truth_root: Path | None,
    endpoint: str = "ep",
    baseline: str = "A",
    candidate: str = "shadow",
) -> None:
    """Write both variants' capture (and ground truth) for `scenario` under the roots."""
    rng = np.random.default_rng(scenario.seed)
    target = CaptureTarget(capture_root, 100, True, True)
    metrics = Metrics().for_variant(endpoint, baseline)
    n = scenario.requests
    truth = rng.normal(0, 10, n) if scenario.regression else rng.integers(0, scenario.classes, n)
    a = _answers(rng, truth, scenario, scenario.baseline_accuracy)
    b = _answers(rng, truth, scenario, scenario.candidate_accuracy)
    lat_a = rng.lognormal(np.log(scenario.baseline_latency_ms), 0.3, n)
    lat_b = rng.lognormal(np.log(scenario.candidate_latency_ms), 0.3, n)
    sampled = rng.random(n) < scenario.sampling
    labelled = rng.random(n) < scenario.labelled
    files: dict[Path, list[str]] = {}

    def add(variant: str, i: int, when: float, output: str, latency: float) -> None:
        event = CaptureEvent(
            target,
            endpoint,
            variant,
            f"req-{i}",
            when,
            "application/json",
            json.dumps([[float(i % 7), 1.0]]).encode(),
            "application/json",
            output.encode(),
            float(latency),
            200,
            metrics,
        )
        hour = time.strftime("%Y/%m/%d/%H", time.gmtime(when))
        path = capture_root / endpoint / variant / hour / "00-00-000-synthetic.jsonl"
        lines = files.setdefault(path, [])
        lines.append(to_record(event))
        if len(lines) >= FLUSH:
            _flush(path, lines)

    for i in range(n):
        when = scenario.start + i / scenario.rate
        add(baseline, i, when, a[i], lat_a[i])
        if sampled[i]:
            add(candidate, i, when + lat_b[i] / 1000, b[i], lat_b[i])
    for path, lines in files.items():
        _flush(path, lines)
    if truth_root is not None:
        folder = truth_root / endpoint / time.strftime("%Y/%m/%d/%H", time.gmtime(scenario.start))
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "labels.jsonl").open("w") as f:
            for line in _truth_lines(truth, labelled, scenario.regression):
                f.write(line)


def _answers(
    rng: np.random.Generator, truth: np.ndarray, scenario: Scenario, accuracy: float
) -> list[str]:
    n = len(truth)
    if scenario.regression:
        # "accuracy" sets the error size: noise sd = 10 * (1 - accuracy)
        noisy = truth + rng.normal(0, 10 * (1 - accuracy) + 1e-9, n)
        return [json.dumps({"predictions": [round(float(v), 4) + 0.0001]}) for v in noisy]
    right = rng.random(n) < accuracy
    wrong = (truth + rng.integers(1, scenario.classes, n)) % scenario.classes
    labels = np.where(right, truth, wrong)
    out = []
    for label in labels:
        doc: dict[str, object] = {"predictions": [int(label)]}
        if scenario.probabilities:
            p = np.full(scenario.classes, 0.2 / (scenario.classes - 1))
            p[label] = 0.8
            doc["probabilities"] = [p.round(4).tolist()]
        out.append(json.dumps(doc))
    return out


def _truth_lines(truth: np.ndarray, labelled: np.ndarray, regression: bool) -> Iterator[str]:
    for i in np.flatnonzero(labelled):
        value = f"{truth[i]:.6f}" if regression else str(int(truth[i]))
        yield (
            json.dumps(
                {
                    "groundTruthData": {"data": value, "encoding": "CSV"},
                    "eventMetadata": {"eventId": f"req-{i}"},
                    "eventVersion": "0",
                }
            )
            + "\n"
        )


def _flush(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write("\n".join(lines) + "\n")
    lines.clear()
