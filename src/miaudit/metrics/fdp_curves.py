"""Trade-off curves and the f-DP one-run test of Mahloujifar, Melis & Chaudhuri (ICML 2025), used by
:mod:`miaudit.metrics.dp_audit`: does v correct guesses of r on m coin-flip records reject a claimed curve?"""
from __future__ import annotations

import math

from scipy import optimize, special, stats


def fdp_rejects(m: int, r: int, v: int, level: float, inverse_blow_up) -> bool:
    """True when v correct of r guesses on m coin-flip records rejects the f-DP claim at ``level``.

    The recursion of Mahloujifar, Melis & Chaudhuri (2025); inverse_blow_up(y) is the inverse of
    x -> 1 - f(x) for the claimed trade-off curve f.
    """
    if v == 0:
        return False
    reach = level * v / m
    hold = level * (r - v) / m
    for i in range(v - 1, -1, -1):
        new_hold = max(hold, inverse_blow_up(reach))
        if new_hold == hold:
            break
        reach = min(reach + i / (r - i) * (new_hold - hold), 1.0)
        hold = new_hold
    return reach + hold > r / m


def approx_dp_inverse_blow_up(epsilon: float, delta: float):
    """y -> the inverse of x -> 1 - f(x) for the (ε, δ)-DP curve f(x) = max(0, 1-δ-e^ε x, e^-ε (1-δ-x))."""
    shrink, grow = math.exp(-epsilon), math.exp(epsilon)
    return lambda y: max(0.0, (y - delta) * shrink, 1.0 - delta - grow * (1.0 - y))


def gaussian_inverse_blow_up(mu: float):
    """y -> Φ(Φ⁻¹(y) - μ), the inverse of x -> 1 - G_μ(x) for the μ-GDP curve."""
    return lambda y: float(special.ndtr(special.ndtri(y) - mu))


def gdp_epsilon(mu: float, delta: float) -> float:
    """ε (nats) at which μ-GDP gives δ: Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2) = δ (Dong, Roth & Su 2022)."""
    if mu <= 0.0:
        return 0.0

    def gap(e):
        return stats.norm.cdf(-e / mu + mu / 2) - math.exp(e) * stats.norm.cdf(-e / mu - mu / 2) - delta

    if gap(0.0) <= 0.0:
        return 0.0
    hi = 1.0
    while gap(hi) > 0.0:
        hi *= 2.0
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10))
