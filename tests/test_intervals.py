"""Intervals on the TPR (Clopper-Pearson) and the AUC (DeLong), and the FPR resolution of an audit."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from miaudit.errors import InputError
from miaudit.intervals import (
    allowed_false_positives,
    clopper_pearson_interval,
    delong_auc_se,
    normal_interval,
    tpr_at_fpr_intervals,
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
