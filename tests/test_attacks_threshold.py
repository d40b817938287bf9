"""Threshold attacks on a real overfit model (random forest on digits) and on hand-made signals."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from miaudit.attacks.threshold import (
    class_thresholds,
    threshold_confidence,
    threshold_entropy,
    threshold_loss,
    threshold_modified_entropy,
)
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

ATTACKS = [threshold_confidence, threshold_loss, threshold_entropy, threshold_modified_entropy]


def _auc(scores: np.ndarray, kinds: np.ndarray, positive: str, negative: str) -> float:
    keep = (kinds == positive) | (kinds == negative)
    return roc_auc_score(kinds[keep] == positive, scores[keep])


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda f: f.__name__)
def test_separates_members_and_not_fresh_records(attack, digits_inputs):
    inputs, kinds = digits_inputs
    result = attack(inputs)
    assert result.scores.shape == (inputs.n_records,) and np.isfinite(result.scores).all()
    assert _auc(result.scores, kinds, "member", "non-member") > 0.6
    # Two sets of records the target never saw: the attack must be at chance.
    assert abs(_auc(result.scores, kinds, "fresh", "non-member") - 0.5) < 0.07
    # The calibrated decision beats coin flipping on members vs non-members.
    keep = kinds != "fresh"
    assert (result.decision[keep] == (kinds[keep] == "member")).mean() > 0.6


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda f: f.__name__)
def test_global_decision_is_scores_above_threshold(attack, digits_inputs):
    inputs, _ = digits_inputs
    kwargs = {} if attack is threshold_loss else {"per_class": False}
    result = attack(inputs, **kwargs)
    assert np.isfinite(result.threshold)
    np.testing.assert_array_equal(result.decision, result.scores >= result.threshold)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda f: f.__name__)
def test_without_reference_models_the_decision_is_left_to_the_prior(attack, digits_inputs):
    inputs, _ = digits_inputs
    alone = AttackInputs.target_only(inputs.target_logits, inputs.labels)
    result = attack(alone)
    np.testing.assert_allclose(result.scores, attack(inputs).scores)
    assert result.threshold is None and result.decision is None  # metrics decide at the audit's prior


def _logits_with_true_prob(p_true: np.ndarray, labels: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Log-probabilities [n, C] whose true-class probability is p_true (rest spread evenly)."""
    probs = np.repeat(((1 - p_true) / (n_classes - 1))[:, None], n_classes, axis=1)
    probs[np.arange(len(labels)), labels] = p_true
    with np.errstate(divide="ignore"):
        return np.log(probs)  # p = 0 -> -inf: the attacks must cope


def _hand_made_inputs(audited_p: np.ndarray, audited_labels: np.ndarray) -> AttackInputs:
    """Two shadow models; class 0: members loss 0, non-members loss 1 (3 of each per model);
    class 1: members loss 2, non-members loss 4 (1 of each); class 2: no shadow records."""
    shadow_labels = np.array([0] * 6 + [1] * 2)
    shadow_loss = np.array([0, 0, 0, 1, 1, 1, 2, 4], float)
    shadow_in = np.tile([True] * 3 + [False] * 3 + [True, False], (2, 1))
    shadow = _logits_with_true_prob(np.exp(-shadow_loss), shadow_labels)
    shadow_logits = np.stack([shadow, shadow])[:, :, None]
    target = _logits_with_true_prob(audited_p, audited_labels)[:, None]
    n = len(audited_labels)
    return AttackInputs(target, audited_labels, np.zeros((2, n, 1, 3)), np.zeros((2, n), bool),
                        shadow_logits, shadow_in, shadow_labels, np.zeros((0, 1, 3)),
                        np.zeros((2, 0, 1, 3)), np.zeros(0, np.int64))


def test_known_thresholds_per_class_and_fallback():
    # Expected: class 0 between p=1 and p=e^-1; class 1 between e^-2 and e^-4; class 2 (no shadow
    # records) the pooled threshold, which is class 0's because class 0 dominates the pool.
    t0, t1 = (1 + np.exp(-1)) / 2, (np.exp(-2) + np.exp(-4)) / 2
    audited_p = np.array([0.6, 0.7, 0.1, 0.05, 0.5, 0.9])
    audited_labels = np.array([0, 0, 1, 1, 2, 2])
    inputs = _hand_made_inputs(audited_p, audited_labels)

    per_class = threshold_confidence(inputs)
    assert per_class.threshold == pytest.approx(t0)
    np.testing.assert_array_equal(per_class.decision, [False, True, True, False, False, True])
    pooled = threshold_confidence(inputs, per_class=False)
    np.testing.assert_array_equal(pooled.decision, [False, True, False, False, False, True])

    shadow_scores = np.exp(-np.array([0, 0, 0, 1, 1, 1, 2, 4], float))
    global_t, per_class_t = class_thresholds(np.stack([shadow_scores] * 2), inputs.shadow_in,
                                             inputs.shadow_labels, 3)
    assert global_t == pytest.approx(t0)
    np.testing.assert_allclose(per_class_t, [t0, t1, t0])
    # A class whose shadow records are all members also falls back to the global threshold.
    only_members = np.array([[True] * 3 + [False] * 3 + [True, True]])
    global_t, per_class_t = class_thresholds(shadow_scores[None], only_members, inputs.shadow_labels, 3)
    assert global_t == pytest.approx(t0)
    np.testing.assert_allclose(per_class_t, [t0, t0, t0])


def test_known_loss_threshold():
    # Pooled shadows: members at loss 0 (6) and 2 (2), non-members at loss 1 (6) and 4 (2):
    # the most accurate cut on -loss lies between 0 and -1.
    inputs = _hand_made_inputs(np.exp(-np.array([0.4, 0.6, 0.0, 3.0])), np.array([0, 1, 2, 2]))
    result = threshold_loss(inputs)
    assert result.threshold == pytest.approx(-0.5)
    np.testing.assert_allclose(result.scores, [-0.4, -0.6, 0.0, -3.0], atol=1e-9)
    np.testing.assert_array_equal(result.decision, [True, False, True, False])


def test_modified_entropy_orders_confident_correct_first():
    inputs = _hand_made_inputs(np.array([1.0, 0.9, 0.5, 0.1]), np.array([0, 0, 1, 2]))
    for attack in (threshold_entropy, threshold_modified_entropy):
        scores = attack(inputs).scores
        assert np.isfinite(scores).all()
    scores = threshold_modified_entropy(inputs).scores
    assert scores[0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(scores) < 0)


def test_nan_logits_rejected():
    inputs = _hand_made_inputs(np.array([0.5, 0.5]), np.array([0, 1]))
    bad = AttackInputs(np.full_like(inputs.target_logits, np.nan), *[getattr(inputs, f) for f in (
        "labels", "reference_logits", "reference_in", "shadow_logits", "shadow_in", "shadow_labels",
        "population_target_logits", "population_reference_logits", "population_labels")])
    with pytest.raises(InputError, match="target_logits"):
        threshold_loss(bad)
