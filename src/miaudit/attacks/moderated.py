"""Empirical-Bayes (moderated) variances and their Student-t predictive, after Smyth (2004),
"Linear models and empirical Bayes methods for assessing differential expression in microarray
experiments" (limma's moderated variance).

Model: each record has a true variance sigma^2 ~ s0^2 d0 / chi2(d0) (scaled inverse chi-squared
prior), and its sample variance s^2 (ddof=1, d = n - 1 degrees of freedom) ~ sigma^2 chi2(d) / d.
``fit_variance_prior`` estimates (d0, s0^2) by moments of log s^2; ``posterior_variance`` shrinks
each s^2 toward s0^2; a new draw around the sample mean of n values then follows a Student-t with
d0 + d degrees of freedom and scale s~ sqrt(1 + 1/n) (``t_logpdf`` / ``t_logsf``, dof inf = normal).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import digamma, polygamma
from scipy.stats import norm, t

LOG_SF_TAIL = -700.0
"""Below this log survival, t.logsf loses precision (sf near the float64 underflow): use the tail bound."""


@dataclass(frozen=True)
class VariancePrior:
    """sigma^2 ~ s0sq * d0 / chi2(d0); d0 = inf means every record has variance s0sq.
    n_fitted: how many sample variances the fit used."""

    d0: float
    s0sq: float
    n_fitted: int


def trigamma(x: np.ndarray | float) -> np.ndarray:
    return polygamma(1, x)


def trigamma_inverse(y: float) -> float:
    """The h > 0 with trigamma(h) = y (y > 0). The root lies in [1/y, (1 + sqrt(1 + 4y)) / (2y)]
    since 1/h + 1/(2h^2) < trigamma(h) < 1/h + 1/h^2."""
    lo, hi = 1.0 / y, (1.0 + np.sqrt(1.0 + 4.0 * y)) / (2.0 * y)
    return float(brentq(lambda h: float(trigamma(h)) - y, lo, hi, xtol=1e-12 * lo, rtol=1e-13))


def fit_variance_prior(s2: np.ndarray, dof: np.ndarray, floor: float = 0.0) -> VariancePrior | None:
    """(d0, s0^2) from sample variances s2 and their degrees of freedom dof (broadcastable, any shape).

    Uses the entries with dof >= 1 and s2 > floor; None when there is none.
    e = log s2 - digamma(d/2) + log(d/2); evar = var(e, ddof=1) - mean(trigamma(d/2));
    evar > 0: d0 = 2 trigamma_inverse(evar), s0^2 = exp(mean(e) + digamma(d0/2) - log(d0/2));
    else d0 = inf, s0^2 = exp(mean(e)).
    """
    s2, dof = np.broadcast_arrays(np.asarray(s2, np.float64), np.asarray(dof, np.float64))
    with np.errstate(invalid="ignore"):
        use = (dof >= 1) & np.isfinite(s2) & (s2 > floor)
    s2, half = s2[use], dof[use] / 2.0
    if s2.size == 0:
        return None
    e = np.log(s2) - digamma(half) + np.log(half)
    emean = float(e.mean())
    evar = float(e.var(ddof=1) - trigamma(half).mean()) if e.size > 1 else 0.0
    if evar <= 0.0 or not np.isfinite(evar):
        return VariancePrior(np.inf, float(np.exp(emean)), int(e.size))
    d0 = 2.0 * trigamma_inverse(evar)
    return VariancePrior(d0, float(np.exp(emean + digamma(d0 / 2.0) - np.log(d0 / 2.0))), int(e.size))


def posterior_variance(s2: np.ndarray, dof: np.ndarray, prior: VariancePrior, floor: float = 0.0) -> np.ndarray:
    """s~^2 = (d0 s0^2 + d s^2) / (d0 + d) with s^2 floored at ``floor``; s0^2 where d0 = inf or d = 0.
    s2, dof broadcastable -> float64 of their broadcast shape (s2 is ignored where dof = 0)."""
    s2, dof = np.broadcast_arrays(np.asarray(s2, np.float64), np.asarray(dof, np.float64))
    has = dof > 0
    s2 = np.where(has, np.maximum(np.nan_to_num(s2), floor), 0.0)
    if np.isinf(prior.d0):
        return np.full(s2.shape, prior.s0sq)
    return (prior.d0 * prior.s0sq + dof * s2) / (prior.d0 + dof)


def t_logpdf(x: np.ndarray, loc: np.ndarray, scale: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """log density of Student-t(dof, loc, scale) at x (all broadcastable); dof inf = normal."""
    x, loc, scale, dof = np.broadcast_arrays(x, loc, scale, dof)
    normal = np.isinf(dof)
    z = (x - loc) / scale
    student = t.logpdf(z, np.where(normal, 1.0, dof))
    return np.where(normal, norm.logpdf(z), student) - np.log(scale)


def t_logsf(x: np.ndarray, loc: np.ndarray, scale: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """log P(X >= x) for X ~ Student-t(dof, loc, scale); dof inf = normal. Finite for finite x.

    Far in the upper tail (log sf < LOG_SF_TAIL, so z > 37) t.logsf underflows; there
    f(z) (nu + z^2) / (nu z) / (1 + 1/z^2) <= sf(z) <= f(z) (nu + z^2) / (nu z) (integration by
    parts of the t density f) pins log sf to within log(1 + 1/z^2) < 1e-3; the midpoint is used.
    """
    x, loc, scale, dof = np.broadcast_arrays(x, loc, scale, dof)
    normal = np.isinf(dof)
    nu = np.where(normal, 1.0, dof)
    z = (x - loc) / scale
    with np.errstate(divide="ignore"):
        student = t.logsf(z, nu)
    tail = (student < LOG_SF_TAIL) & (z > 0)
    if tail.any():
        zt, nut = z[tail], nu[tail]
        bound = t.logpdf(zt, nut) + np.log(1.0 / zt + zt / nut) - 0.5 * np.log1p(1.0 / zt ** 2)
        student = student.copy()
        student[tail] = bound
    return np.where(normal, norm.logsf(z), student)


@dataclass(frozen=True)
class SideFit:
    """What one side's moderated predictive (LiRA, variance "moderated") takes from all records: ``gap`` [Q]
    the median location gap to the other side over records with models on both (None: no such record),
    ``pooled`` [Q] the pooled scale (NaN: no value on either side), ``prior`` the fitted variance prior."""

    gap: np.ndarray | None
    pooled: np.ndarray
    prior: VariancePrior | None


def pooled_scale(sq_dev: np.ndarray, count: np.ndarray, global_scale: Callable[[], np.ndarray]) -> np.ndarray:
    """One scale per query [Q]: the pooled within-record std sqrt(sum SS / sum (n - 1)) from SS [N, Q] and
    counts n [N], else global_scale() (the std of all values); NaN if none."""
    dof = float(np.maximum(count - 1, 0).sum())
    if dof > 0:
        return np.sqrt(sq_dev.sum(axis=0) / dof)
    return global_scale()


def side_fit(own: tuple, other: tuple, own_scale: Callable[[], np.ndarray],
             other_scale: Callable[[], np.ndarray], floor: float) -> SideFit:
    """:class:`SideFit` of one side from both sides' per-record (location [N, Q], SS [N, Q], count [N]) over
    all records; own_scale() / other_scale(): the std [Q] of all values of each side (called only when no
    record has two models on the side); floor: the variance floor of the prior's fit."""
    loc, sq_dev, count = own
    both = (count > 0) & (other[2] > 0)
    gap = np.median(loc[both] - other[0][both], axis=0) if both.any() else None
    pooled = pooled_scale(sq_dev, count, own_scale)
    if np.isnan(pooled).all():  # no model on this side: borrow the other side's spread
        pooled = pooled_scale(other[1], other[2], other_scale)
    d = np.maximum(count - 1, 0)[:, None].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = sq_dev / d  # NaN / inf where d = 0
    return SideFit(gap, pooled, fit_variance_prior(s2, d, floor=floor))
