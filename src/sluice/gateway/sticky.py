"""Sticky routing: the key space [0, 1) is laid out in segments, one variant each.

A key's hash picks a point, the point picks a segment. When weights change, `rebalance`
trims the segments of variants whose share fell and hands the freed space to variants
whose share rose, so the share of keys that move equals the change in weights (the least
any scheme can move) and every other key stays where it was.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence

Segment = tuple[float, float, str]
"""[start, end) of the key space and the variant that owns it."""

EPSILON = 1e-12


def key_point(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def rebalance(layout: Sequence[Segment], weights: Mapping[str, float]) -> list[Segment]:
    """A layout whose shares equal `weights` (normalised), moving as little as possible."""
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return []
    target = {v: w / total for v, w in weights.items() if w > 0}
    kept: list[Segment] = []
    free: list[tuple[float, float]] = []
    share: dict[str, float] = dict.fromkeys(target, 0.0)
    covered = 0.0
    for start, end, variant in layout:
        covered = max(covered, end)
        room = target.get(variant, 0.0) - share.get(variant, 0.0)
        if room <= EPSILON:
            free.append((start, end))
        elif end - start <= room + EPSILON:
            kept.append((start, end, variant))
            share[variant] += end - start
        else:
            kept.append((start, start + room, variant))
            share[variant] += room
            free.append((start + room, end))
    if covered < 1.0:
        free.append((covered, 1.0))
    for variant, goal in target.items():
        need = goal - share[variant]
        while need > EPSILON and free:
            start, end = free.pop(0)
            take = min(end - start, need)
            kept.append((start, start + take, variant))
            need -= take
            if end - (start + take) > EPSILON:
                free.insert(0, (start + take, end))
    return _merge(sorted(kept))


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for start, end, variant in segments:
        if end - start <= EPSILON:
            continue
        if merged and merged[-1][2] == variant and abs(merged[-1][1] - start) <= EPSILON:
            merged[-1] = (merged[-1][0], end, variant)
        else:
            merged.append((start, end, variant))
    return merged


def owner(layout: Sequence[Segment], starts: Sequence[float], point: float) -> str:
    """The variant whose segment holds `point` (`starts` are the segments' starts)."""
    index = max(bisect.bisect_right(starts, point) - 1, 0)
    return layout[index][2]
