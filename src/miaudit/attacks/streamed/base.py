"""BASE streamed (:mod:`miaudit.attacks.base`): a per-record function of the target's and the reference
models' true-class probabilities. base-offline streams when every record has an OUT model; its fallback
for records without one (a median IN - OUT gap over all records) is not streamed."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.base import OFFLINE_SCALE, TEMPERATURE, base_scores, log_mean_probability
from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.rmia import log_true_class_probability
from miaudit.attacks.streamed.passes import check_references, per_chunk
from miaudit.errors import InputError


def _base(store, online: bool, temperature: float, offline_scale: float) -> np.ndarray:
    """BASE scores [N] chunk by chunk."""
    name = "base-online" if online else "base-offline"
    check_references(store, name)

    def score(x):
        log_t = log_true_class_probability(x.target_logits / temperature, x.labels)
        log_r = log_true_class_probability(x.reference_logits / temperature, x.labels)
        use = np.ones(log_r.shape, bool) if online else ~x.reference_in
        if not use.any(axis=0).all():
            raise InputError(f"{name}: streamed only when every record has an OUT reference model; "
                             "use more reference models or --signal-chunk 0 (in memory)")
        return base_scores(log_t, log_mean_probability(log_r, use), 1.0 if online else offline_scale)

    return per_chunk(store, score)


def base_online(store, temperature: float = TEMPERATURE) -> AttackScores:
    """:func:`miaudit.attacks.base.base_online` over the store's record chunks."""
    scores = _base(store, True, temperature, 1.0)
    return AttackScores(scores, scores > 0.0, 0.0, {"temperature": float(temperature)})


def base_offline(store, temperature: float = TEMPERATURE, offline_scale: float = OFFLINE_SCALE) -> AttackScores:
    """:func:`miaudit.attacks.base.base_offline` over the store's record chunks."""
    scores = _base(store, False, temperature, offline_scale)
    return AttackScores(scores, params={"temperature": float(temperature), "offline_scale": float(offline_scale)})
