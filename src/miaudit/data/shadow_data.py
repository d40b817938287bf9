"""Shadow-model training records an attacker can make without the real data (Shokri et al. 2017).

``noisy``: the attacker's real records with a fraction of their features changed (binary features
flipped to their other value, continuous ones perturbed by Gaussian noise of the feature's spread,
clipped to its range). ``marginals``: records whose features are drawn independently from the
per-class marginal distribution of each feature in the attacker's data (labels kept), so every
feature keeps its domain but no correlation between features survives. ``synthesized`` needs the
trained target and lives in :mod:`miaudit.data.synthesis`.

All records are float32 [n, *feature_shape], as the models see them (already input-scaled).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import InputError

SHADOW_DATA_KINDS = ("real", "noisy", "marginals", "synthesized")


@dataclass(frozen=True)
class FeatureDomain:
    """What an attacker knows of each of d features (the schema, not records).

    low / high: float32 [d] smallest and largest value; binary: bool [d], True when the feature
    takes exactly two values (then low and high are those values); spread: float32 [d] standard
    deviation, the scale of continuous perturbations.
    """

    low: np.ndarray
    high: np.ndarray
    binary: np.ndarray
    spread: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.low.shape[0])

    def random_records(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """float32 [n, d]: every feature uniform over its domain (one of two values if binary)."""
        u = rng.random((n, self.n_features), dtype=np.float32)
        continuous = self.low + u * (self.high - self.low)
        two_values = np.where(u < 0.5, self.low, self.high)
        return np.where(self.binary, two_values, continuous).astype(np.float32)

    def random_values(self, cols: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 [m]: a fresh uniform value of feature cols[i] for each of m positions."""
        u = rng.random(len(cols), dtype=np.float32)
        low, high = self.low[cols], self.high[cols]
        return np.where(self.binary[cols], np.where(u < 0.5, low, high), low + u * (high - low)).astype(np.float32)


def feature_domain(x: np.ndarray) -> FeatureDomain:
    """The FeatureDomain of records x [n, ...] (flattened to [n, d])."""
    flat = _flat(x)
    low, high = flat.min(axis=0), flat.max(axis=0)
    # exactly two distinct values: every value is the min or the max, and they differ
    binary = (high > low) & np.all((flat == low) | (flat == high), axis=0)
    return FeatureDomain(low.astype(np.float32), high.astype(np.float32), binary,
                         flat.std(axis=0).astype(np.float32))


def noisy_records(x: np.ndarray, fraction: float, seed: int, domain: FeatureDomain | None = None) -> np.ndarray:
    """x [n, ...] with round(fraction * d) random features of each record changed (same shape).

    Binary features flip to their other value; continuous ones get N(0, spread^2) noise, clipped to
    [low, high]. ``domain`` defaults to the one of x itself.
    """
    if not 0 < fraction <= 1:
        raise InputError(f"shadow_noise: fraction of features to change must be in (0, 1], got {fraction}")
    flat = _flat(x).copy()
    n, d = flat.shape
    dom = domain or feature_domain(flat)
    rng = np.random.default_rng([seed, 17])
    k = max(1, int(round(fraction * d)))
    cols = np.argsort(rng.random((n, d)), axis=1)[:, :k]  # k distinct features per record
    rows = np.repeat(np.arange(n), k)
    cols = cols.ravel()
    old = flat[rows, cols]
    flipped = np.where(old == dom.low[cols], dom.high[cols], dom.low[cols])
    noise = rng.standard_normal(len(cols)).astype(np.float32) * dom.spread[cols]
    perturbed = np.clip(old + noise, dom.low[cols], dom.high[cols])
    flat[rows, cols] = np.where(dom.binary[cols], flipped, perturbed)
    return flat.reshape(x.shape)


def marginal_records(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Records [n, ...] with labels y: feature j of a class-c record is drawn (with replacement) from
    feature j's values among the class-c records of x, independently of every other feature."""
    flat = _flat(x)
    y = np.asarray(y)
    if len(y) != len(flat):
        raise InputError(f"shadow data: {len(flat)} records but {len(y)} labels")
    rng = np.random.default_rng([seed, 19])
    out = np.empty_like(flat)
    d = flat.shape[1]
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        draws = rng.integers(0, len(rows), size=(len(rows), d))  # a source record per (record, feature)
        out[rows] = flat[rows[draws], np.arange(d)]
    return out.reshape(x.shape)


def shadow_records(kind: str, x: np.ndarray, y: np.ndarray, seed: int, noise: float = 0.1) -> np.ndarray:
    """The attacker's shadow training records for ``kind`` (real / noisy / marginals), shape of x.

    "synthesized" needs the target: see :func:`miaudit.data.synthesis.synthesize_records`.
    """
    if kind == "real" or len(x) == 0:
        return x
    if kind == "noisy":
        return noisy_records(x, noise, seed)
    if kind == "marginals":
        return marginal_records(x, y, seed)
    raise InputError(f"shadow_data: {kind!r} is not one of {', '.join(SHADOW_DATA_KINDS[:3])} here")


def _flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim < 2:
        raise InputError(f"shadow data: records must be [n, features...], got shape {x.shape}")
    return x.reshape(len(x), -1)
