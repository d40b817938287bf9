"""Decision thresholds calibrated on attacker-known memberships."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.calibration import balanced_accuracy_threshold, decide, median_threshold


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
