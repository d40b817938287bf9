"""Confidence intervals and resolution of the rates an audit reports (fractions in [0, 1])."""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special, stats

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
    pos, neg = _sorted_sides(member_scores, non_member_scores, confidence, "tpr_at_fpr_intervals")
    m, n = pos.size, neg.size
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


def tpr_ci_below_resolution(level: float, n_non_members: int, confidence: float = 0.95) -> bool:
    """True when the audit has too few non-members to bound the TPR at FPR ``level`` from below:
    the chance that no non-member scores above the level's true threshold, (1 - level)^n, exceeds
    (1 - confidence) / 2, so the interval's lower end is 0 whatever the scores (e.g. fewer than 3,688
    non-members at 0.1% FPR and 95%)."""
    return n_non_members * math.log1p(-level) > math.log((1.0 - confidence) / 2.0) if level < 1.0 else False


def tpr_at_fpr_mixture_intervals(member_scores: np.ndarray, non_member_scores: np.ndarray, levels,
                                 confidence: float = 0.95) -> list[tuple[float, float]]:
    """Intervals on the TPR at a true FPR of exactly each level, threshold error included, at about
    ``confidence`` (coverage and width by simulation: benchmarks/coverage_intervals.py).

    The number K of non-members above the level's true threshold t is Binomial(n, level); given K = j,
    t lies between the j-th and (j+1)-th highest non-member scores, where c_lo(j) members score above
    the upper end and c_hi(j) at or above the lower end. The TPR's distribution mixes, over j with its
    binomial weight, the two Clopper-Pearson pivots Beta(c_lo, m - c_lo + 1) and Beta(c_hi + 1, m - c_hi)
    (half each); the interval is its (1 -+ confidence) / 2 quantiles. Deterministic. compute_metrics
    widens it to hold the empirical TPR if needed (a safeguard: it did not bind in 900 random cases).
    member_scores: float [m]; non_member_scores: float [n]; levels: FPRs in (0, 1]; one (lo, hi) each.
    """
    pos, neg = _sorted_sides(member_scores, non_member_scores, confidence, "tpr_at_fpr_mixture_intervals")
    m, n = pos.size, neg.size
    alpha = (1.0 - confidence) / 2.0
    out = []
    for level in levels:
        if not 0.0 < level <= 1.0:
            raise InputError(f"level: {level} is not in (0, 1]")
        j = np.arange(int(stats.binom.ppf(1e-9, n, level)), int(stats.binom.isf(1e-9, n, level)) + 1)
        w = stats.binom.pmf(j, n, level)
        w = w / w.sum()
        upper = np.where(j > 0, neg[np.clip(j - 1, 0, n - 1)], np.inf)
        lower = np.where(j < n, neg[np.clip(j, 0, n - 1)], -np.inf)
        c_lo = m - np.searchsorted(pos, upper, "right")
        c_hi = m - np.searchsorted(pos, lower, "left")
        target = np.array([alpha, 1.0 - alpha])
        lo_x, hi_x = np.zeros(2), np.ones(2)
        for _ in range(40):  # bisection on both quantiles at once, to 1e-12
            mid = 0.5 * (lo_x + hi_x)
            below = _mixture_cdf(mid, w, c_lo, c_hi, m) < target
            lo_x, hi_x = np.where(below, mid, lo_x), np.where(below, hi_x, mid)
        lo = 0.0 if _mixture_cdf(np.zeros(1), w, c_lo, c_hi, m)[0] >= alpha else float(hi_x[0])
        out.append((lo, float(hi_x[1])))
    return out


def _mixture_cdf(x: np.ndarray, w: np.ndarray, c_lo: np.ndarray, c_hi: np.ndarray, m: int) -> np.ndarray:
    """CDF at x [q] of the mixture over j (weights w [J]) of Beta(c_lo, m - c_lo + 1) and
    Beta(c_hi + 1, m - c_hi), half each (c_lo = 0: mass at 0; c_hi = m: mass at 1). Returns [q]."""
    x = x[:, None]
    a = np.where(c_lo > 0, special.betainc(np.maximum(c_lo, 1), m - c_lo + 1, x), 1.0)
    b = np.where(c_hi < m, special.betainc(c_hi + 1, np.maximum(m - c_hi, 1), x), (x >= 1.0) * 1.0)
    return 0.5 * (a + b) @ w


def auc_score_interval(auc: float, n_members: int, n_non_members: int,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Score-type interval on an AUC for small groups (Newcombe 2006, method 5): the AUCs theta with
    (auc - theta)^2 <= z^2 V(theta), V the Hanley-McNeil variance at theta with both group sizes
    replaced by (m + n) / 2 - 1. Never zero width (auc = 1 gives (lo < 1, 1)); (0, 1) below 2 per group."""
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence: {confidence} is not in (0, 1)")
    if not 0.0 <= auc <= 1.0:
        raise InputError(f"auc: {auc} is not in [0, 1]")
    if n_members < 2 or n_non_members < 2:
        return 0.0, 1.0
    z2 = float(stats.norm.ppf(0.5 + confidence / 2.0)) ** 2
    half = (n_members + n_non_members) / 2.0 - 1.0

    def excess(theta: float) -> float:
        v = theta * (1 - theta) / (n_members * n_non_members) * (
            1 + (half - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta)))
        return (auc - theta) ** 2 - z2 * v

    eps = 1e-12
    lo = optimize.brentq(excess, 0.0, auc - eps) if auc > eps else 0.0
    hi = optimize.brentq(excess, auc + eps, 1.0) if auc < 1.0 - eps else 1.0
    return float(lo), float(hi)


def advantage_null_quantile(n_members: int, n_non_members: int, q: float = 0.95) -> float:
    """The q-quantile of the advantage (max TPR - FPR, a one-sided two-sample Kolmogorov-Smirnov
    statistic) of an attack whose scores carry no membership information: Smirnov's limit
    P(D+ >= d) = exp(-2 d^2 m n / (m + n)), continuous scores (ties only lower the advantage)."""
    if n_members < 1 or n_non_members < 1:
        raise InputError("advantage_null_quantile: need at least one member and one non-member")
    if not 0.0 < q < 1.0:
        raise InputError(f"q: {q} is not in (0, 1)")
    return min(1.0, math.sqrt(-math.log(1.0 - q) / 2.0 * (n_members + n_non_members) / (n_members * n_non_members)))


def _sorted_sides(member_scores, non_member_scores, confidence: float, caller: str) -> tuple[np.ndarray, np.ndarray]:
    """(member scores ascending, non-member scores descending), float64, after checking the confidence
    and that both sides have a record (InputError naming ``caller``)."""
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence: {confidence} is not in (0, 1)")
    pos = np.sort(np.asarray(member_scores, dtype=np.float64))
    neg = np.sort(np.asarray(non_member_scores, dtype=np.float64))[::-1]  # highest first
    if pos.size < 1 or neg.size < 1:
        raise InputError(f"{caller}: need at least one member and one non-member")
    return pos, neg
