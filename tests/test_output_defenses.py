"""Output defenses: each changes what the attack sees, and only that."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

import miaudit
from miaudit.audit.config import make_config
from miaudit.errors import InputError
from miaudit.signals.defenses import OutputDefense, parse_output_defense


@pytest.fixture
def logits():
    return np.random.default_rng(0).normal(0, 3, size=(4, 50, 10)).astype(np.float32)


def test_rounding_keeps_argmax_and_releases_rounded_probabilities(logits):
    out = OutputDefense("round", 2).apply(logits)
    assert out.shape == logits.shape
    np.testing.assert_array_equal(out.argmax(-1), logits.argmax(-1))
    released = np.round(softmax(logits.astype(np.float64), -1), 2)
    seen = softmax(out.astype(np.float64), -1)
    # the attacker sees the rounded vector, renormalized: same ratios as the released values
    big = released > 0.05
    ratio = seen[big] / released[big]
    scale = (seen / np.where(released > 0, released, 1)).max(-1, keepdims=True)
    np.testing.assert_allclose(ratio, np.broadcast_to(scale, seen.shape)[big], rtol=1e-4)
    assert len(np.unique(np.round(seen, 6))) < len(np.unique(np.round(softmax(logits, -1), 6)))


def test_top_k_keeps_the_top_k_probabilities_in_order(logits):
    k = 3
    out = OutputDefense("top-k", k).apply(logits)
    p, seen = softmax(logits.astype(np.float64), -1), softmax(out.astype(np.float64), -1)
    top = np.argsort(-p, -1)[..., :k]
    np.testing.assert_allclose(np.take_along_axis(seen, top, -1), np.take_along_axis(p, top, -1), rtol=1e-4)
    np.testing.assert_array_equal(np.argsort(-seen, -1, kind="stable")[..., :k], top)
    rest = np.sort(seen, -1)[..., : 10 - k]
    np.testing.assert_allclose(rest, rest[..., :1].repeat(10 - k, -1), rtol=1e-4)  # nothing about the others


def test_temperature_keeps_argmax_and_flattens(logits):
    out = OutputDefense("temperature", 4.0).apply(logits)
    np.testing.assert_array_equal(out.argmax(-1), logits.argmax(-1))
    assert softmax(out, -1).max(-1).mean() < softmax(logits, -1).max(-1).mean()


def test_label_only_keeps_the_label_and_nothing_else(logits):
    out = OutputDefense("label").apply(logits)
    np.testing.assert_array_equal(out.argmax(-1), logits.argmax(-1))
    np.testing.assert_allclose(np.unique(out), [np.log(1e-12), 0.0], rtol=1e-6)


@pytest.mark.parametrize("text, shown", [("top-k:3", "top-k:3"), (" Round:2 ", "round:2"),
                                         ("temperature:0.5", "temperature:0.5"), ("label", "label")])
def test_parse_round_trips(text, shown):
    assert str(parse_output_defense(text)) == shown
    assert make_config(output_defense=text).output_defense == shown


@pytest.mark.parametrize("bad", ["top-k", "top-k:0", "round:x", "round:99", "temperature:-1", "temperature:nan",
                                 "label:2", "blur:3"])
def test_bad_defenses_are_one_line_input_errors(bad):
    with pytest.raises(InputError, match="^output_defense: ") as e:
        make_config(output_defense=bad)
    assert "\n" not in str(e.value)


def test_audit_sees_only_defended_outputs():
    kw = dict(dataset="digits", target="mlp", hidden=(32,), epochs=10, members=200, reference_models=4,
              population=200, cache=False, attacks=["threshold-loss", "lira-online"], seed=1, progress=False)
    plain = miaudit.audit(**kw)
    label = miaudit.audit(**kw, output_defense="label")
    assert label.target.test_accuracy == plain.target.test_accuracy
    assert label.inputs.reference_logits.shape == plain.inputs.reference_logits.shape
    for seen in (label.inputs.target_logits, label.inputs.reference_logits):
        assert len(np.unique(seen.round(3))) == 2  # one-hot log-probabilities only
    assert any("output defense label" in n for n in label.notes)
    assert label.config["output_defense"] == "label"
