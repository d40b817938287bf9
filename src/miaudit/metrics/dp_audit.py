"""Empirical ε lower bounds from one training run (membership scores of records drawn by fair coins).

Setting (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training run"): each of the m
audited records was put in training by an independent fair coin; an attack scores every record
(higher = member) without looking at the coins. The auditor guesses "member" on the k+ highest
scores and "non-member" on the k- lowest, abstains elsewhere, and counts the correct guesses v among
its r guesses. The audit reports the largest ε whose claim it rejects at level β = 1 - confidence.

Methods:
- ``steinke-2023-one-run``: their (ε, δ) bound P[≥ v correct] ≤ P[Bin(r, q) ≥ v]
  + 2mδ · max_i P[v - i ≤ Bin(r, q) < v] / i, q = e^ε / (1 + e^ε) (their Theorem 5.2 / Appendix D).
- ``mahloujifar-2025-fdp-one-run``: the f-DP recursion of Mahloujifar, Melis & Chaudhuri (ICML 2025)
  on the (ε, δ)-DP trade-off curve itself: the rejected claim is exactly "(ε, δ)-DP", a valid bound.
- ``mahloujifar-2025-gdp-one-run``: the same recursion on the Gaussian curve G_μ, the largest rejected
  μ converted to ε at δ. Rejecting "μ-GDP" does not reject "(ε(μ), δ)-DP" for a mechanism whose
  curve is not Gaussian (randomized response), so this ε is an estimate (valid=False).

Validity: the (k+, k-) pairs form a fixed grid that depends on m alone; the best is taken with a
Bonferroni correction (each of the G pairs at β / G). Records tied at a guess boundary get no guess,
so record order never matters. The reported value is the largest point of a fixed grid (step
``EPSILON_STEP``, ``MU_STEP`` for μ) with every grid point from 0 up to it rejected, which needs no
monotonicity of the test in ε.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from miaudit.errors import InputError
from miaudit.metrics.fdp_curves import approx_dp_inverse_blow_up, fdp_rejects, gaussian_inverse_blow_up, gdp_epsilon

STEINKE = "steinke-2023-one-run"
FDP = "mahloujifar-2025-fdp-one-run"
GDP = "mahloujifar-2025-gdp-one-run"
METHODS = (STEINKE, FDP, GDP)
EPSILON_STEP = 0.01
MU_STEP = 0.005
MIN_GUESSES_PER_SIDE = 16
_EXACT_TERMS = 4096
_BLOCK_GROWTH = 1.2
_ROUNDING = 1.0 + 1e-9  # the binomial terms come from log-gamma sums: keep float error on the safe side


@dataclass(frozen=True)
class EpsilonAudit:
    """A one-run ε audit of one attack.

    epsilon: nats, >= 0 (0 when nothing is rejected); valid: True when the bound holds at
    ``confidence`` (members drawn by coin flips and a method whose claim is (ε, δ)-DP), False for an
    estimate; assumptions: one or two plain sentences; guesses / correct: r and v of the (k_plus,
    k_minus) pair that gave the bound.
    """

    epsilon: float
    method: str
    valid: bool
    assumptions: str
    confidence: float
    delta: float
    guesses: int
    correct: int
    k_plus: int
    k_minus: int

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, float) and math.isfinite(self.epsilon) and self.epsilon >= 0.0):
            raise ValueError(f"EpsilonAudit.epsilon = {self.epsilon!r}, expected a finite float >= 0")
        if self.method not in METHODS:
            raise ValueError(f"EpsilonAudit.method = {self.method!r}, expected one of {METHODS}")
        if not isinstance(self.valid, bool):
            raise ValueError(f"EpsilonAudit.valid = {self.valid!r}, expected a bool")
        if not (isinstance(self.assumptions, str) and self.assumptions.strip()):
            raise ValueError("EpsilonAudit.assumptions must be a non-empty string")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"EpsilonAudit.confidence = {self.confidence!r}, expected a number in (0, 1)")
        if not 0.0 <= self.delta < 1.0:
            raise ValueError(f"EpsilonAudit.delta = {self.delta!r}, expected a number in [0, 1)")
        counts = (self.guesses, self.correct, self.k_plus, self.k_minus)
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise ValueError(f"EpsilonAudit counts {counts} must be non-negative ints")
        if self.correct > self.guesses or self.guesses > self.k_plus + self.k_minus:
            raise ValueError(f"EpsilonAudit: need correct <= guesses <= k_plus + k_minus, got {counts}")

    def to_dict(self) -> dict:
        """Plain JSON types (float, str, bool, int)."""
        return asdict(self)


def one_run_epsilon(scores, membership, delta: float = 1e-5, confidence: float = 0.95, coin_flips: bool = True,
                    method: str = STEINKE) -> EpsilonAudit:
    """One-run ε lower bound (nats) from attack scores.

    scores: float [m], higher = member; membership: bool [m], the coins; coin_flips: whether each
    record's membership was drawn by an independent fair coin (False: the result is an estimate).
    """
    scores, membership = _checked_inputs(scores, membership)
    if method not in METHODS:
        raise InputError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if not (isinstance(delta, (int, float)) and 0.0 <= delta < 1.0):
        raise InputError(f"delta: {delta!r} is not in [0, 1)")
    if method == GDP and delta <= 0.0:
        raise InputError("delta: the Gaussian (GDP) conversion to epsilon needs delta > 0")
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise InputError(f"confidence: {confidence!r} is not in (0, 1)")
    m = scores.size
    grid = guess_grid(m)
    level = (1.0 - confidence) / len(grid)
    ranked = _ranked(scores, membership)
    counts = [_counts(*ranked, kp, km) for kp, km in grid]
    value, best = _search(method, m, counts, float(delta), level)
    epsilon = gdp_epsilon(value, delta) if method == GDP else value
    (k_plus, k_minus), (r, v) = grid[best], counts[best]
    return EpsilonAudit(epsilon=float(epsilon), method=method, valid=bool(coin_flips) and method != GDP,
                        assumptions=_assumptions(method, coin_flips, confidence, len(grid), value),
                        confidence=float(confidence), delta=float(delta), guesses=int(r), correct=int(v),
                        k_plus=int(k_plus), k_minus=int(k_minus))


def guess_grid(m: int) -> tuple[tuple[int, int], ...]:
    """The fixed (k+, k-) pairs tried for m records: k = ceil(m / 2), then halving while k >= 16,
    each both two-sided (k, k) (k- = m // 2 for the first) and one-sided (k, 0)."""
    if m < 2:
        raise InputError(f"scores: need at least 2 records, got {m}")
    pairs = [(m - m // 2, m // 2), (m - m // 2, 0)]
    k = m // 4
    while k >= MIN_GUESSES_PER_SIDE:
        pairs += [(k, k), (k, 0)]
        k //= 2
    return tuple(pairs)


def correct_guesses(scores: np.ndarray, membership: np.ndarray, k_plus: int, k_minus: int) -> tuple[int, int]:
    """(guesses r, correct v): "member" on the k_plus highest scores, "non-member" on the k_minus lowest.

    A group of tied scores that straddles a boundary is left out entirely (fewer guesses), so the
    counts depend on the scores' values, never on record order. scores: float [m]; membership: bool [m].
    """
    m = scores.size
    if not (0 <= k_plus and 0 <= k_minus and k_plus + k_minus <= m):
        raise InputError(f"k_plus, k_minus: {k_plus}, {k_minus} must be >= 0 with sum <= {m}")
    return _counts(*_ranked(scores, membership), k_plus, k_minus)


def _ranked(scores: np.ndarray, membership: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores ascending [m], members among the i lowest [m + 1]); ties in any order, the counts
    below only ever cut between distinct values."""
    order = np.argsort(scores)
    return scores[order], np.concatenate([[0], np.cumsum(membership[order])])


def _counts(ranked: np.ndarray, members_below: np.ndarray, k_plus: int, k_minus: int) -> tuple[int, int]:
    m = ranked.size
    n_members = int(members_below[-1])
    r = v = 0
    if k_plus > 0:
        start = 0 if k_plus == m else int(np.searchsorted(ranked, ranked[m - k_plus - 1], side="right"))
        r += m - start
        v += n_members - int(members_below[start])
    if k_minus > 0:
        stop = m if k_minus == m else int(np.searchsorted(ranked, ranked[k_minus], side="left"))
        r += stop
        v += stop - int(members_below[stop])
    return r, v


def steinke_p_value(m: int, r: int, v: int, epsilon, delta: float, window: int | None = None,
                    monotone: bool = False) -> np.ndarray:
    """P[≥ v correct of r] allowed by (ε, δ)-DP on m coin-flip records (Steinke et al. 2023), per ε.

    epsilon: float [E] or scalar; returns float [E] in [0, 1]. ``window`` (default v: exact) takes the
    max over i <= window term by term and bounds the i beyond it block by block (never smaller).
    monotone: an upper bound that increases with ε instead, with P[Bin >= v - i] (grows with q) in
    place of P[v - i <= Bin < v].
    """
    q = special.expit(np.atleast_1d(np.asarray(epsilon, dtype=np.float64)))[:, None]
    beta = _binom_sf(v - 1, r, q)
    if delta == 0.0 or v == 0:
        return np.minimum(beta[:, 0], 1.0)
    w = v if window is None else max(1, min(window, v))
    i = np.arange(1, w + 1)
    terms = np.cumsum(_binom_pmf_below(r, v, w, q), axis=1)  # P[v - i <= Bin < v]
    alpha = np.max((terms + beta if monotone else terms) / i, axis=1)
    starts, ends = _blocks(w, v)
    if starts.size:  # i in [a, b]: P[v - i <= Bin < v] / i <= P[v - b <= Bin < v] / a
        mass = _binom_sf(v - ends - 1, r, q) if monotone else _binom_cdf(v - 1, r, q) - _binom_cdf(v - ends - 1, r, q)
        alpha = np.maximum(alpha, np.max(mass / starts, axis=1))
    return np.minimum(beta[:, 0] + 2.0 * m * delta * alpha * _ROUNDING, 1.0)


def steinke_epsilon(m: int, r: int, v: int, delta: float, level: float) -> float:
    """Largest grid ε (step EPSILON_STEP) with every grid point in (0, ε] rejected at ``level``.

    Grid points below where the monotone upper bound crosses ``level`` are rejected without being
    evaluated; the rest are evaluated upwards, a few at a time, until the first one not rejected.
    """
    top = _binomial_epsilon(r, v, level)
    if top <= 0.0:
        return 0.0
    if delta == 0.0:
        return math.floor(top / EPSILON_STEP * (1 - 1e-12)) * EPSILON_STEP
    window = _steinke_window(r, v, level)
    floor, upto = 0.0, top
    for _ in range(3):  # the crossing to within top / 8³, 9 points at a time
        points = np.linspace(floor, upto, 9)
        passed = _leading_true(steinke_p_value(m, r, v, points, delta, window, monotone=True) < level)
        if passed == 0:
            break
        floor, upto = points[passed - 1], points[min(passed, 8)]
    j = int(math.floor(floor / EPSILON_STEP))
    while (j + 1) * EPSILON_STEP < top:
        points = (j + 1 + np.arange(8)) * EPSILON_STEP
        points = points[points < top]
        passed = _leading_true(steinke_p_value(m, r, v, points, delta, window) < level)
        j += passed
        if passed < points.size:
            break
    return j * EPSILON_STEP


def _leading_true(flags: np.ndarray) -> int:
    """How many entries at the start of a bool array are True."""
    return int(flags.size if flags.all() else np.argmin(flags))


@lru_cache(maxsize=64)
def _blocks(window: int, v: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks [a, b] of i covering window + 1 .. v, each 20% longer than the one before (so a block's
    bound is within 20% of its terms)."""
    starts = []
    a = window + 1
    while a <= v:
        starts.append(a)
        a = max(a + 1, math.ceil(a * _BLOCK_GROWTH))
    starts = np.array(starts, dtype=np.int64)
    ends = np.append(starts[1:] - 1, v)
    starts.setflags(write=False)
    ends.setflags(write=False)
    return starts, ends


def _steinke_window(r: int, v: int, level: float) -> int:
    """How many i the max over i takes term by term: all of them up to ``_EXACT_TERMS``, else down to
    12 sd below the mean of Bin(r, q) at the largest ε that could be rejected."""
    q_top = special.expit(_binomial_epsilon(r, v, level))
    spread = 12.0 * math.sqrt(r * q_top * (1.0 - q_top)) + 1.0
    return int(min(v, max(v - math.floor(r * q_top - spread), _EXACT_TERMS)))


@lru_cache(maxsize=16)
def _log_choose_below(r: int, v: int, w: int) -> np.ndarray:
    """log C(r, v - i) for i = 1 .. w: float [w]."""
    k = v - np.arange(1, w + 1, dtype=np.float64)
    return special.gammaln(r + 1.0) - special.gammaln(k + 1.0) - special.gammaln(r - k + 1.0)


def _binom_pmf_below(r: int, v: int, w: int, q: np.ndarray) -> np.ndarray:
    """P[Bin(r, q) = v - i] for i = 1 .. w: float [Q, w] for q float [Q, 1]."""
    k = v - np.arange(1, w + 1, dtype=np.float64)
    return np.exp(_log_choose_below(r, v, w) + k * np.log(q) + (r - k) * np.log1p(-q))


def _binom_sf(k, r: int, q: np.ndarray) -> np.ndarray:
    """P[Bin(r, q) > k], broadcast over k and q; 1 for k < 0."""
    k = np.asarray(k)
    return np.where(k < 0, 1.0, special.bdtrc(np.maximum(k, 0), r, q))


def _binom_cdf(k, r: int, q: np.ndarray) -> np.ndarray:
    """P[Bin(r, q) <= k], broadcast over k and q; 0 for k < 0."""
    k = np.asarray(k)
    return np.where(k < 0, 0.0, special.bdtr(np.maximum(k, 0), r, q))


def _search(method: str, m: int, counts, delta: float, level: float) -> tuple[float, int]:
    """(largest rejected ε, or μ for GDP; index of its pair) over the (r, v) pairs at ``level`` each."""
    step = MU_STEP if method == GDP else EPSILON_STEP

    def upper(r, v):  # no claim at or above this is rejected: every p-value is at least the binomial tail
        eps = _binomial_epsilon(r, v, level)
        # randomized response at ε is μ-GDP for μ >= 2 Φ⁻¹(e^ε / (1 + e^ε))
        return 2.0 * float(special.ndtri(special.expit(eps))) if method == GDP else eps

    def rejects(r, v, x):
        if method == STEINKE:
            return steinke_p_value(m, r, v, x, delta, _steinke_window(r, v, level))[0] < level
        blow_up = gaussian_inverse_blow_up(x) if method == GDP else approx_dp_inverse_blow_up(x, delta)
        return fdp_rejects(m, r, v, level, blow_up)

    def full(r, v):
        if method == STEINKE:
            return steinke_epsilon(m, r, v, delta, level)
        return _contiguous_run(lambda x: rejects(r, v, x), 0, upper(r, v), step)

    best, best_index = 0.0, 0
    tops = [upper(r, v) for r, v in counts]
    for index in np.argsort(tops, kind="stable")[::-1]:
        r, v = counts[index]
        # a pair beats the best only if it rejects the next grid point above it
        if tops[index] <= best + step or not rejects(r, v, best + step):
            continue
        value = full(r, v)
        if value > best:
            best, best_index = value, int(index)
    return best, best_index if best > 0.0 else int(np.argmax(tops))


def _contiguous_run(rejects, start: int, top: float, step: float) -> float:
    """j * step for the largest j with grid points start+1 .. j all rejected (those <= start already are)."""
    j = start
    while (j + 1) * step < top:
        if not rejects((j + 1) * step):
            break
        j += 1
    return j * step


@lru_cache(maxsize=256)
def _binomial_epsilon(r: int, v: int, level: float) -> float:
    """ε where P[Bin(r, e^ε/(1+e^ε)) >= v] = level (exact Clopper-Pearson end); 0 if below q = 1/2.

    Every method's p-value is at least this binomial tail, so no ε at or above it is rejected.
    """
    if v == 0:
        return 0.0
    q = float(special.betaincinv(v, r - v + 1, level))  # the level-quantile of Beta(v, r - v + 1)
    return float(special.logit(q)) if q > 0.5 else 0.0


def _assumptions(method: str, coin_flips: bool, confidence: float, pairs: int, value: float) -> str:
    if not coin_flips:
        return ("An estimate, not a guaranteed bound: the one-run audit needs each record's membership drawn by an "
                "independent fair coin, and here it was not (e.g. a fixed number of members, or a user's own model)."
                + (" Epsilon from mu also assumes a Gaussian privacy curve." if method == GDP else ""))
    base = (f"Holds with {confidence:.0%} confidence if each audited record was put in training by an independent "
            f"fair coin and the attack scores did not use that membership; best of {pairs} fixed guess counts, "
            f"Bonferroni-corrected.")
    if method == GDP:
        return (f"An estimate: Gaussian DP with mu <= {value:.3f} is rejected at {confidence:.0%} confidence (records "
                "put in training by independent fair coins, scores not using that membership), but epsilon from mu "
                "assumes the training's privacy curve is Gaussian.")
    return base


def _checked_inputs(scores, membership) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise InputError(f"scores: expected a 1-D array, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise InputError(f"scores: expected real numbers, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    if not np.all(np.isfinite(scores)):
        raise InputError("scores: NaN or inf score")
    membership = np.asarray(membership)
    if membership.shape != scores.shape:
        raise InputError(f"membership: shape {membership.shape}, expected {scores.shape}")
    if membership.dtype != bool:
        if not (np.issubdtype(membership.dtype, np.number) and np.all((membership == 0) | (membership == 1))):
            raise InputError("membership: expected booleans (or 0/1)")
        membership = membership.astype(bool)
    n_members = int(membership.sum())
    if n_members == 0 or n_members == membership.size:
        raise InputError(f"membership: need both members and non-members, got {n_members} members of "
                         f"{membership.size}")
    return scores, membership
