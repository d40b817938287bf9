"""BASE, the attack of Lassila, Östman and Ngo (2025), "Practical Bayes-Optimal Membership Inference
Attacks" (arXiv 2505.24089): the target's log true-class probability at a softmax temperature,
less the log of the reference models' mean true-class probability at that temperature (a
log-sum-exp threshold per record).

- ``base_online``: the mean over all K reference models (IN and OUT alike);
  score = log p_T(x) - log((1/K) sum_k p_k(x)).
- ``base_offline``: the mean over the record's OUT models only, scaled by ``offline_scale`` (the
  missing IN models would raise the mean: the scale compensates); score = log p_T(x) - c log(mean_OUT p_k(x)).
  Records without any OUT model (K = 1, a record its only model trained on) take their OUT mean as
  the IN models' mean less the median IN - OUT gap of the records that have both (with none having
  both, the gap of the two sides' medians), as LiRA's fallback locations do.

p_m(x) = softmax(z / T)_y of model m, averaged over queries (log of the mean). With T = 1 and
balanced masks (as many IN as OUT models per record) the online score is exactly RMIA's log LR_x
(Pr(x) = 1/2 (Pr_IN + Pr_OUT) is then the mean over all K): BASE ranks records as RMIA does, the
equivalence Brännvall (2026) states. Decision: score > 0 online (the target is more confident than
the reference models on average), none offline.

Reference read: the paper's abstract and LeakPro's description of the attack (the default
temperature 2 and offline scale 0.33 are LeakPro's), not the paper's full text.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field
from scipy.special import logsumexp

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.params import AttackParams
from miaudit.attacks.rmia import log_true_class_probability
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

TEMPERATURE = 2.0
"""Default softmax temperature."""
OFFLINE_SCALE = 0.33
"""Default factor c of the offline threshold."""


class BaseOnlineParams(AttackParams):
    """Parameters of base-online."""

    temperature: float = Field(TEMPERATURE, gt=0, description="softmax temperature of the probabilities")


class BaseOfflineParams(BaseOnlineParams):
    """Parameters of base-offline."""

    offline_scale: float = Field(OFFLINE_SCALE, ge=0, le=1, description="factor c of the offline threshold")


def log_mean_probability(log_p: np.ndarray, use: np.ndarray) -> np.ndarray:
    """log of the mean of exp(log_p) over the models ``use`` marks: log_p [K, N], use bool [K, N]
    -> float64 [N], NaN where no model is used."""
    n = use.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = logsumexp(np.where(use, log_p, -np.inf), axis=0) - np.log(n)
    return np.where(n > 0, out, np.nan)


def offline_log_threshold(log_p: np.ndarray, is_in: np.ndarray) -> np.ndarray:
    """log mean_OUT p per record [N] from log_p [K, N] and is_in bool [K, N], with the module
    docstring's fallback for records without OUT model. InputError when there is no OUT value at all."""
    return with_fallback(log_mean_probability(log_p, ~is_in), lambda: log_mean_probability(log_p, is_in))


def with_fallback(out: np.ndarray, inside_of: Callable[[], np.ndarray]) -> np.ndarray:
    """log mean_OUT p [N] (NaN where a record has no OUT model) with the module docstring's fallback
    filled in; inside_of() gives log mean_IN p [N], called only when some record needs it."""
    missing = np.isnan(out)
    if not missing.any():
        return out
    if missing.all():
        raise InputError("base-offline: needs reference models not trained on the audited records")
    inside = inside_of()
    both = ~missing & ~np.isnan(inside)
    gap = np.median(inside[both] - out[both]) if both.any() else np.median(inside[~np.isnan(inside)]) - np.median(
        out[~missing])
    return np.where(missing, inside - gap, out)


def base_scores(log_p_target: np.ndarray, log_threshold: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """log p_T - scale * log threshold: float64 [N] from [N] and [N]."""
    return log_p_target - scale * log_threshold


def _log_probabilities(inputs: AttackInputs, temperature: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    if inputs.n_reference < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    if not temperature > 0:
        raise InputError(f"{name}: temperature must be > 0, got {temperature}")
    t = float(temperature)
    return (log_true_class_probability(inputs.target_logits / t, inputs.labels),
            log_true_class_probability(inputs.reference_logits / t, inputs.labels))


def base_online(inputs: AttackInputs, temperature: float = TEMPERATURE) -> AttackScores:
    """BASE online: float64 [N] scores against the mean over all reference models; member when > 0."""
    log_t, log_r = _log_probabilities(inputs, temperature, "base-online")
    scores = base_scores(log_t, log_mean_probability(log_r, np.ones(log_r.shape, bool)))
    return AttackScores(scores, scores > 0.0, 0.0, {"temperature": float(temperature)})


def base_offline(inputs: AttackInputs, temperature: float = TEMPERATURE,
                 offline_scale: float = OFFLINE_SCALE) -> AttackScores:
    """BASE offline: float64 [N] scores against the scaled mean over each record's OUT models; no decision."""
    if not 0.0 <= offline_scale <= 1.0:
        raise InputError(f"base-offline: offline_scale must lie in [0, 1], got {offline_scale}")
    log_t, log_r = _log_probabilities(inputs, temperature, "base-offline")
    scores = base_scores(log_t, offline_log_threshold(log_r, inputs.reference_in), offline_scale)
    return AttackScores(scores, params={"temperature": float(temperature), "offline_scale": float(offline_scale)})
