"""metrics: hand-computed cases, epsilon bound, per-class counts, JSON form."""
from __future__ import annotations

import json

import numpy as np
import pytest

from miaudit.errors import InputError
from miaudit.metrics.attack_metrics import (
    AttackMetrics,
    compute_metrics,
    downsample_roc,
)
from miaudit.metrics.intervals import tpr_at_fpr_mixture_intervals
from miaudit.report.findings import class_exposure

# Ranked high to low; members (1) at ranks 1, 2, 4, 7.
TINY_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
TINY_MEMBERS = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)


def test_perfect_separator():
    scores = np.r_[np.linspace(2, 3, 50), np.linspace(0, 1, 50)]
    members = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    m = compute_metrics(scores, members)
    assert m.auc == 1.0
    assert m.tpr_at_fpr[0.001] == 1.0 and m.tpr_at_fpr[0.01] == 1.0
    assert m.advantage == 1.0
    assert m.accuracy == 1.0 and m.precision == 1.0 and m.recall == 1.0 and m.f1 == 1.0
    assert m.epsilon_lower_bound > 0


def test_tiny_example_by_hand():
    m = compute_metrics(TINY_SCORES, TINY_MEMBERS)
    # Pairs (member, non-member) ranked correctly: 4 + 4 + 3 + 1 of 16.
    assert m.auc == pytest.approx(12 / 16)
    # FPR <= 1% means FPR = 0: the top two records are members, so 2 of 4 members found.
    assert m.tpr_at_fpr[0.01] == pytest.approx(0.5)
    # Four members of eight: the top four are called members: 3 true, 1 false positive.
    assert m.precision == pytest.approx(0.75)
    assert m.recall == pytest.approx(0.75)
    assert m.accuracy == pytest.approx(6 / 8)
    assert m.decision_advantage == pytest.approx(0.75 - 0.25)
    # Best TPR - FPR along the ranking: 0.5 (after 2 records, or after 4 records).
    assert m.advantage == pytest.approx(0.5)
    assert (m.n_members, m.n_non_members) == (4, 4)


def test_explicit_decision_is_used():
    decision = np.array([1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    m = compute_metrics(TINY_SCORES, TINY_MEMBERS, decision)
    assert m.precision == 1.0 and m.recall == pytest.approx(0.25)
    assert m.accuracy == pytest.approx(5 / 8)


def test_reversed_scores_give_auc_zero():
    scores = np.r_[np.zeros(20), np.ones(20)]
    members = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    m = compute_metrics(scores + np.arange(40) * 1e-3, members)
    assert m.auc == 0.0
    assert m.tpr_at_fpr[0.01] == 0.0
    assert m.advantage == 0.0
    assert m.epsilon_lower_bound == 0.0


def test_ties_count_half():
    # One member and one non-member tied, one of each clearly separated.
    scores = np.array([1.0, 0.5, 0.5, 0.0])
    members = np.array([1, 1, 0, 0], dtype=bool)
    m = compute_metrics(scores, members)
    # Pairs: (1.0 vs 0.5) 1, (1.0 vs 0) 1, (0.5m vs 0.5n) 0.5, (0.5 vs 0) 1 -> 3.5 / 4.
    assert m.auc == pytest.approx(3.5 / 4)
    assert m.tpr_at_fpr[0.01] == pytest.approx(0.5)
    all_tied = compute_metrics(np.ones(10), np.arange(10) < 5)
    assert all_tied.auc == 0.5 and all_tied.advantage == 0.0


def test_epsilon_zero_for_useless_attack():
    rng = np.random.default_rng(0)
    members = rng.random(400) < 0.5
    assert compute_metrics(np.zeros(400), members).epsilon_lower_bound == 0.0
    # pure noise on many records: no epsilon is rejected (the best of thousands of in-sample
    # thresholds would "prove" epsilon > 0.1 here)
    members = rng.random(4000) < 0.5
    assert compute_metrics(rng.normal(size=4000), members, coin_flips=True).epsilon_lower_bound < 0.05


def test_epsilon_is_the_one_run_audit_and_says_whether_it_is_a_bound():
    rng = np.random.default_rng(1)
    members = rng.random(2000) < 0.5
    scores = rng.normal(size=2000) + 2.0 * members
    estimate = compute_metrics(scores, members)
    bound = compute_metrics(scores, members, coin_flips=True)
    assert bound.epsilon_lower_bound == estimate.epsilon_lower_bound > 0.5
    assert bound.epsilon_valid and not estimate.epsilon_valid
    assert bound.epsilon_method == "steinke-2023-one-run"
    assert "estimate" in estimate.epsilon_assumptions.lower()
    tighter = compute_metrics(scores, members, coin_flips=True, epsilon_method="mahloujifar-2025-fdp-one-run")
    assert tighter.epsilon_method == "mahloujifar-2025-fdp-one-run"
    assert tighter.epsilon_lower_bound >= bound.epsilon_lower_bound
    d = json.loads(json.dumps(bound.to_dict()))
    assert d["epsilon_method"] == "steinke-2023-one-run" and d["epsilon_valid"] is True
    assert d["epsilon_audit"]["correct"] <= d["epsilon_audit"]["guesses"]


def test_per_class_counts_and_empty_group():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    members = np.array([1, 1, 0, 0, 1, 1, 0, 1], dtype=bool)
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.5, 0.6, 0.3, 0.7])
    m = compute_metrics(scores, members, labels=labels)
    assert sorted(m.per_class) == [0, 1, 2]
    assert (m.per_class[0]["n_members"], m.per_class[0]["n_non_members"]) == (2, 2)
    assert (m.per_class[1]["n_members"], m.per_class[1]["n_non_members"]) == (2, 0)
    assert (m.per_class[2]["n_members"], m.per_class[2]["n_non_members"]) == (1, 1)
    assert m.per_class[0]["auc"] == 1.0 and m.per_class[2]["auc"] == 1.0
    assert m.per_class[1]["auc"] is None and m.per_class[1]["tpr_at_fpr_0.01"] is None
    # Five members of eight: the top five (0.9, 0.8, 0.7, 0.6, 0.5) are called members; class 0
    # has its two members called and its two non-members not, class 2 likewise.
    assert m.per_class[1]["accuracy"] == 1.0 and m.per_class[0]["accuracy"] == 1.0
    assert m.per_class[2]["accuracy"] == 1.0
    assert m.per_class[1]["auc_ci"] is None
    lo, hi = m.per_class[0]["auc_ci"]  # perfectly separated, 2 per side: a score interval, not zero width
    assert 0.0 < lo < 0.9 and hi == 1.0
    assert compute_metrics(scores, members).per_class == {}


def test_to_dict_is_json_safe_with_string_keys():
    rng = np.random.default_rng(2)
    n = 5000
    members = rng.random(n) < 0.5
    scores = rng.normal(size=n) + members
    m = compute_metrics(scores, members, labels=rng.integers(0, 3, n), fpr_levels=(0.05,))
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert set(d["tpr_at_fpr"]) == {"0.001", "0.01", "0.05"}
    assert set(d["per_class"]) == {"0", "1", "2"}
    for key in ("auc", "accuracy", "precision", "recall", "f1", "advantage", "decision_advantage",
                "epsilon_lower_bound", "epsilon_confidence", "delta", "n_members", "n_non_members"):
        assert isinstance(d[key], (int, float)), key
    fpr, tpr = d["roc"]["fpr"], d["roc"]["tpr"]
    assert len(m.roc_fpr) > 1000 and 10 < len(fpr) <= 200 and len(fpr) == len(tpr)
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert all(np.diff(fpr) >= 0) and all(np.diff(tpr) >= 0)
    # Low-FPR end kept: the thinned curve still gives the exact TPR at 0.1% FPR.
    thinned = max(t for f, t in zip(fpr, tpr) if f <= 0.001)
    assert thinned == pytest.approx(m.tpr_at_fpr[0.001])
    one_class = compute_metrics(scores[:20], members[:20], labels=np.r_[np.zeros(19, int), 1])
    assert json.loads(json.dumps(one_class.to_dict(), allow_nan=False))["per_class"]["1"]["auc"] is None


def test_downsample_keeps_short_curves_and_real_points():
    fpr, tpr = np.array([0, 0.5, 1.0]), np.array([0, 0.7, 1.0])
    assert downsample_roc(fpr, tpr)[0].tolist() == fpr.tolist()
    f = np.r_[0.0, np.sort(np.random.default_rng(3).random(999)), 1.0]
    t = np.sqrt(f)
    fs, ts = downsample_roc(f, t, max_points=50)
    assert len(fs) <= 50 and set(fs) <= set(f) and np.allclose(ts, np.sqrt(fs))


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match="membership"):
        compute_metrics(np.arange(4.0), np.ones(4, bool))
    with pytest.raises(InputError, match="membership"):
        compute_metrics(np.arange(4.0), np.ones(3, bool))
    with pytest.raises(InputError, match="scores"):
        compute_metrics(np.array([0.0, np.nan]), np.array([True, False]))
    with pytest.raises(InputError, match="delta"):
        compute_metrics(TINY_SCORES, TINY_MEMBERS, delta=1.5)
    with pytest.raises(InputError, match="fpr_levels"):
        compute_metrics(TINY_SCORES, TINY_MEMBERS, fpr_levels=(0.0,))


def test_post_init_rejects_out_of_range_values():
    good = compute_metrics(TINY_SCORES, TINY_MEMBERS)
    fields = {f: getattr(good, f) for f in AttackMetrics.__dataclass_fields__}
    for name, bad in (("auc", 1.2), ("recall", float("nan")), ("epsilon_lower_bound", -0.1),
                      ("decision_advantage", -1.5), ("tpr_at_fpr", {0.001: 0.2})):
        with pytest.raises(ValueError):
            AttackMetrics(**{**fields, name: bad})


def test_resolution_flag_and_counts_at_449_non_members():
    """0.1% of 449 non-members allows no false positive: TPR@0.1% is TPR at zero false positives."""
    rng = np.random.default_rng(11)
    members = np.r_[np.ones(2500, bool), np.zeros(449, bool)]
    scores = rng.normal(size=members.size) + 1.5 * members
    m = compute_metrics(scores, members)
    assert m.tpr_at_fpr_false_positives == {0.001: 0, 0.01: 4}
    assert m.tpr_at_fpr_below_resolution == {0.001: True, 0.01: False}
    top_non_member = scores[~members].max()
    assert m.tpr_at_fpr[0.001] == np.mean(scores[members] > top_non_member)
    fifth_non_member = np.sort(scores[~members])[-5]
    assert m.tpr_at_fpr[0.01] == np.mean(scores[members] > fifth_non_member)
    bigger = compute_metrics(np.r_[scores, rng.normal(size=600)], np.r_[members, np.zeros(600, bool)])
    assert bigger.tpr_at_fpr_false_positives[0.001] == 1 and not bigger.tpr_at_fpr_below_resolution[0.001]


def test_level_whose_product_rounds_down_still_gets_its_false_positives():
    """0.29 * 100 is 28.999... in floating point; 29 false positives are allowed at FPR 29%."""
    members = np.r_[np.ones(50, bool), np.zeros(100, bool)]
    scores = np.r_[np.linspace(0.5, 1.5, 50), np.linspace(0, 1, 100)]
    m = compute_metrics(scores, members, fpr_levels=(0.29,))
    assert m.tpr_at_fpr_false_positives[0.29] == 29
    thirtieth = np.sort(scores[~members])[-30]
    assert m.tpr_at_fpr[0.29] == np.mean(scores[members] > thirtieth)


def test_tpr_interval_is_the_threshold_mixture_interval_holding_the_point():
    """tpr_at_fpr_ci: the interval on the TPR at a true FPR of the level (threshold error included),
    widened only to hold the empirical TPR. (Its coverage is simulated in test_intervals.)"""
    rng = np.random.default_rng(12)
    for n_in, n_out, shift in ((150, 400, 0.3), (2500, 449, 1.5), (700, 2500, 1.0)):
        members = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
        scores = rng.normal(size=members.size) + shift * members
        m = compute_metrics(scores, members)
        want = tpr_at_fpr_mixture_intervals(scores[members], scores[~members], (0.001, 0.01))
        for level, (lo, hi) in zip((0.001, 0.01), want):
            value = m.tpr_at_fpr[level]
            assert m.tpr_at_fpr_ci[level] == pytest.approx((min(lo, value), max(hi, value)), abs=1e-12)
            assert m.tpr_at_fpr_ci_below_resolution[level] is bool(n_out * np.log1p(-level) > np.log(0.025))


def test_intervals_contain_the_estimates_and_are_json_lists():
    rng = np.random.default_rng(13)
    cases = [(np.r_[np.linspace(2, 3, 50), np.linspace(0, 1, 50)], np.arange(100) < 50),
             (np.ones(10), np.arange(10) < 5),
             (np.r_[1.0, rng.normal(size=99)], np.arange(100) < 1),
             (np.round(rng.normal(size=3000), 1), rng.random(3000) < 0.3)]
    for scores, members in cases:
        m = compute_metrics(scores, members, fpr_levels=(0.05,))
        lo, hi = m.auc_ci
        assert 0 <= lo <= m.auc <= hi <= 1
        for level, value in m.tpr_at_fpr.items():
            lo, hi = m.tpr_at_fpr_ci[level]
            assert 0 <= lo <= value <= hi <= 1
            joint_lo, joint_hi = m.tpr_at_fpr_joint_ci[level]
            assert 0 <= joint_lo <= value <= joint_hi <= 1
        d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
        assert d["auc_ci"] == list(m.auc_ci) and d["ci_confidence"] == 0.95
        assert (set(d["tpr_at_fpr_ci"]) == set(d["tpr_at_fpr_joint_ci"]) == set(d["tpr_at_fpr_false_positives"])
                == {"0.001", "0.01", "0.05"})
        assert d["tpr_at_fpr_below_resolution"]["0.001"] is bool(members.size - members.sum() < 1000)
    one_member = compute_metrics(cases[2][0], cases[2][1])
    assert one_member.auc_ci == (0.0, 1.0)  # no variance estimate from one member
    # the member (score 1.0) is below the top non-member: 0 of 1 found at every plausible threshold, a
    # half-half mixture of a mass at 0 and Beta(1, 1): upper end at its 97.5% point, 0.95
    assert one_member.tpr_at_fpr[0.01] == 0.0
    assert one_member.tpr_at_fpr_ci[0.01] == pytest.approx((0.0, 0.95))


def test_permuting_the_records_leaves_every_metric_unchanged():
    rng = np.random.default_rng(14)
    n = 3000
    members = rng.random(n) < 0.35
    scores = np.round(rng.normal(size=n) + 0.8 * members, 1)  # many ties, also at the decision cut
    labels = rng.integers(0, 4, n)
    base = compute_metrics(scores, members, labels=labels, fpr_levels=(0.05,)).to_dict()
    for seed in range(3):
        p = np.random.default_rng(100 + seed).permutation(n)
        again = compute_metrics(scores[p], members[p], labels=labels[p], fpr_levels=(0.05,)).to_dict()
        _assert_same(base, again)


def _assert_same(a, b, where="metrics"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), where
    else:
        assert a == b, where


def test_post_init_rejects_inconsistent_intervals_and_flags():
    good = compute_metrics(TINY_SCORES, TINY_MEMBERS)
    fields = {f: getattr(good, f) for f in AttackMetrics.__dataclass_fields__}
    tpr = good.tpr_at_fpr[0.01]
    for name, bad in (("auc_ci", (good.auc + 0.01, 1.0)), ("auc_ci", (0.0, 1.1)),
                      ("tpr_at_fpr_ci", {0.001: (0.0, 1.0), 0.01: (0.0, tpr / 2)}),
                      ("tpr_at_fpr_ci", {0.001: (0.0, 1.0)}),
                      ("tpr_at_fpr_joint_ci", {0.001: (0.0, 1.0), 0.01: (tpr + 0.01, 1.0)}),
                      ("tpr_at_fpr_false_positives", {0.001: 0, 0.01: 5}),
                      ("tpr_at_fpr_below_resolution", {0.001: False, 0.01: True}),
                      ("tpr_at_fpr_ci_below_resolution", {0.001: True}),
                      ("accuracy_baseline", 1.2), ("balanced_accuracy", -0.1), ("advantage_null_95", float("nan")),
                      ("ci_confidence", 1.5)):
        with pytest.raises(ValueError):
            AttackMetrics(**{**fields, name: bad})


def test_accuracy_comes_with_its_baseline_and_balanced_accuracy():
    """2 members, 6 non-members; the decision calls records 0 (member) and 2 (non-member) members:
    accuracy 6/8, baseline 6/8 (calling everyone a non-member), TPR 1/2, TNR 5/6, balanced 2/3."""
    membership = np.array([1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.2, 0.4, 0.5, 0.6])
    decision = np.array([1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    m = compute_metrics(scores, membership, decision=decision)
    assert m.accuracy == pytest.approx(0.75) and m.accuracy_baseline == pytest.approx(0.75)
    assert m.balanced_accuracy == pytest.approx((0.5 + 5 / 6) / 2)
    assert m.advantage_null_95 == pytest.approx(np.sqrt(np.log(20) / 2 * 8 / 12))
    d = m.to_dict()
    assert d["accuracy_baseline"] == pytest.approx(0.75) and d["balanced_accuracy"] == pytest.approx(2 / 3)
    assert d["advantage_null_95"] == pytest.approx(m.advantage_null_95)


def test_random_scores_with_few_members_are_within_chance():
    """The issue's case: 500 members, 5,000 non-members, scores without information: accuracy 0.835
    looks high, but its baseline is 0.909, the balanced accuracy about 0.5 and the advantage below its
    null 95th percentile."""
    rng = np.random.default_rng(31)
    membership = np.r_[np.ones(500, bool), np.zeros(5000, bool)]
    m = compute_metrics(rng.normal(size=membership.size), membership)
    assert m.accuracy_baseline == pytest.approx(5000 / 5500)
    assert m.accuracy < m.accuracy_baseline and abs(m.balanced_accuracy - 0.5) < 0.03
    assert m.advantage <= m.advantage_null_95


def test_zero_false_positive_mark_per_class_reaches_results_json():
    rng = np.random.default_rng(32)
    labels = np.r_[np.zeros(400, int), np.ones(100, int)]  # class 0: 200 non-members; class 1: 50
    membership = np.tile([True, False], 250)
    m = compute_metrics(rng.normal(size=500) + membership, membership, labels=labels)
    d = json.loads(json.dumps(m.to_dict()))
    assert d["per_class"]["0"]["tpr_at_fpr_0.01_below_resolution"] is False  # 1% of 200: 2 allowed
    assert d["per_class"]["1"]["tpr_at_fpr_0.01_below_resolution"] is True  # 1% of 50: none
    assert d["per_class"]["0"]["tpr_at_fpr_0.001_below_resolution"] is True
    assert d["tpr_at_fpr_ci_below_resolution"] == {"0.001": True, "0.01": True}  # 250 non-members
    rows = class_exposure(m)
    assert [r["tpr_below_resolution"] for r in sorted(rows, key=lambda r: r["label"])] == [False, True]


def test_class_exposure_marks_classes_not_told_apart_from_the_top():
    """400 records per class, class 0 leaking far more (shift 3 against 0.3): first and no class marked
    as like it. 20 records per class, all three leaking alike (shift 1): the order is noise, so the
    second and third are marked (intervals overlapping the first's)."""
    rng = np.random.default_rng(33)
    for per_class, top_shift, rest_shift, marks in ((400, 3.0, 0.3, [False, False, False]),
                                                    (20, 1.0, 1.0, [False, True, True])):
        labels = np.repeat([0, 1, 2], per_class)
        membership = np.tile([True, False], 3 * per_class // 2)
        shift = np.where(labels == 0, top_shift, rest_shift)
        m = compute_metrics(rng.normal(size=labels.size) + shift * membership, membership, labels=labels)
        rows = class_exposure(m)
        assert [r["like_top"] for r in rows] == marks
    assert rows[0]["auc"] >= rows[1]["auc"] >= rows[2]["auc"]
