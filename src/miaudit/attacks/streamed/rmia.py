"""RMIA, RMIA offline and Attack-P streamed (:mod:`miaudit.attacks.rmia`, :mod:`miaudit.attacks.rmia_offline`,
:mod:`miaudit.attacks.population`): per-record functions of the models' outputs against the population,
whose arrays (Z records) are read whole once and whose sorted LR_z / losses are cached on the store.
rmia-offline's a: a first pass scores the pseudo-target (reference model 0) at every a of A_GRID on each
chunk (len(A_GRID) x N numbers kept) and keeps the a of highest AUC, as in memory."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.rmia import log_true_class_probability, marginal
from miaudit.attacks.rmia_offline import A_GRID, best_a, check_settings, offline_counts
from miaudit.attacks.streamed.passes import check_population, check_references, per_chunk
from miaudit.signals.functions import loss


def rmia(store, gamma: float = 2.0, offline_a: float = 0.3) -> AttackScores:
    """:func:`miaudit.attacks.rmia.rmia` over the store's record chunks; LR_z of the whole
    population computed once."""
    check_references(store, "rmia")
    pop_t, pop_r, pop_y = check_population(store, "rmia")
    key = ("rmia_log_lr_z", float(offline_a))
    if key not in store.cache:
        log_pz_target = log_true_class_probability(pop_t[:, None], pop_y)
        pz_ref = np.exp(log_true_class_probability(pop_r[:, :, None], pop_y))
        all_out = np.ones(pz_ref.shape, bool)
        store.cache[key] = np.sort(log_pz_target - np.log(marginal(pz_ref, ~all_out, all_out, offline_a)))
    log_lr_z = store.cache[key]

    def score(x):
        px_ref = np.exp(log_true_class_probability(x.reference_logits, x.labels))
        log_lr_x = log_true_class_probability(x.target_logits, x.labels) - np.log(
            marginal(px_ref, x.reference_in, ~x.reference_in, offline_a))
        return np.searchsorted(log_lr_z, log_lr_x - np.log(gamma), side="right") / len(log_lr_z)

    return AttackScores(per_chunk(store, score), params={"temperature": 1.0, "neighbors": 0, "a": float(offline_a)})


def population(store) -> AttackScores:
    """:func:`miaudit.attacks.population.population` (alpha None) over the store's record chunks."""
    pop_t, _, pop_y = check_population(store, "population")
    if "population_loss" not in store.cache:
        store.cache["population_loss"] = np.sort(loss(pop_t[:, None], pop_y[:, None]).mean(axis=-1))
    pop_loss = store.cache["population_loss"]

    def score(x):
        record_loss = loss(x.target_logits, x.labels[:, None]).mean(axis=-1)
        return (len(pop_loss) - np.searchsorted(pop_loss, record_loss, side="left")) / len(pop_loss)

    return AttackScores(per_chunk(store, score))


def _select_offline_a(store, log_pz: np.ndarray, gamma: float, default_a: float) -> tuple[float, float | None]:
    """:func:`miaudit.attacks.rmia_offline.select_offline_a` over the store's record chunks (pool mode: the
    shadow records are the audited ones); log_pz [K, Z] the reference models' population log-probabilities."""
    k, n, _ = store.shape
    if k < 2 or n == 0:
        return float(default_a), None

    def pseudo_target(x):  # (member bool [u], scores [len(A_GRID), u]) on the chunk's usable records
        log_p = log_true_class_probability(x.reference_logits, x.labels)
        others_in = x.reference_in[1:]
        usable = (~others_in).any(axis=0)
        scores = [offline_counts(log_p[0, usable], np.exp(log_p[1:, usable]), others_in[:, usable], log_pz[0],
                                 np.exp(log_pz[1:]), a, gamma) for a in A_GRID]
        return x.reference_in[0][usable], np.stack(scores)

    member, scores = per_chunk(store, pseudo_target)
    if member.all() or not member.any():
        return float(default_a), None
    return best_a(member, lambda a: scores[A_GRID.index(a)], default_a)


def rmia_offline(store, gamma: float = 2.0, a: float | None = None, default_a: float = 0.3) -> AttackScores:
    """:func:`miaudit.attacks.rmia_offline.rmia_offline` over the store's record chunks."""
    pop_t, pop_r, pop_y = store.population()
    check_settings(store.shape[0], len(pop_y), gamma, a, default_a)
    log_pz = log_true_class_probability(pop_r[:, :, None], pop_y)
    auc = None
    if a is None:
        a, auc = _select_offline_a(store, log_pz, gamma, default_a)
    log_pz_target, pz_ref = log_true_class_probability(pop_t[:, None], pop_y), np.exp(log_pz)

    def score(x):
        return offline_counts(log_true_class_probability(x.target_logits, x.labels),
                              np.exp(log_true_class_probability(x.reference_logits, x.labels)), x.reference_in,
                              log_pz_target, pz_ref, float(a), gamma)

    return AttackScores(per_chunk(store, score), params={"a": float(a), "pseudo_target_auc": auc})
