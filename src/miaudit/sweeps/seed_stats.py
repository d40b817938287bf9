"""Statistics over a sweep's seeds: the mean with its Student-t interval, and the two tests that compare
two points (Welch's t-test for "an effect", TOST for "no effect larger than the margin").

Every per-seed standard deviation is at least the metric's ``resolution`` (the smallest step the metric
can take in one audit, see ``resolution``): seeds that all agree (three TPRs of exactly 0) still carry the
measurement's own uncertainty, so no interval from two or more seeds has zero width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from miaudit.metrics.dp_audit import EPSILON_STEP

CONFIDENCE = 0.95
DEFAULT_RESOLUTION = 1e-3  # a metric whose step is unknown: the tables' printed precision
_PER_MEMBER = ("auc", "tpr_at_0.001", "tpr_at_0.01", "advantage", "train_accuracy")


def resolution(metric: str, members: int | None, non_members: int | None) -> float:
    """The smallest step of ``metric`` in one audit of this many members / non-members (metric units).

    One member moves AUC, a TPR, the advantage or the train accuracy by 1 / members; one audited record
    moves the attack accuracy by 1 / (members + non_members); one test record the test accuracy by
    1 / non_members; the ε lower bound moves on a grid of EPSILON_STEP; the accountant's ε and unknown
    sizes get DEFAULT_RESOLUTION.
    """
    if metric == "epsilon_lower_bound":
        return EPSILON_STEP
    if metric == "accuracy":
        count = (members or 0) + (non_members or 0)
    elif metric == "test_accuracy":
        count = non_members or 0
    else:
        count = (members or 0) if metric in _PER_MEMBER else 0
    return 1.0 / count if count > 0 else DEFAULT_RESOLUTION


@dataclass(frozen=True)
class SeedSummary:
    """mean, sd (sample SD floored at the resolution), n seeds and the two-sided t interval ``ci``."""

    mean: float | None
    sd: float | None
    n: int
    ci: tuple[float | None, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci": list(self.ci), "sd": self.sd, "n": self.n}


def summarize(values, confidence: float = CONFIDENCE, bounds: tuple[float, float] = (-math.inf, math.inf),
              resolution: float = DEFAULT_RESOLUTION) -> SeedSummary:
    """The mean over seeds and its Student-t interval with sd = max(sample SD, resolution), cut to the
    metric's range ``bounds``. Non-finite values are left out; one value gives no interval (None, None)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if len(x) == 0:
        return SeedSummary(None, None, 0, (None, None))
    mean = float(x.mean())
    if len(x) == 1:
        return SeedSummary(mean, None, 1, (None, None))
    sd = max(float(x.std(ddof=1)), resolution)
    lo, hi = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sd / math.sqrt(len(x)))
    return SeedSummary(mean, sd, len(x), (float(max(lo, bounds[0])), float(min(hi, bounds[1]))))


@dataclass(frozen=True)
class Comparison:
    """b - a for two summarized points: the difference, Welch's two-sided p-value, the TOST p-value
    for |difference| >= margin (the larger of its two one-sided p-values) and the (1 - 2 alpha)
    interval of the difference that TOST checks against (-margin, margin)."""

    difference: float
    p_effect: float
    p_equivalent: float
    tost_ci: tuple[float, float]

    def outcome(self, alpha: float) -> str:
        """"no effect" when TOST rejects a difference of the margin or more, "effect" when Welch's test
        rejects no difference, "inconclusive" otherwise (a difference smaller than the margin that the
        seeds still resolve counts as no effect: the margin says what size matters)."""
        if self.p_equivalent < alpha:
            return "no effect"
        return "effect" if self.p_effect < alpha else "inconclusive"


def compare(a: dict[str, Any], b: dict[str, Any], margin: float, alpha: float = 1 - CONFIDENCE) -> Comparison | None:
    """Welch's t-test and TOST on b - a from two points' ``mean``, ``sd``, ``n``; None when either
    point has fewer than two seeds (no test possible)."""
    if not (a.get("n") or 0) >= 2 or not (b.get("n") or 0) >= 2 or a.get("sd") is None or b.get("sd") is None:
        return None
    va, vb = a["sd"] ** 2 / a["n"], b["sd"] ** 2 / b["n"]
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1))
    diff = b["mean"] - a["mean"]
    p_effect = float(2 * stats.t.sf(abs(diff) / se, df))
    p_equivalent = float(max(stats.t.sf((diff + margin) / se, df), stats.t.cdf((diff - margin) / se, df)))
    half = float(stats.t.ppf(1 - alpha, df) * se)
    return Comparison(diff, p_effect, p_equivalent, (diff - half, diff + half))
