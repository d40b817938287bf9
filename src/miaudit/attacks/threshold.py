"""Metric-based threshold attacks: one signal per record, members above a threshold.

Scores (higher = member), averaged over the Q queries of a record:
  threshold-confidence        p_y, the true-class probability
  threshold-loss              -loss (Yeom et al. 2018)
  threshold-entropy           -entropy of the prediction
  threshold-modified-entropy  -modified entropy (Song & Mittal 2021)

Decision threshold, never looking at the audited records' membership:
- with reference (shadow) models whose memberships are known (K >= 1 and R >= 1): the threshold
  maximising accuracy on the reference models' scores of the same signal, all K models' records
  pooled (:func:`calibration.balanced_accuracy_threshold`). Confidence, entropy and modified entropy
  use class-dependent thresholds as Song & Mittal do: class c's threshold is calibrated on the
  shadow records of class c; a class with no shadow records, or whose shadow records are all
  members or all non-members, uses the global threshold. Loss uses the global threshold (Yeom).
- with no reference models: no threshold (decision None: metrics decide at the audit's prior).
``AttackScores.threshold`` is the global threshold when there is one.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.params import AttackParams
from miaudit.errors import InputError
from miaudit.metrics.calibration import balanced_accuracy_threshold, decide
from miaudit.signals import functions as signals
from miaudit.signals.inputs import AttackInputs

# A logit of -inf (log of a probability 0) becomes this: softmax unchanged, signals stay finite.
_LOGIT_BOUND = 1e30

Signal = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ThresholdParams(AttackParams):
    """Parameters of the threshold attacks that read a per-class signal."""

    per_class: bool = Field(True, description="one threshold per true class (else one for all records)")


def threshold_confidence(inputs: AttackInputs, per_class: bool = True) -> AttackScores:
    """Score = true-class confidence p_y in [0, 1]; per-class thresholds by default."""
    return _threshold_attack(inputs, signals.true_class_confidence, per_class)


def threshold_loss(inputs: AttackInputs) -> AttackScores:
    """Score = -cross-entropy loss (nats, <= 0); one global threshold."""
    return _threshold_attack(inputs, negative_loss, per_class=False)


def threshold_entropy(inputs: AttackInputs, per_class: bool = True) -> AttackScores:
    """Score = -entropy of the prediction (nats, in [-log C, 0]); per-class thresholds by default."""
    return _threshold_attack(inputs, negative_entropy, per_class)


def threshold_modified_entropy(inputs: AttackInputs, per_class: bool = True) -> AttackScores:
    """Score = -modified entropy (Song & Mittal, <= 0); per-class thresholds by default."""
    return _threshold_attack(inputs, negative_modified_entropy, per_class)


def negative_loss(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-cross-entropy loss of logits z [..., C] at labels y [...] (threshold-loss's signal)."""
    return -signals.loss(z, y)


def negative_entropy(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-entropy of the prediction of logits z [..., C] (threshold-entropy's signal; y unused)."""
    return -signals.entropy(z)


def negative_modified_entropy(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-modified entropy of logits z [..., C] at labels y [...] (threshold-modified-entropy's signal)."""
    return -signals.modified_entropy(z, y)


def class_thresholds(shadow_scores: np.ndarray, shadow_in: np.ndarray, shadow_labels: np.ndarray,
                     n_classes: int) -> tuple[float, np.ndarray]:
    """Calibrate thresholds on reference models' scores of records with known membership.

    shadow_scores: float [K, R]; shadow_in: bool [K, R]; shadow_labels: int [R] in [0, n_classes).
    Returns (global threshold, float64 [n_classes] per-class thresholds); a class without both
    members and non-members among its shadow records gets the global threshold.
    """
    shadow_labels = np.asarray(shadow_labels)
    if shadow_labels.size and (shadow_labels.min() < 0 or shadow_labels.max() >= n_classes):
        raise InputError(f"shadow_labels: values must lie in [0, {n_classes})")
    global_t = balanced_accuracy_threshold(shadow_scores.ravel(), shadow_in.ravel())
    per_class = np.full(n_classes, global_t, dtype=np.float64)
    for c in np.unique(shadow_labels):
        in_class = shadow_in[:, shadow_labels == c]
        if in_class.any() and not in_class.all():
            per_class[c] = balanced_accuracy_threshold(shadow_scores[:, shadow_labels == c], in_class)
    return global_t, per_class


def _threshold_attack(inputs: AttackInputs, signal: Signal, per_class: bool) -> AttackScores:
    scores = record_scores(signal, inputs.target_logits, inputs.labels[:, None], "target_logits")  # [N]
    k, r = inputs.shadow_logits.shape[:2]
    if k == 0 or r == 0:
        return AttackScores(scores)
    shadow_scores = record_scores(signal, inputs.shadow_logits, inputs.shadow_labels[None, :, None],
                                  "shadow_logits")  # [K, R]
    return calibrated_verdict(scores, inputs.labels, shadow_scores, inputs.shadow_in, inputs.shadow_labels,
                              inputs.n_classes, per_class)


def record_scores(signal: Signal, logits: np.ndarray, labels: np.ndarray, field: str) -> np.ndarray:
    """The signal averaged over queries: logits [..., M, Q, C], labels broadcastable to [..., M, Q]
    -> float64 [..., M]; ``field`` names the logits in errors."""
    return signal(_finite_logits(logits, field), labels).mean(axis=-1)


def calibrated_verdict(scores: np.ndarray, labels: np.ndarray, shadow_scores: np.ndarray, shadow_in: np.ndarray,
                       shadow_labels: np.ndarray, n_classes: int, per_class: bool) -> AttackScores:
    """The verdict on scores [N] (labels [N]) at thresholds calibrated on shadow_scores [K, R] with
    shadow_in bool [K, R] and shadow_labels [R] (module docstring)."""
    global_t, per_class_t = class_thresholds(shadow_scores, shadow_in, shadow_labels, n_classes)
    if not per_class:
        return AttackScores(scores, decide(scores, global_t), global_t)
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"labels: values must lie in [0, {n_classes})")
    return AttackScores(scores, decide(scores, per_class_t[labels]), global_t)


def _finite_logits(logits: np.ndarray, field: str) -> np.ndarray:
    """float64 logits with +-inf clipped to +-1e30 (log-probabilities of 0 stay usable)."""
    z = np.asarray(logits, np.float64)
    if np.isnan(z).any():
        raise InputError(f"{field}: contains NaN")
    return np.clip(z, -_LOGIT_BOUND, _LOGIT_BOUND)
