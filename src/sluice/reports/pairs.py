"""Production and shadow answers to the same rows, joined on row keys (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sluice.reports.collect import VariantData, Vocabulary, find_inputs

DISAGREEMENT_SAMPLE = 10
TOP_K = 3


@dataclass
class Pairs:
    keys: np.ndarray
    codes_a: np.ndarray
    """Baseline labels as codes of the report's vocabulary."""
    codes_b: np.ndarray
    values_a: np.ndarray
    values_b: np.ndarray
    latency_a: np.ndarray
    latency_b: np.ndarray
    errored: int
    """Requests both answered where one side failed."""
    candidate_without_baseline: int
    top_k: int
    overlap: np.ndarray | None
    """Per pair, the share of the top-k labels both put first (NaN: no probabilities)."""
    distance: np.ndarray | None
    """Per pair, the total variation distance between the two probability vectors."""
    request_a: np.ndarray
    row_index: np.ndarray
    position_a: np.ndarray
    """Where each pair's baseline row sits in the baseline's capture (read order)."""

    def __len__(self) -> int:
        return len(self.keys)


def pair(a: VariantData, b: VariantData, vocabulary: Vocabulary) -> Pairs:
    keys, ia, ib = np.intersect1d(a.keys, b.keys, return_indices=True)
    codes_a = vocabulary.remap(a.labels, a.codes[ia])
    codes_b = vocabulary.remap(b.labels, b.codes[ib])
    both = np.intersect1d(a.request_keys, b.request_keys)
    answered = np.intersect1d(a.request_keys[a.answered], b.request_keys[b.answered])
    top_k, overlap, distance = 0, None, None
    if a.probabilities is not None and b.probabilities is not None and len(keys):
        top_k, overlap, distance = _probabilities(a, b, ia, ib, vocabulary)
    return Pairs(
        keys,
        codes_a,
        codes_b,
        a.values[ia],
        b.values[ib],
        a.row_latency_ms[ia],
        b.row_latency_ms[ib],
        int(len(both) - len(answered)),
        int(len(np.unique(b.request_keys)) - len(both)),
        top_k,
        overlap,
        distance,
        a.row_request[ia],
        a.row_index[ia],
        ia,
    )


def _probabilities(
    a: VariantData, b: VariantData, ia: np.ndarray, ib: np.ndarray, vocabulary: Vocabulary
) -> tuple[int, np.ndarray, np.ndarray]:
    assert a.probabilities is not None and b.probabilities is not None
    cols_a = vocabulary.remap(a.labels, np.array(a.probability_labels, dtype=np.int32))
    cols_b = vocabulary.remap(b.labels, np.array(b.probability_labels, dtype=np.int32))
    classes = np.union1d(cols_a, cols_b)
    where_a, where_b = np.searchsorted(classes, cols_a), np.searchsorted(classes, cols_b)
    n = len(ia)
    pa = np.zeros((n, len(classes)), dtype=np.float32)
    pb = np.zeros((n, len(classes)), dtype=np.float32)
    pa[:, where_a] = a.probabilities[ia]
    pb[:, where_b] = b.probabilities[ib]
    valid = ~(np.isnan(pa).any(axis=1) | np.isnan(pb).any(axis=1))
    k = min(TOP_K, len(classes))
    top_a = np.argpartition(-np.nan_to_num(pa), k - 1, axis=1)[:, :k]
    top_b = np.argpartition(-np.nan_to_num(pb), k - 1, axis=1)[:, :k]
    shared = sum((top_b == top_a[:, [j]]).any(axis=1) for j in range(k))
    overlap = np.where(valid, shared / k, np.nan)
    distance = np.where(valid, 0.5 * np.abs(pa - pb).sum(axis=1), np.nan)
    return k, overlap, distance


def disagreements(
    pairs: Pairs,
    vocabulary: Vocabulary,
    numeric: bool,
    baseline_folder: Path,
    start: float | None,
    end: float | None,
) -> list[dict[str, object]]:
    """The pairs that disagree most, with the request that caused each.

    Regression: the largest absolute differences. Classification: differing labels, the
    most confident disagreements first when probabilities are known.
    """
    if numeric:
        score = np.abs(pairs.values_b - pairs.values_a)
        score = np.where(np.isfinite(score), score, 0.0)
    else:
        differ = pairs.codes_a != pairs.codes_b
        score = np.where(differ, 1.0, 0.0)
        if pairs.distance is not None:
            score = np.where(differ, np.nan_to_num(pairs.distance, nan=1.0), 0.0)
    # Ties go to the earliest requests: the capture is then read only as far as needed.
    order = np.lexsort((pairs.position_a, -score))[:DISAGREEMENT_SAMPLE]
    order = order[score[order] > 0]
    inputs = find_inputs(baseline_folder, {int(pairs.request_a[i]) for i in order}, start, end)
    out: list[dict[str, object]] = []
    for i in order:
        inference_id, text = inputs.get(int(pairs.request_a[i]), ("?", ""))
        out.append(
            {
                "inference_id": inference_id,
                "row": int(pairs.row_index[i]),
                "baseline": _label(vocabulary, pairs.codes_a[i], pairs.values_a[i], numeric),
                "candidate": _label(vocabulary, pairs.codes_b[i], pairs.values_b[i], numeric),
                "score": round(float(score[i]), 6),
                "input": text,
            }
        )
    return out


def _label(vocabulary: Vocabulary, code: int, value: float, numeric: bool) -> str:
    if numeric or code < 0:
        return repr(float(value))
    return vocabulary.labels[code]
