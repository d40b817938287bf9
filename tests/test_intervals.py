"""Intervals on the TPR (Clopper-Pearson) and the AUC (DeLong), and the FPR resolution of an audit."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from miaudit.errors import InputError
from miaudit.metrics.attack_metrics import compute_metrics, per_class_metrics
from miaudit.metrics.intervals import (
    advantage_null_quantile,
    allowed_false_positives,
    auc_score_interval,
    clopper_pearson_interval,
    delong_auc_se,
    normal_interval,
    tpr_at_fpr_intervals,
    tpr_at_fpr_mixture_intervals,
    tpr_ci_below_resolution,
)


def test_clopper_pearson_matches_scipy_exact_interval():
    for k, n in ((0, 10), (3, 10), (10, 10), (1, 2500), (250, 2500), (2499, 2500)):
        want = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        lo, hi = clopper_pearson_interval(k, n, 0.95)
        assert (float(lo), float(hi)) == pytest.approx((want.low, want.high), abs=1e-12), (k, n)


@pytest.mark.parametrize("p", [0.002, 0.02, 0.1, 0.5])
def test_clopper_pearson_coverage_on_simulated_counts(p):
    """2000 binomial draws per true rate, small rates included (where a normal interval fails)."""
    n = 500
    k = np.random.default_rng(int(p * 1e4)).binomial(n, p, size=2000)
    lo, hi = clopper_pearson_interval(k, n, 0.95)
    coverage = np.mean((lo <= p) & (p <= hi))
    assert coverage >= 0.95 - 0.01
    assert np.all(lo <= k / n) and np.all(k / n <= hi)


def test_clopper_pearson_rejects_impossible_counts():
    with pytest.raises(InputError):
        clopper_pearson_interval(5, 4)
    with pytest.raises(InputError):
        clopper_pearson_interval(0, 0)


def _rank_aucs(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC of each row: pos [B, m] member scores, neg [B, n] non-member scores (Mann-Whitney)."""
    m, n = pos.shape[1], neg.shape[1]
    ranks = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def _bootstrap_aucs(scores, membership, n_boot, seed):
    """AUCs of n_boot stratified bootstrap resamples (members and non-members resampled apart)."""
    rng = np.random.default_rng(seed)
    pos, neg = scores[membership], scores[~membership]
    return _rank_aucs(pos[rng.integers(0, pos.size, (n_boot, pos.size))],
                      neg[rng.integers(0, neg.size, (n_boot, neg.size))])


def test_delong_agrees_with_a_bootstrap_on_tied_scores():
    rng = np.random.default_rng(5)
    membership = np.r_[np.ones(600, bool), np.zeros(400, bool)]
    scores = np.round(rng.normal(size=1000) + 0.7 * membership)  # a handful of values, as from a tree
    auc = roc_auc_score(membership, scores)
    se = delong_auc_se(scores, membership)
    boot = _bootstrap_aucs(scores, membership, 2000, seed=6)
    assert se == pytest.approx(boot.std(), rel=0.05)
    lo, hi = normal_interval(auc, se, 0.95)
    b_lo, b_hi = np.quantile(boot, [0.025, 0.975])
    assert abs(lo - b_lo) < 0.05 * (hi - lo) + 1e-3 and abs(hi - b_hi) < 0.05 * (hi - lo) + 1e-3


def test_delong_interval_covers_the_true_auc():
    """Binormal scores with shift 1: the true AUC is Phi(1 / sqrt 2)."""
    rng = np.random.default_rng(7)
    true_auc = stats.norm.cdf(1 / np.sqrt(2))
    membership = np.r_[np.ones(150, bool), np.zeros(250, bool)]
    scores = rng.normal(size=(1000, 400)) + membership
    aucs = _rank_aucs(scores[:, membership], scores[:, ~membership])
    assert aucs[0] == pytest.approx(roc_auc_score(membership, scores[0]))
    hits = 0
    for auc, s in zip(aucs, scores):
        lo, hi = normal_interval(auc, delong_auc_se(s, membership))
        hits += lo <= true_auc <= hi
    assert 0.93 <= hits / 1000 <= 0.97


def test_delong_degenerate_cases():
    assert delong_auc_se(np.r_[1.0, 0.0, 0.5], np.array([True, False, False])) == np.inf
    assert normal_interval(0.5, np.inf) == (0.0, 1.0)
    separated = np.r_[np.ones(5), np.zeros(5)]
    assert delong_auc_se(separated, separated > 0) == 0.0


def test_allowed_false_positives_and_resolution():
    assert allowed_false_positives(0.001, 449) == 0  # 0.1% of 449 non-members: TPR at zero false positives
    assert allowed_false_positives(0.001, 1000) == 1
    assert allowed_false_positives(0.001, 2500) == 2
    assert allowed_false_positives(0.29, 100) == 29  # floor(0.29 * 100) is 28 in floating point
    assert allowed_false_positives(0.01, 99) == 0 and allowed_false_positives(0.01, 100) == 1
    assert allowed_false_positives(1.0, 7) == 7
    for n in (1, 37, 449, 1000, 2501):
        for level in (0.001, 0.01, 0.07, 0.29, 0.5):
            k = allowed_false_positives(level, n)
            assert k / n <= level < (k + 1) / n


def test_joint_interval_covers_the_tpr_at_the_true_fpr():
    """Binormal scores, 2500 members and 2500 non-members (the benchmark's sizes), FPR 0.1%: the true
    TPR is Phi(shift - z_0.999). The joint interval covers it; the Clopper-Pearson interval on the
    members alone (threshold taken as exact, 2 false positives allowed) covers it far less often."""
    rng = np.random.default_rng(8)
    shift, level, sims = 2.0, 0.001, 300
    truth = stats.norm.sf(stats.norm.isf(level) - shift)
    joint = members_only = 0
    for _ in range(sims):
        pos, neg = rng.normal(size=2500) + shift, rng.normal(size=2500)
        (lo, hi), = tpr_at_fpr_intervals(pos, neg, [level])
        joint += lo <= truth <= hi
        found = np.sum(pos > np.sort(neg)[-(allowed_false_positives(level, 2500) + 1)])
        cp_lo, cp_hi = clopper_pearson_interval(found, 2500)
        members_only += cp_lo <= truth <= cp_hi
    assert joint / sims >= 0.95
    assert members_only / sims < 0.5


def test_joint_interval_without_enough_non_members_has_no_lower_end():
    rng = np.random.default_rng(9)
    pos, neg = rng.normal(size=2500) + 2, rng.normal(size=449)
    (lo, hi), (lo_1pct, _) = tpr_at_fpr_intervals(pos, neg, [0.001, 0.01])
    assert lo == 0.0 and 0.0 < hi < 1.0  # 0.1% of 449: nothing is known to lie above the threshold
    assert lo_1pct > 0.0


def _binormal(rng, n: int, auc: float) -> tuple[np.ndarray, np.ndarray]:
    """n members ~ N(mu, 1) and n non-members ~ N(0, 1) with the given AUC (mu = sqrt 2 Phi^-1(AUC))."""
    return rng.normal(size=n) + np.sqrt(2) * stats.norm.ppf(auc), rng.normal(size=n)


def test_reported_tpr_interval_covers_the_tpr_at_the_true_fpr():
    """The interval compute_metrics reports (CLI, summary, report, results.json) covers the TPR at a
    true 1% FPR: AUC 0.92, 1000 per side, 100 runs (95% expected; the Clopper-Pearson interval at the
    empirical threshold that it replaces covers about half the time here)."""
    rng = np.random.default_rng(21)
    level, auc, n, sims = 0.01, 0.92, 1000, 100
    truth = stats.norm.sf(stats.norm.isf(level) - np.sqrt(2) * stats.norm.ppf(auc))
    membership = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    hits = 0
    for _ in range(sims):
        pos, neg = _binormal(rng, n, auc)
        lo, hi = compute_metrics(np.r_[pos, neg], membership).tpr_at_fpr_ci[level]
        hits += lo <= truth <= hi
    assert hits / sims >= 0.88


def test_mixture_interval_covers_at_low_fpr_and_is_narrower_than_the_joint_one():
    """AUC 0.98, 0.1% FPR, 4000 per side (just above the 3,688 non-members the level needs): coverage
    and a median width below the Bonferroni joint interval's."""
    rng = np.random.default_rng(22)
    level, auc, sims = 0.001, 0.98, 150
    truth = stats.norm.sf(stats.norm.isf(level) - np.sqrt(2) * stats.norm.ppf(auc))
    hits, widths, joint_widths = 0, [], []
    for _ in range(sims):
        pos, neg = _binormal(rng, 4000, auc)
        (lo, hi), = tpr_at_fpr_mixture_intervals(pos, neg, [level])
        (j_lo, j_hi), = tpr_at_fpr_intervals(pos, neg, [level])
        hits += lo <= truth <= hi
        widths.append(hi - lo)
        joint_widths.append(j_hi - j_lo)
    assert hits / sims >= 0.9
    assert np.median(widths) < 0.85 * np.median(joint_widths)
    assert not tpr_ci_below_resolution(level, 4000) and tpr_ci_below_resolution(level, 3600)


def test_mixture_interval_edge_cases():
    rng = np.random.default_rng(23)
    neg = rng.normal(size=5000)
    (lo, hi), = tpr_at_fpr_mixture_intervals(neg + 100.0, neg, [0.01])  # perfectly separated
    assert 0.99 < lo < hi == 1.0
    (lo, hi), = tpr_at_fpr_mixture_intervals(neg - 100.0, neg, [0.01])  # no member above any non-member
    assert lo == 0.0 < hi < 0.01
    (lo, hi), = tpr_at_fpr_mixture_intervals(np.zeros(10), np.zeros(10), [0.5])  # all tied
    assert (lo, hi) == (0.0, 1.0)
    with pytest.raises(InputError):
        tpr_at_fpr_mixture_intervals(neg, neg, [0.0])


@pytest.mark.parametrize("size", [10, 25, 50])
def test_per_class_auc_interval_covers_small_classes_and_is_never_zero_width(size):
    """One class of ``size`` members and ``size`` non-members, AUC 0.98 (perfect separation is then
    common): the per-class interval covers the true AUC (the clipped Wald interval it replaces: 53% /
    78% / 85%) and never has zero width."""
    rng = np.random.default_rng(24 + size)
    auc, sims = 0.98, 300
    membership = np.r_[np.ones(size, bool), np.zeros(size, bool)]
    labels = np.zeros(2 * size, int)
    hits, min_width = 0, 1.0
    for _ in range(sims):
        pos, neg = _binormal(rng, size, auc)
        scores = np.r_[pos, neg]
        lo, hi = per_class_metrics(scores, membership, scores > 0, labels)[0]["auc_ci"]
        hits += lo <= auc <= hi
        min_width = min(min_width, hi - lo)
    assert hits / sims >= 0.92
    assert min_width > 0.03


def test_auc_score_interval_values():
    lo, hi = auc_score_interval(1.0, 10, 10)
    assert hi == 1.0 and 0.75 < lo < 0.9  # separated: not [1, 1]
    assert auc_score_interval(0.0, 10, 10) == pytest.approx((1.0 - hi, 1.0 - lo))  # symmetric
    lo, hi = auc_score_interval(0.5, 500, 500)
    assert 0.5 - lo == pytest.approx(hi - 0.5)
    assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(1001 / 12 / 250000), rel=0.05)  # Mann-Whitney null SD
    assert auc_score_interval(0.7, 1, 5) == (0.0, 1.0)


def test_advantage_null_quantile_for_random_scores():
    """Scores without information: the advantage (max TPR - FPR) exceeds advantage_null_95 in about 5%
    of runs (449 / 449, as in the issue: mean 0.040, 95th percentile 0.083; and 50 / 500)."""
    rng = np.random.default_rng(25)
    for n_in, n_out in ((449, 449), (50, 500)):
        null95 = advantage_null_quantile(n_in, n_out)
        membership = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
        above = 0
        for _ in range(400):
            ranked = membership[np.argsort(rng.normal(size=membership.size))]
            above += np.max(np.cumsum(ranked) / n_in - np.cumsum(~ranked) / n_out) > null95
        assert 0.01 <= above / 400 <= 0.08
    assert advantage_null_quantile(449, 449) == pytest.approx(0.0817, abs=1e-3)
