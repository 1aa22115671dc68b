"""Multivariate drift: how well the reference's principal components still reconstruct the
numeric features (the reconstruction error NannyML popularised).

The baseline standardises each numeric feature (missing values take the mean, i.e. 0), finds
the principal axes of their correlation and keeps the fewest that explain `EXPLAINED` of the
variance. A row's error is its squared distance to that subspace; the reference's mean error
is exactly the sum of the dropped eigenvalues, so no rows are kept. A current window whose
mean error has moved by more than `threshold` (relative) even after `Z_LIMIT` standard
errors are taken off the move is flagged: the effect must be large and sure. A correlation
that broke shows here even when every feature's own distribution is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

EXPLAINED = 0.9
DEFAULT_THRESHOLD = 0.1
Z_LIMIT = 3.0
"""Standard errors taken off the move before it is compared with the threshold."""
MIN_ROWS = 100

Matrix = NDArray[np.float64]


class Moments:
    """Second moments of the numeric features about their means, added a block at a time."""

    def __init__(self, names: list[str], means: list[float]) -> None:
        self.names = names
        self.means = np.asarray(means, dtype=float)
        self.product = np.zeros((len(names), len(names)))
        self.rows = 0

    def add(self, block: Matrix) -> None:
        """`block`: rows x features, NaN where missing."""
        centred = np.nan_to_num(block - self.means, nan=0.0)
        self.product += centred.T @ centred
        self.rows += len(block)

    def fit(self, explained: float = EXPLAINED) -> dict[str, Any] | None:
        """The model stored in statistics.json, or None with fewer than two usable features."""
        if self.rows < 2:
            return None
        variance = np.diag(self.product) / self.rows
        usable = variance > 1e-12
        if usable.sum() < 2:
            return None
        scale = np.sqrt(variance[usable])
        correlation = self.product[np.ix_(usable, usable)] / self.rows / np.outer(scale, scale)
        values, vectors = np.linalg.eigh(correlation)
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
        shares = np.cumsum(values) / values.sum()
        kept = min(int(np.searchsorted(shares, explained) + 1), len(values) - 1)
        return {
            "method": "pca_reconstruction_error",
            "features": [n for n, ok in zip(self.names, usable, strict=True) if ok],
            "mean": self.means[usable].tolist(),
            "scale": scale.tolist(),
            "components": vectors[:, :kept].T.tolist(),
            "explained_variance_ratio": float(shares[kept - 1]),
            "reference_error": float(values[kept:].sum()),
            "rows": self.rows,
        }


@dataclass
class ReconstructionCheck:
    """The current window's errors against a fitted model, added a block at a time."""

    model: dict[str, Any]
    total: float = 0.0
    squares: float = 0.0
    rows: int = 0

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.model["mean"], dtype=float)
        self.scale = np.asarray(self.model["scale"], dtype=float)
        self.components = np.asarray(self.model["components"], dtype=float)

    @property
    def features(self) -> list[str]:
        return list(self.model["features"])

    def add(self, block: Matrix) -> None:
        standard = np.nan_to_num((block - self.mean) / self.scale, nan=0.0)
        projected = standard @ self.components.T
        errors = np.square(standard).sum(axis=1) - np.square(projected).sum(axis=1)
        errors = np.clip(errors, 0.0, None)
        self.total += float(errors.sum())
        self.squares += float(np.square(errors).sum())
        self.rows += len(errors)

    def result(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
        """The verdict. The standard error counts both samples' noise: the reference's mean
        error, from `rows` rows, is taken to vary per row as the window's does."""
        reference = float(self.model["reference_error"])
        out: dict[str, Any] = {
            "method": self.model["method"],
            "features": self.features,
            "rows": self.rows,
            "reference_error": reference,
            "threshold": threshold,
        }
        if self.rows < MIN_ROWS or reference <= 0:
            return {**out, "status": "insufficient_data", "drift": False}
        current = self.total / self.rows
        variance = max(self.squares / self.rows - current**2, 0.0)
        reference_rows = max(int(self.model.get("rows", 0)), 1)
        spread = math.sqrt(variance / self.rows + variance / reference_rows)
        change = current / reference - 1
        if spread > 0:
            z = (current - reference) / spread
        else:
            z = 0.0 if change == 0 else math.copysign(math.inf, change)
        return {
            **out,
            "status": "ok",
            "current_error": current,
            "relative_change": change,
            "z": z,
            "robust_change": max(0.0, abs(change) - Z_LIMIT * spread / reference),
            "drift": bool(abs(change) - Z_LIMIT * spread / reference > threshold),
        }
