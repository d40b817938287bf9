"""Every registered attack ignores the order of the audited records, and is at chance on signals that
carry no membership information, whatever that order."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from miaudit.attacks import shokri
from miaudit.attacks.inputs import AttackInputs
from miaudit.attacks.registry import ATTACKS
from miaudit.config import make_config
from miaudit.data.splits import balanced_masks
from miaudit.pipeline import compute_signals, train_target_and_references
from miaudit.plan import make_plan
from miaudit.signals import true_class_confidence

TARGETS = ("tree", "forest", "naive-bayes", "mlp")


@pytest.fixture(scope="module", params=TARGETS)
def audited(request):
    """(target name, AttackInputs, membership) of a digits audit: 100 members, 100 non-members,
    4 reference models in pool mode, 300 population records."""
    cfg = make_config(dataset="digits", target=request.param, members=100, reference_models=4,
                      population=300, cache=False, seed=3, epochs=20, hidden=(64,), n_jobs=1)
    plan = make_plan(cfg)
    target, refs = train_target_and_references(plan)
    return request.param, compute_signals(plan, target, refs), plan.membership


@pytest.fixture(autouse=True)
def few_shokri_rows(monkeypatch):
    """Shokri's attack models train on a subsample (400 of the 800 shadow rows here): the draw
    must not depend on the records' order either. Also keeps these tests fast."""
    monkeypatch.setattr(shokri, "MAX_TRAINING_ROWS", 400)


def test_the_tie_prone_targets_do_give_tied_signals(audited):
    name, inputs, _ = audited
    _, counts = np.unique(true_class_confidence(inputs.target_logits[:, 0], inputs.labels), return_counts=True)
    tied = counts[counts > 1].sum() / inputs.n_records
    if name in ("tree", "naive-bayes"):
        assert tied > 0.5  # many records share their confidence: what a position tie-break would split
    assert inputs.record_ids is not None and inputs.shadow_records_are_audited


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_permuting_the_records_permutes_the_scores(attack, audited):
    _, inputs, _ = audited
    spec = ATTACKS[attack]
    order = np.random.default_rng(17).permutation(inputs.n_records)
    before, after = spec.run(inputs, seed=5), spec.run(inputs.permuted(order), seed=5)
    np.testing.assert_allclose(after.scores, before.scores[order], rtol=1e-9, atol=1e-12)
    if before.decision is not None:
        np.testing.assert_array_equal(after.decision, before.decision[order])


def no_information_inputs(kind: str, n: int = 400, k: int = 4, z: int = 200,
                          c: int = 3) -> tuple[AttackInputs, np.ndarray]:
    """Pool-mode inputs whose logits say nothing about membership, and a membership [N] (half).
    kind "identical": every model gives the same logits on every record, all of one label;
    "independent": labels and logits drawn at random, independently of who trained on what."""
    rng = np.random.default_rng(23)
    labels, pop_labels = rng.integers(0, c, n), rng.integers(0, c, z)
    if kind == "identical":
        labels, pop_labels = np.zeros(n, np.int64), np.zeros(z, np.int64)
        def draw(*shape):
            return np.broadcast_to(np.array([1.0, 0.0, -0.5]), (*shape, 1, c)).copy()
    else:
        def draw(*shape):
            return 2.0 * rng.normal(size=(*shape, 1, c))
    ref_in = balanced_masks(k, n, 24)
    reference = draw(k, n)
    inputs = AttackInputs(draw(n), labels, reference, ref_in, reference, ref_in, labels, draw(z), draw(k, z),
                          pop_labels, np.arange(n) * 7 + 3, np.arange(n) * 7 + 3)
    return inputs, rng.permutation(n) < n // 2


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_identical_outputs_give_an_auc_of_exactly_one_half_in_any_order(attack):
    inputs, member = no_information_inputs("identical", n=200)
    orders = {"as given": np.arange(len(member)), "shuffled": np.random.default_rng(5).permutation(len(member)),
              "reversed": np.arange(len(member))[::-1]}
    for label, order in orders.items():
        scores = ATTACKS[attack].run(inputs.permuted(order), seed=2).scores
        assert roc_auc_score(member[order], scores) == 0.5, label


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_outputs_independent_of_membership_give_chance_auc(attack):
    inputs, member = no_information_inputs("independent", n=800)
    auc = roc_auc_score(member, ATTACKS[attack].run(inputs, seed=2).scores)
    assert abs(auc - 0.5) < 0.085  # 4 standard deviations of the AUC of 400 vs 400 at chance
