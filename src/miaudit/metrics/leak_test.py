"""Is there measurable leakage? A test fixed in advance of the null "the attack's scores of members and
non-members are exchangeable" (what an attack with no membership information produces).

Two one-sided tests on one attack's scores, combined by Bonferroni (p = min(1, 2 min(p_tail, p_auc))),
measurable leakage when p <= ``ALPHA``:
- tail rank test (power at low FPR): with k = the false positives that ``TAIL_FPR`` allows among the
  n0 non-members (the largest k with k / n0 <= TAIL_FPR, as in the TPR@FPR column), X = members scored
  strictly above the (k+1)-th highest non-member. Under exchangeability the ranking is a uniformly
  random order of n1 members and n0 non-members, and X >= x exactly when at most k of the first x + k
  records are non-members: P(X >= x) = HypergeomCDF(k; n1 + n0, n0, x + k). Exact; ties at the threshold
  count as not above, which only makes the test conservative.
- AUC test (power for leaks spread over all records): Mann-Whitney U, alternative "members score
  higher" (scipy.stats.mannwhitneyu, normal approximation with tie correction), the AUC's own test.

Why these: the verdict must not depend on how many non-members the audit has beyond the test's power,
and the old rule (lower end of the joint TPR interval) had none below 1 / TAIL_FPR non-members. The
tail test has power at every n0 (75 of 2,500 members above every non-member: p ~ 1e-23), the AUC test
catches diffuse leaks the tail misses, and Bonferroni keeps the level without assuming how the two
relate. ALPHA = 1% rather than 5%: "no measurable leakage" should be the call for an attack with no
signal in well over 95% of audits, and a real leak is far below either level.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from miaudit.metrics.intervals import allowed_false_positives

ALPHA = 0.01
TAIL_FPR = 0.001
TEST_NAME = "tail-rank+mann-whitney-bonferroni"


@dataclass(frozen=True)
class LeakTest:
    """One attack's leakage test.

    p_value: the Bonferroni-combined p-value; rejects: p_value <= alpha (measurable leakage);
    tail_p / tail_hits / tail_false_positives: the tail rank test's p-value, the members above its
    threshold and the non-members it lets through (k); auc_p: the Mann-Whitney p-value.
    """

    p_value: float
    rejects: bool
    alpha: float
    tail_p: float
    tail_hits: int
    tail_false_positives: int
    auc_p: float
    name: str = TEST_NAME

    def describe(self) -> str:
        """One plain sentence: what was tested and the p-value."""
        k = self.tail_false_positives
        where = "every non-member" if k == 0 else f"the {_ordinal(k + 1)} highest non-member"
        return (f"tail rank test: {self.tail_hits} members above {where}, p {p_phrase(self.tail_p)}; Mann-Whitney "
                f"AUC test: p {p_phrase(self.auc_p)}; the smaller doubled (Bonferroni), at the {self.alpha:.0%} level")


def tail_rank_test(member_scores: np.ndarray, non_member_scores: np.ndarray,
                   false_positives: int) -> tuple[int, float]:
    """(members strictly above the (false_positives+1)-th highest non-member score, exact one-sided
    p-value under exchangeability). Scores: float [n1], [n0]; false_positives < n0."""
    members = np.asarray(member_scores, dtype=np.float64)
    non_members = np.sort(np.asarray(non_member_scores, dtype=np.float64))[::-1]
    k = int(false_positives)
    if not 0 <= k < len(non_members):
        raise ValueError(f"false_positives must be in [0, {len(non_members)}), got {k}")
    hits = int((members > non_members[k]).sum())
    if hits == 0:
        return 0, 1.0
    total = len(members) + len(non_members)
    return hits, float(min(1.0, stats.hypergeom.cdf(k, total, len(non_members), hits + k)))


def auc_test(member_scores: np.ndarray, non_member_scores: np.ndarray) -> float:
    """One-sided Mann-Whitney p-value of "members score higher" (1.0 when every score is equal)."""
    members = np.asarray(member_scores, dtype=np.float64)
    non_members = np.asarray(non_member_scores, dtype=np.float64)
    if np.ptp(np.r_[members, non_members]) == 0:
        return 1.0
    p = stats.mannwhitneyu(members, non_members, alternative="greater", method="asymptotic").pvalue
    return 1.0 if not np.isfinite(p) else float(p)


def leak_test(scores: np.ndarray, membership: np.ndarray, alpha: float = ALPHA,
              tail_fpr: float = TAIL_FPR) -> LeakTest:
    """The test above on scores float [N] (higher = member) and membership bool [N]."""

    scores = np.asarray(scores, dtype=np.float64)
    membership = np.asarray(membership, dtype=bool)
    members, non_members = scores[membership], scores[~membership]
    if len(members) == 0 or len(non_members) == 0:
        raise ValueError("leak_test needs members and non-members")
    k = min(allowed_false_positives(tail_fpr, len(non_members)), len(non_members) - 1)
    hits, tail_p = tail_rank_test(members, non_members, k)
    auc_p = auc_test(members, non_members)
    p = min(1.0, 2.0 * min(tail_p, auc_p))
    return LeakTest(p, p <= alpha, alpha, tail_p, hits, k, auc_p)


def p_phrase(p: float) -> str:
    """"= 0.012", "= 3.4e-09", or "< 1e-300" where the p-value underflows to 0 (2 significant digits)."""
    if p < 1e-300:
        return "< 1e-300"
    return f"= {p:.2g}" if p >= 1e-4 else f"= {p:.1e}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
