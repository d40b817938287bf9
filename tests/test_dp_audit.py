"""dp_audit: one-run ε bounds on mechanisms whose ε is known exactly, invariances, inputs, flags."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from scipy import integrate, special, stats

from miaudit.errors import InputError
from miaudit.metrics import dp_audit
from miaudit.metrics.dp_audit import FDP, GDP, METHODS, STEINKE, EpsilonAudit, one_run_epsilon

DELTA = 1e-5
CONFIDENCE = 0.95


def randomized_response(m: int, epsilon: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Coin-flip membership; each score is the bit, kept with prob e^ε/(1+e^ε), else flipped (+ tiny noise)."""
    members = rng.random(m) < 0.5
    kept = rng.random(m) < special.expit(epsilon)
    return np.where(kept, members, ~members) + 1e-6 * rng.standard_normal(m), members


def gaussian_mechanism(m: int, sigma: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Coin-flip membership; score = bit + N(0, σ²): (1/σ)-GDP in each record."""
    members = rng.random(m) < 0.5
    return members + sigma * rng.standard_normal(m), members


def randomized_response_epsilon(epsilon: float, delta: float) -> float:
    """Smallest ε' with randomized response at ε being (ε', δ)-DP: q - e^ε' (1 - q) = δ."""
    q = special.expit(epsilon)
    return math.log((q - delta) / (1.0 - q))


def bounds(mechanism, param: float, m: int, seeds: int, method: str) -> np.ndarray:
    out = []
    for seed in range(seeds):
        scores, members = mechanism(m, param, np.random.default_rng(seed))
        out.append(one_run_epsilon(scores, members, DELTA, CONFIDENCE, method=method).epsilon)
    return np.array(out)


def violations_allowed(exceed: np.ndarray, confidence: float = CONFIDENCE) -> bool:
    """True unless the number of bounds above the truth is implausible for a bound that fails with
    probability at most 1 - confidence (one-sided binomial test at 0.1%)."""
    k, n = int(exceed.sum()), exceed.size
    return stats.binomtest(k, n, 1.0 - confidence, alternative="greater").pvalue >= 1e-3


# --- validity: never above the true ε beyond the stated failure probability -----------------------

@pytest.mark.parametrize("method", [STEINKE, FDP])
@pytest.mark.parametrize("epsilon", [1.0, 3.0])
def test_randomized_response_bound_holds(method, epsilon):
    truth = randomized_response_epsilon(epsilon, DELTA)
    found = bounds(randomized_response, epsilon, 2000, 200, method)
    assert violations_allowed(found > truth), f"{(found > truth).sum()} of 200 above {truth:.4f}"
    assert found.mean() > 0.5 * truth  # the check above is not passed by a bound stuck at 0


@pytest.mark.parametrize("method", METHODS)
def test_gaussian_mechanism_bound_holds(method):
    sigma = 1.0
    truth = dp_audit.gdp_epsilon(1.0 / sigma, DELTA)
    found = bounds(gaussian_mechanism, sigma, 2000, 200, method)
    assert violations_allowed(found > truth)
    assert found.mean() > 0.25 * truth


def test_violation_check_catches_a_point_estimate():
    """The same check fails on a number that is not a lower bound: logit of the raw accuracy of the
    all-records guess, which lands above the true ε about half of the time."""
    truth = randomized_response_epsilon(1.0, DELTA)
    estimates = []
    for seed in range(200):
        scores, members = randomized_response(2000, 1.0, np.random.default_rng(seed))
        r, v = dp_audit.correct_guesses(scores, members, 1000, 1000)
        estimates.append(special.logit(v / r))
    assert not violations_allowed(np.array(estimates) > truth)


def test_gdp_conversion_overstates_randomized_response():
    """Rejecting μ-GDP does not reject (ε(μ), δ)-DP: on randomized response (not Gaussian) the GDP
    method lands above the true ε almost always, which is why it is never flagged valid."""
    truth = randomized_response_epsilon(2.0, DELTA)
    found = bounds(randomized_response, 2.0, 10_000, 20, GDP)
    assert np.mean(found > truth) >= 0.9
    scores, members = randomized_response(1000, 2.0, np.random.default_rng(0))
    assert not one_run_epsilon(scores, members, method=GDP).valid


# --- tightness: measured factors (mean over seeds), asserted with margin --------------------------

def test_randomized_response_bound_is_tight():
    # measured over 100 seeds, m = 10,000, ε = 2: Steinke 0.94 ε, f-DP 0.95 ε
    truth = randomized_response_epsilon(2.0, DELTA)
    for method in (STEINKE, FDP):
        assert bounds(randomized_response, 2.0, 10_000, 10, method).mean() >= 0.88 * truth


def test_gaussian_mechanism_tightness_and_order():
    # measured over 100 seeds, m = 10,000, σ = 1 (ε = 4.38 at δ = 1e-5):
    # Steinke 0.40 ε, f-DP on the (ε, δ) curve 0.50 ε, GDP 0.57 ε
    truth = dp_audit.gdp_epsilon(1.0, DELTA)
    means = {method: bounds(gaussian_mechanism, 1.0, 10_000, 10, method).mean() for method in METHODS}
    assert means[STEINKE] >= 0.34 * truth
    assert means[FDP] >= 0.44 * truth
    assert means[GDP] >= 0.5 * truth
    assert means[STEINKE] < means[FDP] < means[GDP]


def test_more_records_tighter():
    truth = randomized_response_epsilon(1.0, DELTA)
    small = bounds(randomized_response, 1.0, 500, 10, FDP).mean()
    large = bounds(randomized_response, 1.0, 20_000, 10, FDP).mean()
    assert small < large <= truth


# --- the pieces -----------------------------------------------------------------------------------

def test_steinke_p_value_matches_the_papers_formula():
    """Appendix D of Steinke et al., term by term with scipy.stats, on small counts."""
    m, r, v, delta = 60, 40, 31, 1e-3
    for eps in (0.2, 0.8, 1.5):
        q = special.expit(eps)
        beta = stats.binom.sf(v - 1, r, q)
        alpha = max(sum(stats.binom.pmf(v - j, r, q) for j in range(1, i + 1)) / i for i in range(1, v + 1))
        expected = min(beta + alpha * delta * 2 * m, 1.0)
        assert dp_audit.steinke_p_value(m, r, v, eps, delta)[0] == pytest.approx(expected, rel=1e-7)
        assert dp_audit.steinke_p_value(m, r, v, eps, 0.0)[0] == pytest.approx(beta, rel=1e-9)


def test_windowed_p_value_is_never_smaller_and_close():
    m, r, v, delta = 100_000, 100_000, 60_000, 1e-5
    eps = np.linspace(0.01, 0.45, 12)
    exact = dp_audit.steinke_p_value(m, r, v, eps, delta)
    windowed = dp_audit.steinke_p_value(m, r, v, eps, delta, window=4096)
    assert np.all(windowed >= exact)
    assert np.all(windowed <= (1.0 + 1e-8) * 1.2 * exact)  # a block bound is within 20% of its terms


@pytest.mark.parametrize("m, r, v", [(10_000, 200, 190), (10_000, 5000, 4990), (100_000, 12_500, 11_000)])
def test_steinke_epsilon_equals_the_exact_grid_scan(m, r, v):
    """The fast search (monotone floor, window, blocks) gives the same grid ε as scanning the exact
    p-value upwards from 0."""
    level = 0.05 / 18
    top = dp_audit._binomial_epsilon(r, v, level)
    exact = dp_audit._contiguous_run(lambda e: dp_audit.steinke_p_value(m, r, v, e, 1e-5)[0] < level, 0, top,
                                     dp_audit.EPSILON_STEP)
    assert dp_audit.steinke_epsilon(m, r, v, 1e-5, level) == pytest.approx(exact, abs=1e-9)
    assert exact > 0.5


def test_delta_term_lowers_the_bound():
    scores, members = gaussian_mechanism(20_000, 1.0, np.random.default_rng(3))
    pure = one_run_epsilon(scores, members, delta=0.0).epsilon
    approx = one_run_epsilon(scores, members, delta=1e-5).epsilon
    assert approx < pure


def test_gdp_epsilon_matches_numerical_privacy_profile():
    """δ(ε) of N(0,1) vs N(μ,1) integrated numerically: ∫ max(0, p_μ(x) - e^ε p_0(x)) dx."""
    for mu, delta in ((0.5, 1e-3), (1.0, 1e-5), (2.0, 1e-6)):
        eps = dp_audit.gdp_epsilon(mu, delta)
        crossing = eps / mu + mu / 2  # p_μ(x) >= e^ε p_0(x) for x >= crossing
        excess = lambda x, mu=mu, eps=eps: stats.norm.pdf(x, mu) - math.exp(eps) * stats.norm.pdf(x)
        value, _ = integrate.quad(excess, crossing, np.inf, epsabs=1e-14)
        assert value == pytest.approx(delta, rel=1e-5)
    assert dp_audit.gdp_epsilon(0.0, 1e-5) == 0.0


def test_correct_guesses_by_hand_with_ties():
    scores = np.array([5.0, 4.0, 4.0, 3.0, 2.0, 1.0, 1.0, 0.0])
    members = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    assert dp_audit.correct_guesses(scores, members, 1, 0) == (1, 1)
    assert dp_audit.correct_guesses(scores, members, 2, 0) == (1, 1)  # the tie at 4.0 straddles: left out
    assert dp_audit.correct_guesses(scores, members, 3, 0) == (3, 2)
    assert dp_audit.correct_guesses(scores, members, 0, 2) == (1, 1)  # the tie at 1.0 straddles: left out
    assert dp_audit.correct_guesses(scores, members, 4, 4) == (8, 6)
    assert dp_audit.correct_guesses(scores, members, 3, 3) == (6, 4)


def test_guess_grid_depends_on_m_only_and_fits():
    for m in (2, 3, 31, 1000, 12_345):
        grid = dp_audit.guess_grid(m)
        assert grid[0] == (m - m // 2, m // 2)
        assert all(kp + km <= m and kp >= 1 for kp, km in grid)
        assert len(set(grid)) == len(grid)


# --- invariances ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_permuting_records_gives_the_same_audit(method):
    rng = np.random.default_rng(5)
    scores, members = gaussian_mechanism(3000, 0.7, rng)
    scores = np.round(scores, 1)  # many ties
    audit = one_run_epsilon(scores, members, method=method)
    for _ in range(3):
        order = rng.permutation(scores.size)
        assert one_run_epsilon(scores[order], members[order], method=method) == audit
    order = np.lexsort((~members, scores))  # members last among equal scores
    assert one_run_epsilon(scores[order], members[order], method=method) == audit
    assert audit.epsilon > 0


@pytest.mark.parametrize("method", METHODS)
def test_all_tied_scores_give_zero(method):
    members = np.random.default_rng(0).random(500) < 0.5
    audit = one_run_epsilon(np.full(500, 0.3), members, method=method)
    assert audit.epsilon == 0.0 and audit.guesses == 0 and audit.correct == 0


def test_uninformative_scores_rarely_give_a_positive_bound():
    hits = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        hits += one_run_epsilon(rng.standard_normal(1000), rng.random(1000) < 0.5).epsilon > 0
    assert stats.binomtest(hits, 100, 0.05, alternative="greater").pvalue >= 1e-3


# --- flags, assumptions, JSON ---------------------------------------------------------------------

def test_validity_flag_and_method_strings():
    scores, members = randomized_response(2000, 2.0, np.random.default_rng(1))
    for method in METHODS:
        with_coins = one_run_epsilon(scores, members, method=method)
        without = one_run_epsilon(scores, members, method=method, coin_flips=False)
        assert with_coins.method == without.method == method
        assert without.epsilon == with_coins.epsilon
        assert not without.valid and "estimate" in without.assumptions.lower()
        assert "coin" in without.assumptions
        assert with_coins.valid == (method != GDP)
        assert with_coins.confidence == 0.95 and with_coins.delta == 1e-5
    assert "Gaussian" in one_run_epsilon(scores, members, method=GDP).assumptions


def test_to_dict_is_plain_json():
    scores, members = randomized_response(2000, 2.0, np.random.default_rng(1))
    out = one_run_epsilon(scores, members).to_dict()
    assert set(out) == {"epsilon", "method", "valid", "assumptions", "confidence", "delta", "guesses", "correct",
                        "k_plus", "k_minus"}
    assert json.loads(json.dumps(out)) == out
    assert type(out["epsilon"]) is float and type(out["guesses"]) is int and type(out["valid"]) is bool


@pytest.mark.parametrize("field, value", [("epsilon", -0.1), ("epsilon", math.inf), ("method", "lira"),
                                          ("confidence", 1.0), ("delta", 1.0), ("correct", 11),
                                          ("guesses", 30), ("assumptions", " ")])
def test_audit_record_is_validated(field, value):
    good = dict(epsilon=1.0, method=STEINKE, valid=True, assumptions="x", confidence=0.95, delta=1e-5, guesses=10,
                correct=8, k_plus=5, k_minus=5)
    EpsilonAudit(**good)
    with pytest.raises(ValueError):
        EpsilonAudit(**{**good, field: value})


@pytest.mark.parametrize("kwargs, message", [
    (dict(scores=np.zeros((4, 2))), "scores"),
    (dict(scores=np.array([0.1, np.nan, 0.2, 0.3])), "scores"),
    (dict(membership=np.array([True, False, True])), "membership"),
    (dict(membership=np.ones(4, bool)), "membership"),
    (dict(membership=np.zeros(4, bool)), "membership"),
    (dict(membership=np.array([0, 1, 2, 1])), "membership"),
    (dict(delta=1.0), "delta"),
    (dict(delta=-1e-5), "delta"),
    (dict(confidence=1.0), "confidence"),
    (dict(confidence=0.0), "confidence"),
    (dict(method="nope"), "method"),
    (dict(method=GDP, delta=0.0), "delta"),
])
def test_bad_inputs(kwargs, message):
    args = dict(scores=np.array([0.1, 0.4, 0.2, 0.3]), membership=np.array([True, False, True, False]))
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        one_run_epsilon(**args)


def test_fast_on_a_large_audit():
    scores, members = gaussian_mechanism(100_000, 0.5, np.random.default_rng(2))
    for method in METHODS:
        one_run_epsilon(scores, members, method=method)
        start = time.perf_counter()
        one_run_epsilon(scores, members, method=method)
        assert time.perf_counter() - start < 0.5  # ~40 ms measured on a loaded 2-core machine
