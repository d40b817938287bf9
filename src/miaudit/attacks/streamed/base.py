"""BASE streamed (:mod:`miaudit.attacks.base`): a per-record function of the target's and the reference
models' true-class probabilities. base-offline keeps each record's log mean over its OUT and its IN
models (2 x N numbers) for its fallback on records without OUT model (a median gap over all records)."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.base import OFFLINE_SCALE, TEMPERATURE, base_scores, log_mean_probability, with_fallback
from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.rmia import log_true_class_probability
from miaudit.attacks.streamed.passes import check_references, per_chunk
from miaudit.errors import InputError


def _log_probabilities(x, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """log p_T [b] of the target and log p [K, b] of the reference models at the temperature."""
    return (log_true_class_probability(x.target_logits / temperature, x.labels),
            log_true_class_probability(x.reference_logits / temperature, x.labels))


def _check(store, name: str, temperature: float) -> None:
    check_references(store, name)
    if not temperature > 0:
        raise InputError(f"{name}: temperature must be > 0, got {temperature}")


def base_online(store, temperature: float = TEMPERATURE) -> AttackScores:
    """:func:`miaudit.attacks.base.base_online` over the store's record chunks."""
    _check(store, "base-online", temperature)
    t = float(temperature)

    def score(x):
        log_t, log_r = _log_probabilities(x, t)
        return base_scores(log_t, log_mean_probability(log_r, np.ones(log_r.shape, bool)))

    scores = per_chunk(store, score)
    return AttackScores(scores, scores > 0.0, 0.0, {"temperature": float(temperature)})


def base_offline(store, temperature: float = TEMPERATURE, offline_scale: float = OFFLINE_SCALE) -> AttackScores:
    """:func:`miaudit.attacks.base.base_offline` over the store's record chunks."""
    if not 0.0 <= offline_scale <= 1.0:
        raise InputError(f"base-offline: offline_scale must lie in [0, 1], got {offline_scale}")
    _check(store, "base-offline", temperature)
    t = float(temperature)

    def means(x):  # log p_T, log mean_OUT p, log mean_IN p: [b] each
        log_t, log_r = _log_probabilities(x, t)
        return log_t, log_mean_probability(log_r, ~x.reference_in), log_mean_probability(log_r, x.reference_in)

    log_t, out, inside = per_chunk(store, means)
    scores = base_scores(log_t, with_fallback(out, lambda: inside), offline_scale)
    return AttackScores(scores, params={"temperature": float(temperature), "offline_scale": float(offline_scale)})
