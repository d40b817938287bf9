"""Shared passes of the streamed attacks over a :class:`miaudit.signals.store.SignalStore`: each pass reads
the store one record chunk (all K models) at a time and keeps only a small summary of it.

What a pass may keep: O(K) or O(Z) numbers, or O(N) numbers per record (a score, a moment); a K x N
array only where an exact answer needs it, said at the attack (e.g. a threshold calibrated on all
reference scores: 8 K N bytes of float64, C / 2 times less than the float32 logits K x N x C).
What a first pass derives from the whole store is cached on ``store.cache`` under a key of its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.lira import scaled_confidence
from miaudit.errors import InputError
from miaudit.metrics.calibration import balanced_accuracy_threshold
from miaudit.signals.inputs import AttackInputs


@dataclass
class SideStats:
    """Per-model moments of phi on one side (IN or OUT) over the records seen so far:
    n int [K] values, mean [K, Q], m2 [K, Q] sum of squared deviations from the mean."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, phi: np.ndarray, mask: np.ndarray) -> SideStats:
        """Moments of phi [K, b, Q] where mask [K, b]."""
        w = mask[:, :, None].astype(np.float64)
        n = mask.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nan_to_num((phi * w).sum(axis=1) / n[:, None])
        m2 = (((phi - mean[:, None]) * w) ** 2).sum(axis=1)
        return cls(n, mean, m2)

    def merge(self, other: SideStats) -> SideStats:
        """The moments of both record sets together (Chan et al.'s pairwise update)."""
        n = self.n + other.n
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n > 0, other.n / np.maximum(n, 1), 0.0)[:, None]
        delta = other.mean - self.mean
        return SideStats(n, self.mean + delta * share, self.m2 + other.m2 + delta ** 2 * self.n[:, None] * share)

    def scale(self, models: np.ndarray) -> np.ndarray:
        """The std (ddof=0) of all values of the models ``models`` (bool [K]) pooled: [Q], NaN if none."""
        n = self.n[models].astype(np.float64)
        total = n.sum()
        if total == 0:
            return np.full(self.mean.shape[1], np.nan)
        mean = (n[:, None] * self.mean[models]).sum(axis=0) / total
        m2 = self.m2[models].sum(axis=0) + (n[:, None] * (self.mean[models] - mean) ** 2).sum(axis=0)
        return np.sqrt(m2 / total)


def phis(x: AttackInputs) -> tuple[np.ndarray, np.ndarray]:
    """phi of the target [b, Q] and of the references [K, b, Q] on a chunk's records."""
    return (scaled_confidence(x.target_logits, x.labels[:, None]),
            scaled_confidence(x.reference_logits, x.labels[None, :, None]))


def side_stats(store) -> dict[str, SideStats]:
    """{"in", "out"}: per-model moments of phi over all records, one pass over the chunks, cached."""
    if "side_stats" not in store.cache:
        stats: dict[str, SideStats] | None = None
        for _, _, x in store.chunks():
            _, phi = phis(x)
            part = {"in": SideStats.of(phi, x.reference_in), "out": SideStats.of(phi, ~x.reference_in)}
            stats = part if stats is None else {s: stats[s].merge(part[s]) for s in part}
        store.cache["side_stats"] = stats
    return store.cache["side_stats"]


def check_references(store, name: str) -> int:
    """K, or an InputError naming ``name`` when the store has no reference model."""
    k = store.shape[0]
    if k < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    return k


def check_population(store, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The store's population (target logits [Z, C], reference logits [K, Z, C], labels [Z]), or an
    InputError naming ``name`` when it has none."""
    pop = store.population()
    if len(pop[2]) < 1:
        raise InputError(f"{name}: needs population records (attacker data no model trained on), got 0")
    return pop


def per_chunk(store, score: Callable[[AttackInputs], np.ndarray | tuple[np.ndarray, ...]]
              ) -> np.ndarray | tuple[np.ndarray, ...]:
    """score(chunk) for every record chunk, joined along the record axis (the last): one array [..., N]
    or a tuple of them when score returns a tuple (each [..., b])."""
    parts = [score(x) for _, _, x in store.chunks()]
    if parts and isinstance(parts[0], tuple):
        return tuple(np.concatenate([p[i] for p in parts], axis=-1) for i in range(len(parts[0])))
    return np.concatenate(parts, axis=-1)


def held_out_verdict(scores: np.ndarray, held: list[int], held_scores: dict, held_in: dict,
                     params: dict) -> AttackScores:
    """lira-offline's verdict: scores [N] and, when the held-out models' chunk scores (held_scores[h], lists
    of [b]) cover both members and non-members (held_in[h]), the balanced-accuracy threshold on them."""
    if held:
        members = np.concatenate([np.concatenate(held_in[h]) for h in held])
        if members.any() and not members.all():
            threshold = balanced_accuracy_threshold(
                np.concatenate([np.concatenate(held_scores[h]) for h in held]), members)
            if threshold is not None:
                return AttackScores(scores, scores >= threshold, threshold, params)
    return AttackScores(scores, params=params)
