"""The headline choice's cost cuts (attacks/choice.py): they change what is computed, never what a
reference-free attack scores, and use fewer pseudo-targets only with many reference models."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.choice import (
    MANY_REFERENCES,
    PSEUDO_TARGETS,
    PSEUDO_TARGETS_MANY,
    alone,
    choose_attack,
    pseudo_target,
    pseudo_target_count,
    scorable,
)
from miaudit.attacks.registry import ATTACKS, attack_specs
from miaudit.signals.inputs import AttackInputs


def signals(seed: int = 0, n: int = 60, k: int = 5) -> AttackInputs:
    """Random logits [k, n, 1, 3] with random IN/OUT masks, 9 population records."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(k, n, 1, 3))
    labels = rng.integers(0, 3, n)
    mask = rng.random((k, n)) < 0.5
    return AttackInputs(rng.normal(size=(n, 1, 3)), labels, ref, mask, ref, mask, labels,
                        rng.normal(size=(9, 1, 3)), rng.normal(size=(k, 9, 1, 3)), rng.integers(0, 3, 9))


def test_reference_free_attacks_score_a_pseudo_target_alone_as_with_its_references():
    view, _ = pseudo_target(signals(), 1)
    checked = []
    for spec in ATTACKS.values():
        if scorable(spec) and not spec.needs_references and spec.unmet_need_of(view) is None:
            np.testing.assert_array_equal(spec.run(alone(view), seed=0).scores, spec.run(view, seed=0).scores)
            checked.append(spec.name)
    assert {"population", "threshold-loss", "threshold-confidence", "threshold-entropy",
            "threshold-modified-entropy"} <= set(checked)
    assert alone(view).n_reference == 0


def test_pseudo_targets_fewer_only_from_many_reference_models():
    assert pseudo_target_count(1) == pseudo_target_count(MANY_REFERENCES - 1) == PSEUDO_TARGETS == 8
    assert pseudo_target_count(MANY_REFERENCES) == pseudo_target_count(64) == PSEUDO_TARGETS_MANY == 4
    specs = attack_specs(["threshold-loss", "base-online"])
    many = choose_attack(specs, signals(k=MANY_REFERENCES))
    assert many.chosen_by == "pseudo-targets" and len(many.pseudo_targets) == 4
    assert len(choose_attack(specs, signals(k=MANY_REFERENCES), pseudo_targets=8).pseudo_targets) == 8
    assert len(choose_attack(specs, signals(k=MANY_REFERENCES - 1)).pseudo_targets) == 8
