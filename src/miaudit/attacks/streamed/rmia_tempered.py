"""rmia-tempered-offsets streamed (:func:`miaudit.attacks.rmia.rmia_tempered_offsets`: temperature picked on
held-out reference models, local offsets, a fitted to the IN / OUT models, ties ordered by LR_x).

Each chunk's records find their population neighbours on their own (the population is read whole).
Picking the temperature: one pass per temperature keeps the held-out models' log Pr(x) (up to
CALIBRATION_MODELS x N) and every record's sums over its IN and OUT models (4 x N), from which each
held-out model's TPR follows as in memory. Scoring: one pass keeps the target's log Pr(x) and each
record's IN / OUT means and counts (5 x N); a, LR_x, the counts and the ranks of LR_x over all records
then follow as in memory.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.sparse import csr_matrix

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.local_offsets import (
    LOCAL_NEIGHBORS,
    PopulationNeighbours,
    population_self_neighbours,
    record_neighbours,
)
from miaudit.attacks.rmia import (
    CALIBRATION_MODELS,
    TEMPERATURES,
    OffsetModels,
    held_out_tprs_of,
    log_true_class_probability,
    model_sums,
    relative_scores_of_means,
    side_means,
)
from miaudit.attacks.streamed.passes import check_population, check_references, per_chunk
from miaudit.signals.inputs import AttackInputs


def _chunks(store, neighbors: int) -> Iterator[tuple[AttackInputs, OffsetModels, object]]:
    """(chunk, its reference models' OffsetModels, its records' neighbour averaging [b, Z]) of every chunk."""
    _, pop_r, pop_y = store.population()
    for _, _, x in store.chunks():
        nb = record_neighbours(x.reference_logits, x.labels, pop_r[:, :, None], pop_y, neighbors) if neighbors else None
        yield x, OffsetModels(x.reference_logits, x.labels, pop_r[:, :, None], pop_y), nb


def _held_part(x: AttackInputs, models: OffsetModels, nb, t: float, held: int) -> tuple[np.ndarray, ...]:
    """A chunk's share of the temperature pick at t: the first ``held`` models' log Pr(x) [held, b] and
    membership, every record's sums over its IN / OUT models and their counts [b]."""
    log_p = (log_true_class_probability(x.reference_logits / t, x.labels) if nb is None
             else models.log_p(t, nb, models.population_mean(t)))
    (s_in, s_out), (c_in, c_out) = model_sums(log_p, x.reference_in)
    return log_p[:held], x.reference_in[:held], s_in, s_out, c_in, c_out


def select_temperature(store, offline_a: float, neighbors: int) -> float:
    """:func:`miaudit.attacks.rmia.select_temperature` (pool mode) over the store's record chunks."""
    k, n, _ = store.shape
    if k < 2 or n == 0:
        return 1.0
    held = min(k, CALIBRATION_MODELS)
    best, best_tpr, held_out = 1.0, -1.0, None
    for t in TEMPERATURES:
        parts = [_held_part(*chunk, t, held) for chunk in _chunks(store, neighbors)]
        log_p_held, in_held, s_in, s_out, c_in, c_out = (np.concatenate([p[i] for p in parts], axis=-1)
                                                         for i in range(6))
        if held_out is None:
            held_out = [h for h in range(held) if 0 < in_held[h].sum() < n]
            if not held_out:
                return 1.0
        tpr = float(np.mean(held_out_tprs_of(log_p_held[held_out], in_held[held_out], (s_in, s_out),
                                             (c_in, c_out), offline_a)))
        if tpr > best_tpr + 1e-12:
            best, best_tpr = float(t), tpr
    return best


def rmia_tempered_offsets(store, gamma: float = 2.0, offline_a: float = 0.3,
                          neighbors: int = LOCAL_NEIGHBORS) -> AttackScores:
    """:func:`miaudit.attacks.rmia.rmia_tempered_offsets` (all population records, temperature picked)
    over the store's record chunks."""
    check_references(store, "rmia")
    pop_t, pop_r, pop_y = check_population(store, "rmia")
    t = select_temperature(store, offline_a, neighbors)
    if neighbors:
        population = OffsetModels(pop_r[:, :, None], pop_y, pop_r[:, :, None], pop_y)
        target_population = OffsetModels(pop_t[:, None], pop_y, pop_t[:, None], pop_y)
        only_population = PopulationNeighbours(csr_matrix((0, len(pop_y))),
                                               population_self_neighbours(pop_r[:, :, None], pop_y, neighbors))
        mean = population.population_mean(t)
        log_pz_ref = population.population_log_p(t, only_population, mean)
        log_pz_target = target_population.population_log_p(t, only_population, mean)
    else:
        log_pz_ref = log_true_class_probability(pop_r[:, :, None] / t, pop_y)
        log_pz_target = log_true_class_probability(pop_t[:, None] / t, pop_y)

    def part(x):
        if neighbors:
            nb = record_neighbours(x.reference_logits, x.labels, pop_r[:, :, None], pop_y, neighbors)
            references = OffsetModels(x.reference_logits, x.labels, pop_r[:, :, None], pop_y)
            target = OffsetModels(x.target_logits, x.labels, pop_t[:, None], pop_y)
            log_px_ref, log_px_target = references.log_p(t, nb, mean), target.log_p(t, nb, mean)
        else:
            log_px_ref = log_true_class_probability(x.reference_logits / t, x.labels)
            log_px_target = log_true_class_probability(x.target_logits / t, x.labels)
        return (log_px_target, *side_means(np.exp(log_px_ref), x.reference_in))

    log_px_target, *means = per_chunk(store, part)
    scores, a = relative_scores_of_means(log_px_target, tuple(means), log_pz_target, log_pz_ref, gamma, offline_a)
    return AttackScores(scores, params={"temperature": t, "neighbors": int(neighbors), "a": a})
