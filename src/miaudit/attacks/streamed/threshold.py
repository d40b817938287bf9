"""The threshold attacks streamed (:mod:`miaudit.attacks.threshold`): a per-record signal, and thresholds
calibrated on the reference models' signals of the same records (pool mode: the audited records).

One pass: each chunk gives its records' scores [b] and the reference models' scores [K, b]. The exact
calibration (the balanced-accuracy threshold over all K x N reference scores, and per class) sorts all of
them, so they are kept: K x N float64 (8 K N bytes) and the K x N mask; the calibration's sort and
cumulative counts peak at about 80 bytes per (model, record) (measured, benchmarks/streaming_memory.py:
215 MB above baseline for K = 32, N = 80,000, against 965 MB in memory). Exact and O(K N), not O(N):
an approximate threshold (a histogram of the scores) would bound it but not give rtol 1e-9. No threshold
(decision None) without reference models, as in memory.
"""
from __future__ import annotations

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.streamed.passes import per_chunk
from miaudit.attacks.threshold import (
    Signal,
    calibrated_verdict,
    negative_entropy,
    negative_loss,
    negative_modified_entropy,
    record_scores,
)
from miaudit.signals.functions import true_class_confidence


def _threshold(store, signal: Signal, per_class: bool) -> AttackScores:
    """Scores [N] chunk by chunk and the verdict at thresholds calibrated on all reference scores [K, N]."""
    def score(x):
        return (record_scores(signal, x.target_logits, x.labels[:, None], "target_logits"),
                record_scores(signal, x.reference_logits, x.labels[None, :, None], "shadow_logits"))

    scores, reference_scores = per_chunk(store, score)
    k, n, c = store.shape
    if k == 0 or n == 0:
        return AttackScores(scores)
    labels = store.labels()
    return calibrated_verdict(scores, labels, reference_scores, store.reference_in(0, n), labels, c, per_class)


def threshold_confidence(store, per_class: bool = True) -> AttackScores:
    """:func:`miaudit.attacks.threshold.threshold_confidence` over the store's record chunks."""
    return _threshold(store, true_class_confidence, per_class)


def threshold_loss(store) -> AttackScores:
    """:func:`miaudit.attacks.threshold.threshold_loss` over the store's record chunks."""
    return _threshold(store, negative_loss, False)


def threshold_entropy(store, per_class: bool = True) -> AttackScores:
    """:func:`miaudit.attacks.threshold.threshold_entropy` over the store's record chunks."""
    return _threshold(store, negative_entropy, per_class)


def threshold_modified_entropy(store, per_class: bool = True) -> AttackScores:
    """:func:`miaudit.attacks.threshold.threshold_modified_entropy` over the store's record chunks."""
    return _threshold(store, negative_modified_entropy, per_class)
