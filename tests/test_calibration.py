"""Decision thresholds calibrated on attacker-known memberships."""
from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import InputError
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.metrics.calibration import (
    balanced_accuracy_threshold,
    decide,
    median_threshold,
    prior_accuracy_threshold,
    prior_threshold,
)


def test_separable_scores_cut_between_the_groups():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    members = np.array([0, 0, 0, 1, 1, 1], bool)
    t = balanced_accuracy_threshold(scores, members)
    assert t == 0.5
    np.testing.assert_array_equal(decide(scores, t), members)


def test_imbalanced_calibration_data_still_gives_a_useful_cut():
    """Shadow models on attacker data see one member for every nine non-members: plain accuracy would
    call nobody a member; balanced accuracy keeps the cut where the groups separate."""
    rng = np.random.default_rng(0)
    members = np.r_[np.ones(100, bool), np.zeros(900, bool)]
    scores = rng.normal(size=1000) + 1.0 * members
    t = balanced_accuracy_threshold(scores, members)
    called = decide(scores, t)
    tpr, fpr = called[members].mean(), called[~members].mean()
    assert 0.3 < tpr < 0.95 and tpr - fpr > 0.25
    assert 0.0 < t < 1.0  # near the midpoint of the two means, not above every score


def test_ties_and_degenerate_inputs():
    assert balanced_accuracy_threshold(np.array([1.0, 1.0]), np.array([True, False])) > 1.0
    assert balanced_accuracy_threshold(np.array([]), np.array([], bool)) == float("inf")
    assert balanced_accuracy_threshold(np.array([0.3, 0.4]), np.array([True, True])) == float("inf")
    assert median_threshold(np.array([1.0, 2.0, 3.0, 4.0])) == 2.5


def test_metrics_call_the_actual_number_of_members_when_the_attack_gives_no_decision():
    """1000 members, 4000 non-members: the median rule calls 2500 records members, most of them
    wrongly; calling the top 1000 (the auditor knows there are 1000) is more accurate."""
    rng = np.random.default_rng(1)
    members = np.r_[np.ones(1000, bool), np.zeros(4000, bool)]
    scores = rng.normal(size=5000) + 1.5 * members
    m = compute_metrics(scores, members)
    called = decide(scores, prior_threshold(scores, 1000 / 5000))
    assert called.sum() == 1000
    assert m.recall * 1000 / m.precision == pytest.approx(1000)  # members called by compute_metrics
    median_accuracy = np.mean(decide(scores, median_threshold(scores)) == members)
    assert m.accuracy == pytest.approx(np.mean(called == members))
    assert m.accuracy > median_accuracy + 0.1


def test_prior_threshold_calls_tied_records_alike_whatever_their_order():
    scores = np.array([3.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    # target 2: the block of 2s (records 2-4) would make 4, leaving it out makes 1: 1 is closer
    assert decide(scores, prior_threshold(scores, 2 / 6)).sum() == 1
    # target 3: 4 (block in) is closer than 1
    assert decide(scores, prior_threshold(scores, 3 / 6)).sum() == 4
    # a draw (target 5 of 6 records: block of 1s makes 6, without it 4): the whole block is called
    assert decide(scores, prior_threshold(scores, 5 / 6)).sum() == 6
    rng = np.random.default_rng(2)
    tied = np.round(rng.normal(size=1001), 1)
    for fraction in (0.1, 0.37, 0.5, 0.9):
        t = prior_threshold(tied, fraction)
        assert all(prior_threshold(tied[rng.permutation(tied.size)], fraction) == t for _ in range(3))
        called = decide(tied, t)
        assert not (set(tied[called]) & set(tied[~called]))  # no score value on both sides
        assert abs(called.sum() - fraction * tied.size) <= np.unique(tied, return_counts=True)[1].max()
    assert decide(tied, prior_threshold(tied, 0.0)).sum() == 0
    assert decide(tied, prior_threshold(tied, 1.0)).sum() == tied.size
    with pytest.raises(InputError, match="member_fraction"):
        prior_threshold(tied, 1.5)


def test_prior_accuracy_threshold_beats_the_balanced_cut_at_its_prior():
    """Calibration data with known membership; an audit with 20% members is more accurately decided
    by the cut that maximises accuracy at 20% than by the balanced-accuracy cut."""
    rng = np.random.default_rng(3)
    cal_members = rng.random(20000) < 0.5
    cal_scores = rng.normal(size=20000) + cal_members
    audit_members = np.r_[np.ones(2000, bool), np.zeros(8000, bool)]
    audit_scores = rng.normal(size=10000) + audit_members
    at_prior = prior_accuracy_threshold(cal_scores, cal_members, 0.2)
    balanced = balanced_accuracy_threshold(cal_scores, cal_members)
    assert at_prior > balanced
    accuracy = lambda t: np.mean(decide(audit_scores, t) == audit_members)  # noqa: E731
    assert accuracy(at_prior) > accuracy(balanced) + 0.05
