"""Choosing an attack's decision threshold: from data whose membership the attacker knows, or from
the audit's membership prior alone."""
from __future__ import annotations

import numpy as np

from miaudit.errors import InputError


def prior_accuracy_threshold(scores: np.ndarray, is_member: np.ndarray, member_fraction: float) -> float:
    """The threshold t maximising the accuracy of ``scores >= t`` on an audit whose records are members
    with probability ``member_fraction``: member_fraction * TPR + (1 - member_fraction) * TNR, with TPR
    and TNR measured on attacker-known data (so the in/out ratio of that data does not matter).

    scores: float [M]; is_member: bool [M]. The cut falls midway between the two scores around it.
    With no data, or only one group, returns +inf (nobody is called a member).
    """
    if not 0.0 <= member_fraction <= 1.0:
        raise InputError(f"member_fraction: {member_fraction} is not in [0, 1]")
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
    correct = member_fraction * tp / n_in + (1.0 - member_fraction) * (n_out - fp) / n_out
    # Only cut between distinct score values.
    valid = np.concatenate([[True], s[1:] != s[:-1], [True]])
    correct = np.where(valid, correct, -1.0)
    i = int(np.argmax(correct))
    if i == 0:
        return float(s[0]) + 1.0
    if i == len(s):
        return float(s[-1])
    return float((s[i - 1] + s[i]) / 2)


def balanced_accuracy_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """:func:`prior_accuracy_threshold` at a 50% membership prior: maximises (TPR + TNR) / 2, the
    accuracy on an audit with as many members as non-members, whatever the in/out ratio of the
    calibration data (shadow models on attacker data see ~1 member for every K-1 non-members)."""
    return prior_accuracy_threshold(scores, is_member, 0.5)


def prior_threshold(scores: np.ndarray, member_fraction: float) -> float:
    """Threshold that calls the top ``round(member_fraction * N)`` of ``scores`` [N] members.

    For an audit that knows how many of its records are members but has no calibrated cut. Tied
    scores are called alike: when a block of equal scores straddles the cut, the whole block is
    called a member or none of it is, whichever leaves the number called closer to the target (the
    whole block on a draw). Depends only on the multiset of scores, not their order.
    Returns t for ``scores >= t`` (:func:`decide`).
    """
    if not 0.0 <= member_fraction <= 1.0:
        raise InputError(f"member_fraction: {member_fraction} is not in [0, 1]")
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        return float("inf")
    target = int(round(member_fraction * s.size))
    if target == 0:
        return float(np.nextafter(s[0], np.inf))
    cut = s[target - 1]
    with_block = int(np.searchsorted(-s, -cut, side="right"))  # records with score >= cut
    without_block = int(np.searchsorted(-s, -cut, side="left"))  # records with score > cut
    if with_block - target <= target - without_block:
        return float(cut)
    return float(np.nextafter(cut, np.inf))


def median_threshold(scores: np.ndarray) -> float:
    """Threshold that calls the upper half of ``scores`` members (50% membership prior)."""
    return float(np.median(scores))


def decide(scores: np.ndarray, threshold: float) -> np.ndarray:
    """bool [N]: member where ``scores >= threshold``."""
    return np.asarray(scores) >= threshold
