"""Per-model local confidence offsets, measured on population records.

Every model, the target as much as the references, has its own confidence bias in each region of
the input space: a model trained with one seed on one half of the data may be more confident than
the others on coats and less on sandals. Seen from a single record, that bias looks like evidence of
membership. Population records are OUT for every model, so a model's bias near a record can be
measured without any membership: over the record's n nearest population records of the same label,
the mean of the model's logit-scaled confidence phi minus the reference models' mean phi,

    o_m(x) = mean_{z in N(x)} [phi_m(z) - mean_k phi_k(z)],

and phi_m(x) - o_m(x) is the record's confidence with that bias removed. Neighbours are found in
the mean log-softmax over the reference models (never the target's outputs), per label; a
population record's own neighbours exclude itself.

n = ``LOCAL_NEIGHBORS`` = 30 is the same for every number of reference models. It was first picked
among 15, 30, 50 and 150 on the Fashion-MNIST MLP benchmark with its own 5 targets in sight, then
checked on held-out models only: 20 reference models each playing the target against the next K,
RMIA's TPR at 0.1% FPR with K=64 was 9.1 / 9.5 / 9.5 / 9.2 / 9.3% for n = 10 / 20 / 30 / 50 / 100.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import csr_matrix
from scipy.special import log_softmax
from sklearn.neighbors import NearestNeighbors

from miaudit.errors import InputError

if TYPE_CHECKING:
    from miaudit.signals.inputs import AttackInputs

LOCAL_NEIGHBORS = 30
"""Population neighbours (same label) per record."""


@dataclass(frozen=True)
class PopulationNeighbours:
    """Row-stochastic averaging matrices over same-label population neighbours.

    records: [M, Z], row m averages record m's neighbours (all zero when the population has no
    record of its label: no offset); population: [Z, Z], the same for the population records, each
    without itself.
    """

    records: csr_matrix
    population: csr_matrix


def population_neighbours(record_logits: np.ndarray, labels: np.ndarray, population_logits: np.ndarray,
                          population_labels: np.ndarray, n: int = LOCAL_NEIGHBORS) -> PopulationNeighbours:
    """Neighbour averages for records and population, from the reference models' logits
    record_logits [K, M, Q, C] with labels [M] and population_logits [K, Z, Q, C] with labels [Z]."""
    if n < 1:
        raise InputError(f"local offsets: neighbours must be >= 1, got {n}")
    records, population = _embedding(record_logits), _embedding(population_logits)
    return PopulationNeighbours(_averaging(records, labels, population, population_labels, n, False),
                                _averaging(population, population_labels, population, population_labels, n, True))


def record_neighbours(record_logits: np.ndarray, labels: np.ndarray, population_logits: np.ndarray,
                      population_labels: np.ndarray, n: int = LOCAL_NEIGHBORS) -> csr_matrix:
    """The ``records`` matrix [M, Z] of :func:`population_neighbours` alone: each record's neighbours are
    found on their own, so a chunk of records gets its rows of the whole matrix (streamed attacks)."""
    if n < 1:
        raise InputError(f"local offsets: neighbours must be >= 1, got {n}")
    return _averaging(_embedding(record_logits), labels, _embedding(population_logits), population_labels, n, False)


def population_self_neighbours(population_logits: np.ndarray, population_labels: np.ndarray,
                               n: int = LOCAL_NEIGHBORS) -> csr_matrix:
    """The ``population`` matrix [Z, Z] of :func:`population_neighbours` alone (each record without itself)."""
    if n < 1:
        raise InputError(f"local offsets: neighbours must be >= 1, got {n}")
    pool = _embedding(population_logits)
    return _averaging(pool, population_labels, pool, population_labels, n, True)


def shared_population_neighbours(inputs: AttackInputs, n: int = LOCAL_NEIGHBORS, shadow: bool = False,
                                 n_population: int | None = None) -> PopulationNeighbours:
    """:func:`population_neighbours` of the audited records (shadow: of the shadow records) and the
    first n_population population records (None: all), from the reference models' logits; computed
    once per AttackInputs and shared by the attacks running on it (thread-safe)."""
    shadow = shadow and not inputs.shadow_records_are_audited
    logits, labels = ((inputs.shadow_logits, inputs.shadow_labels) if shadow
                      else (inputs.reference_logits, inputs.labels))
    pop = slice(0, n_population)
    return inputs.shared(("population_neighbours", n, shadow, n_population), lambda: population_neighbours(
        logits, labels, inputs.population_reference_logits[:, pop], inputs.population_labels[pop], n))


def remove_offsets(phi: np.ndarray, population_phi: np.ndarray, population_mean: np.ndarray,
                   averaging: csr_matrix) -> np.ndarray:
    """phi [..., M, Q] minus each model's local offset.

    population_phi [..., Z, Q]: the same models on the population records; population_mean [Z, Q]:
    the reference models' mean phi there; averaging [M, Z] from :class:`PopulationNeighbours`.
    """
    residual = np.moveaxis(population_phi - population_mean, -2, 0)  # [Z, ..., Q]
    z = residual.shape[0]
    offsets = np.asarray(averaging @ residual.reshape(z, -1)).reshape((averaging.shape[0], *residual.shape[1:]))
    return phi - np.moveaxis(offsets, 0, -2)


def _embedding(logits: np.ndarray) -> np.ndarray:
    """Mean over models and queries of the log-softmax: [K, M, Q, C] -> float64 [M, C] (the
    log-softmax in float32: it only places records, and float64 took 0.5 s on 64 x 20,000 records)."""
    return log_softmax(np.asarray(logits, np.float32), axis=-1).mean(axis=(0, 2), dtype=np.float64)


def _averaging(points: np.ndarray, labels: np.ndarray, pool: np.ndarray, pool_labels: np.ndarray, n: int,
               pool_itself: bool) -> csr_matrix:
    """[M, Z] matrix averaging each point's n nearest same-label pool rows (fewer when the label has
    fewer). pool_itself: the points are the pool, and each leaves itself out."""
    rows, cols, weights = [], [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        candidates = np.flatnonzero(pool_labels == c)
        take = min(n, len(candidates) - pool_itself)
        if take < 1:
            continue
        # a k-d tree measures each query on its own (brute force goes through one matrix product
        # per batch of queries, whose rounding, and so the pick among equidistant neighbours,
        # depends on the other queries in the batch, i.e. on the records' order)
        finder = NearestNeighbors(n_neighbors=take + pool_itself, algorithm="kd_tree").fit(pool[candidates])
        found = candidates[finder.kneighbors(points[members], return_distance=False)]  # [m, take (+1)]
        if pool_itself:  # drop the point itself; where a duplicate pushed it out, the farthest
            keep = found != members[:, None]
            keep[keep.sum(axis=1) > take, -1] = False
            found = found[keep].reshape(len(members), take)
        rows.append(np.repeat(members, take))
        cols.append(found.ravel())
        weights.append(np.full(found.size, 1.0 / take))
    if not rows:
        return csr_matrix((len(points), len(pool)))
    return csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(points), len(pool)))
