"""Confidence intervals and resolution of the rates an audit reports (fractions in [0, 1])."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from miaudit.errors import InputError


def clopper_pearson_interval(successes, trials, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided exact (Clopper-Pearson) interval of successes / trials, elementwise.

    successes, trials: counts (arrays broadcast, 0 <= successes <= trials, trials >= 1).
    Returns (lo, hi) float64 arrays; lo = 0 where successes == 0, hi = 1 where successes == trials.
    Coverage is at least ``confidence`` for every true proportion.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise InputError("clopper_pearson_interval: need 0 <= successes <= trials and trials >= 1")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence: {confidence} is not in (0, 1)")
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = stats.beta.ppf(alpha / 2.0, k, n - k + 1.0)
        hi = stats.beta.ppf(1.0 - alpha / 2.0, k + 1.0, n - k)
    return np.where(k > 0, lo, 0.0), np.where(k < n, hi, 1.0)


def delong_auc_se(scores: np.ndarray, membership: np.ndarray) -> float:
    """Standard error of the ROC AUC by DeLong's method (DeLong et al. 1988), O(N log N).

    scores: float [N], higher = member; membership: bool [N]. Ties count half, as in the AUC.
    Returns inf when a group has fewer than 2 records (no variance estimate), 0 when the groups are
    perfectly separated (or all scores are equal).
    """
    scores = np.asarray(scores, dtype=np.float64)
    membership = np.asarray(membership, dtype=bool)
    pos, neg = scores[membership], scores[~membership]
    m, n = pos.size, neg.size
    if m < 2 or n < 2:
        return math.inf
    pos, neg = np.sort(pos), np.sort(neg)
    # placement values: per member, the share of non-members it outranks; per non-member, the share
    # of members that outrank it (ties half)
    v_members = (np.searchsorted(neg, pos, "left") + np.searchsorted(neg, pos, "right")) / (2.0 * n)
    v_non_members = 1.0 - (np.searchsorted(pos, neg, "left") + np.searchsorted(pos, neg, "right")) / (2.0 * m)
    variance = v_members.var(ddof=1) / m + v_non_members.var(ddof=1) / n
    return math.sqrt(max(variance, 0.0))


def normal_interval(estimate: float, se: float, confidence: float = 0.95) -> tuple[float, float]:
    """estimate +- z * se, clipped to [0, 1] (z: two-sided normal quantile at ``confidence``)."""
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence: {confidence} is not in (0, 1)")
    if not math.isfinite(se):
        return 0.0, 1.0
    half = float(stats.norm.ppf(0.5 + confidence / 2.0)) * se
    return max(0.0, estimate - half), min(1.0, estimate + half)


def allowed_false_positives(level: float, n_non_members: int) -> int:
    """Most false positives an FPR of at most ``level`` allows on n_non_members: max k with k / n <= level.

    Exact where level * n is a whole number (``floor(level * n)`` is not: 0.29 * 100 = 28.999...).
    0 means the level is below the audit's resolution 1 / n_non_members: TPR at zero false positives.
    """
    if n_non_members < 1:
        raise InputError(f"n_non_members: {n_non_members}, need at least 1")
    k = min(int(math.floor(level * n_non_members)), n_non_members)
    while k + 1 <= n_non_members and (k + 1) / n_non_members <= level:
        k += 1
    while k > 0 and k / n_non_members > level:
        k -= 1
    return k


def tpr_at_fpr_intervals(member_scores: np.ndarray, non_member_scores: np.ndarray, levels,
                         confidence: float = 0.95) -> list[tuple[float, float]]:
    """Intervals on the TPR at a true FPR of exactly each level (the threshold t with
    P(non-member > t) = level), covering both the members' and the threshold's sampling error.

    The number B of non-members above t is Binomial(n, level): with probability >= 1 - 2 beta it lies
    in [a, b], so t lies between the a-th and (b+1)-th highest non-member scores; one-sided exact
    bounds on the members above those two scores complete it; beta = (1 - confidence) / 4 per event
    (Bonferroni), so coverage is at least ``confidence`` for continuous scores. The lower end is 0
    when level * n is too small for a to exceed 0 (no score is then known to lie above t).
    member_scores: float [m]; non_member_scores: float [n]; levels: FPRs in (0, 1]; one (lo, hi) each.
    """
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence: {confidence} is not in (0, 1)")
    pos = np.sort(np.asarray(member_scores, dtype=np.float64))
    neg = np.sort(np.asarray(non_member_scores, dtype=np.float64))[::-1]  # highest first
    m, n = pos.size, neg.size
    if m < 1 or n < 1:
        raise InputError("tpr_at_fpr_intervals: need at least one member and one non-member")
    beta = (1.0 - confidence) / 4.0
    out = []
    for level in levels:
        if not 0.0 < level <= 1.0:
            raise InputError(f"level: {level} is not in (0, 1]")
        a = int(stats.binom.ppf(beta, n, level))
        b = int(stats.binom.ppf(1.0 - beta, n, level))
        lo, hi = 0.0, 1.0
        if a >= 1:
            above = m - int(np.searchsorted(pos, neg[a - 1], "right"))  # members > a-th highest non-member
            lo = float(stats.beta.ppf(beta, above, m - above + 1)) if above > 0 else 0.0
        if b < n:
            at_least = m - int(np.searchsorted(pos, neg[b], "left"))  # members >= (b+1)-th highest
            hi = float(stats.beta.ppf(1.0 - beta, at_least + 1, m - at_least)) if at_least < m else 1.0
        out.append((lo, hi))
    return out
