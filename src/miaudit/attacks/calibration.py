"""Choosing an attack's decision threshold from data whose membership the attacker knows."""
from __future__ import annotations

import numpy as np


def best_accuracy_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold t maximising accuracy of ``scores >= t`` on labelled (attacker-known) data.

    scores: float [M]; is_member: bool [M]. Ties between equal accuracies go to the midpoint
    of the best interval. With no data, returns +inf (nobody is called a member).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_member = np.asarray(is_member, dtype=bool).ravel()
    if scores.size == 0:
        return float("inf")
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], is_member[order]
    # Calling the top-i records members: correct = members among top-i + non-members after i.
    tp = np.concatenate([[0], np.cumsum(m)])
    fp = np.concatenate([[0], np.cumsum(~m)])
    correct = tp + (int((~m).sum()) - fp)
    # Only cut between distinct score values.
    valid = np.concatenate([[True], s[1:] != s[:-1], [True]])
    correct = np.where(valid, correct, -1)
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
