"""RMIA and Attack-P streamed (:mod:`miaudit.attacks.rmia`, :mod:`miaudit.attacks.population`): per-record
functions of the models' outputs against the population, whose arrays (Z records) are read whole once
and whose sorted LR_z / losses are cached on the store."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.rmia import log_true_class_probability, marginal
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
