"""Per-record signals computed from model outputs.

Every function takes logits float [..., C] (or log-probabilities: same softmax) and, where needed,
integer labels broadcastable to logits.shape[:-1], and returns float64 [...] (one value per row).
All are numerically stable for extreme logits (no log(0), no exp overflow).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import log_softmax, logsumexp


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax probabilities [..., C]."""
    return np.exp(log_softmax(np.asarray(logits, np.float64), axis=-1))


def _take_label(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.broadcast_to(np.asarray(labels), values.shape[:-1])
    return np.take_along_axis(values, labels[..., None].astype(np.int64), axis=-1)[..., 0]


def loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy loss -log p_y in nats, >= 0."""
    return -_take_label(log_softmax(np.asarray(logits, np.float64), axis=-1), labels)


def true_class_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_y, the probability given to the true label, in [0, 1]."""
    return np.exp(-loss(logits, labels))


def max_confidence(logits: np.ndarray) -> np.ndarray:
    """max_c p_c, the top predicted probability, in [1/C, 1]."""
    return np.exp(log_softmax(np.asarray(logits, np.float64), axis=-1).max(axis=-1))


def entropy(logits: np.ndarray) -> np.ndarray:
    """Shannon entropy of the prediction in nats, in [0, log C]."""
    logp = log_softmax(np.asarray(logits, np.float64), axis=-1)
    return -(np.exp(logp) * logp).sum(axis=-1)


def modified_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal (2021) modified entropy, >= 0; low for confidently correct predictions.

    Mentr = -(1 - p_y) log p_y - sum_{c != y} p_c log(1 - p_c).
    """
    z = np.asarray(logits, np.float64)
    logp = log_softmax(z, axis=-1)
    p = np.exp(logp)
    log1mp = _log_one_minus_softmax(z)
    labels = np.broadcast_to(np.asarray(labels), logp.shape[:-1]).astype(np.int64)
    is_true = np.arange(logp.shape[-1]) == labels[..., None]
    true_term = -(1 - p) * logp
    other_term = -p * log1mp
    return np.where(is_true, true_term, other_term).sum(axis=-1)


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log(p_y / (1 - p_y)) computed as z_y - logsumexp(z_{c != y}), finite for finite logits.

    This is the approximately Gaussian statistic LiRA models (Carlini et al. 2022). The log-sum-exp
    is written out (max shift, one in-place exp): 3-4x faster than scipy's on [64, 5000, 1, 10],
    which matters because RMIA and LiRA evaluate it at several temperatures.
    """
    z_true, rest, top = _true_and_shifted_others(logits, labels)
    np.exp(rest, out=rest)
    with np.errstate(divide="ignore"):
        return z_true - (np.log(rest.sum(axis=-1)) + top)


def tempered_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> Callable[[float], np.ndarray]:
    """t -> logit_scaled_confidence(logits / t, labels), for many temperatures t > 0 from one pass:
    with m the largest other logit, phi_t = (z_y - m) / t - log sum_{c != y} exp((z_c - m) / t).
    Agrees with logit_scaled_confidence to ~1e-6 (the sum runs in float32)."""
    z_true, rest, top = _true_and_shifted_others(logits, labels)
    gap = z_true - top
    # exp of values <= 0 in float32: the log-sum lies in [0, log C] with float32's ~1e-7 relative
    # error, and the pass over [..., C] costs half of float64's
    rest = rest.astype(np.float32)

    def at(t: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return gap / t - np.log(np.exp(rest * np.float32(1.0 / t)).sum(axis=-1, dtype=np.float64))

    return at


def _true_and_shifted_others(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z_y [...], the other logits minus m [..., C] with -inf at y, m [...]) in float64, m the
    largest other logit (0 when all others are -inf: their sum of exps is then 0, its log -inf)."""
    z = np.asarray(logits, np.float64)
    labels = np.broadcast_to(np.asarray(labels), z.shape[:-1]).astype(np.int64)[..., None]
    z_true = np.take_along_axis(z, labels, axis=-1)[..., 0]
    rest = z.copy()
    np.put_along_axis(rest, labels, -np.inf, axis=-1)
    top = rest.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    rest -= top
    return z_true, rest, top[..., 0]


def _log_one_minus_softmax(z: np.ndarray) -> np.ndarray:
    """log(1 - p_c) for every class c, [..., C].

    log(-expm1(log p_c)) is exact unless p_c rounds to 1. Only the top class can come within 1e-6
    of 1; on those rows its value is logsumexp(z_{c != top}) - logsumexp(z) instead.
    """
    logp = log_softmax(z, axis=-1)
    with np.errstate(divide="ignore"):
        out = np.log(-np.expm1(logp))
    near_one = logp.max(axis=-1) > -1e-6
    if near_one.any():
        rows = z[near_one]
        top = rows.argmax(axis=-1)[:, None]
        rest = rows.copy()
        np.put_along_axis(rest, top, -np.inf, axis=-1)
        fixed = out[near_one]
        np.put_along_axis(fixed, top, (logsumexp(rest, axis=-1) - logsumexp(rows, axis=-1))[:, None], axis=-1)
        out[near_one] = fixed
    return out
