"""Signals from logits: hand-computed values and numerical stability at extreme logits."""
from __future__ import annotations

import numpy as np
import pytest

from miaudit.signals import functions as signals


def test_hand_computed_three_class_case():
    z = np.log(np.array([[0.7, 0.2, 0.1]]))
    y = np.array([1])
    np.testing.assert_allclose(signals.probabilities(z), [[0.7, 0.2, 0.1]])
    np.testing.assert_allclose(signals.loss(z, y), [-np.log(0.2)])
    np.testing.assert_allclose(signals.true_class_confidence(z, y), [0.2])
    np.testing.assert_allclose(signals.max_confidence(z), [0.7])
    np.testing.assert_allclose(signals.entropy(z), [-(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))])
    mentr = -(1 - 0.2) * np.log(0.2) - 0.7 * np.log(1 - 0.7) - 0.1 * np.log(1 - 0.1)
    np.testing.assert_allclose(signals.modified_entropy(z, y), [mentr])
    np.testing.assert_allclose(signals.logit_scaled_confidence(z, y), [np.log(0.2 / 0.8)])


def test_logits_and_log_probabilities_give_the_same_signals():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 7)) * 3
    y = rng.integers(0, 7, 50)
    shifted = z + rng.normal(size=(50, 1)) * 10  # softmax is shift-invariant per row
    for fn in (signals.loss, signals.modified_entropy, signals.logit_scaled_confidence):
        np.testing.assert_allclose(fn(z, y), fn(shifted, y), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scale", [1e2, 1e3, 1e5])
def test_extreme_logits_stay_finite_and_ordered(scale):
    z = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
    y = np.array([0, 0])  # first row confidently right, second confidently wrong
    for fn in (signals.loss, signals.modified_entropy, signals.logit_scaled_confidence):
        values = fn(z, y)
        assert np.all(np.isfinite(values)), fn.__name__
    assert signals.logit_scaled_confidence(z, y)[0] == pytest.approx(scale - np.log(2))
    assert signals.logit_scaled_confidence(z, y)[1] == pytest.approx(-scale)
    assert signals.loss(z, y)[1] == pytest.approx(scale, rel=1e-6)
    # confidently wrong: -(1-p_y) log p_y ~ scale, plus -p_1 log(1 - p_1) = scale - log 2 (not clipped, not inf)
    assert signals.modified_entropy(z, y)[1] == pytest.approx(2 * scale - np.log(2), rel=1e-9)
    assert signals.modified_entropy(z, y)[0] < 1e-6


def test_batched_shapes_broadcast_labels():
    z = np.random.default_rng(1).normal(size=(4, 6, 3, 5))
    y = np.arange(6) % 5
    assert signals.loss(z, y[:, None]).shape == (4, 6, 3)
    assert signals.logit_scaled_confidence(z, y[:, None]).shape == (4, 6, 3)
