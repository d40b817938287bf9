"""Choosing an attack's decision threshold from data whose membership the attacker knows."""
from __future__ import annotations

import numpy as np


def balanced_accuracy_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold t maximising balanced accuracy (TPR + TNR) / 2 of ``scores >= t`` on
    attacker-known data: the accuracy the attack will have on an audit with a 50% membership prior,
    whatever the in/out ratio of the calibration data (shadow models on attacker data see ~1 member
    for every K-1 non-members).

    scores: float [M]; is_member: bool [M]. The cut falls midway between the two scores around it.
    With no data, or only one group, returns +inf (nobody is called a member).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_member = np.asarray(is_member, dtype=bool).ravel()
    n_in = int(is_member.sum())
    n_out = is_member.size - n_in
    if n_in == 0 or n_out == 0:
        return float("inf")
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], is_member[order]
    # Calling the top-i records members: TPR = members among the top i / n_in, TNR likewise.
    tp = np.concatenate([[0], np.cumsum(m)])
    fp = np.concatenate([[0], np.cumsum(~m)])
    correct = tp / n_in + (n_out - fp) / n_out
    # Only cut between distinct score values.
    valid = np.concatenate([[True], s[1:] != s[:-1], [True]])
    correct = np.where(valid, correct, -1.0)
    i = int(np.argmax(correct))
    if i == 0:
        return float(s[0]) + 1.0
    if i == len(s):
        return float(s[-1])
    return float((s[i - 1] + s[i]) / 2)


def median_threshold(scores: np.ndarray) -> float:
    """Threshold that calls the upper half of ``scores`` members (50% membership prior)."""
    return float(np.median(scores))


def decide(scores: np.ndarray, threshold: float) -> np.ndarray:
    """bool [N]: member where ``scores >= threshold``."""
    return np.asarray(scores) >= threshold
