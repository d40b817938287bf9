"""Label-only attacks: the oracle gives labels only and counts them, the boundary search keeps its
budget and finds the true distance of a linear model, and the attacks reach the model only
through the oracle."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from miaudit import audit
from miaudit.attacks.label_only_boundary import boundary_distances, minimum_budget
from miaudit.attacks.label_oracle import LabelOnlyViolation, LabelOracle, QueryBudgetExceeded
from miaudit.attacks.registry import ATTACKS
from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.data.splits import balanced_masks
from miaudit.errors import InputError
from miaudit.models.references import ReferenceModels
from miaudit.models.wrappers import TorchTarget
from miaudit.signals.inputs import AttackInputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LABEL_ONLY = [name for name, spec in ATTACKS.items() if spec.threat_model == "label-only"]


class SpyModel:
    """A model that counts the records it is asked about (and has nothing but ``logits``)."""

    name, n_classes = "spy", 3

    def __init__(self, module: nn.Module) -> None:
        self.module, self.rows = module, 0

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.rows += len(x)
        with torch.no_grad():
            return self.module(torch.from_numpy(np.asarray(x, np.float32))).numpy()


def linear_net(seed: int, d: int = 6, c: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(d, c)


def inputs_with(model, n: int = 60, d: int = 6, k: int = 4, seed: int = 0, logits_seed: int = 1) -> AttackInputs:
    """Inputs of n records with target_logits drawn at random (logits_seed): they do not match the
    model, so an attack that read them would change with logits_seed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    labels = np.asarray(model.logits(x)).argmax(1)  # mostly right, a few wrong:
    labels[:5] = (labels[:5] + 1) % 3
    model.rows = 0
    logits = np.random.default_rng(logits_seed).normal(size=(n, 1, 3))
    refs = ReferenceModels(None, [TorchTarget("lin", linear_net(10 + j), 3) for j in range(k)], 0, 0.0, 0.0)
    ref_in = balanced_masks(k, n, 3)
    ref_logits = rng.normal(size=(k, n, 1, 3))
    return AttackInputs(logits, labels, ref_logits, ref_in, ref_logits, ref_in, labels, np.zeros((0, 1, 3)),
                        np.zeros((k, 0, 1, 3)), np.zeros(0, np.int64), np.arange(n) + 100, np.arange(n) + 100,
                        x, model, refs)


def test_the_oracle_gives_labels_only_and_counts_them():
    model = SpyModel(linear_net(0))
    oracle = LabelOracle(model, budget=10)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    labels = oracle.predict(x)
    assert labels.dtype == np.int64 and labels.shape == (4,)
    np.testing.assert_array_equal(labels, model.logits(x).argmax(1))
    assert oracle.queries == 4 and oracle.remaining == 6
    for forbidden in ("logits", "predict_proba", "module", "stack", "estimator", "decision_function"):
        with pytest.raises(LabelOnlyViolation):
            getattr(oracle, forbidden)
    with pytest.raises(LabelOnlyViolation):
        oracle.budget_left = 100
    with pytest.raises(LabelOnlyViolation):
        pickle.dumps(oracle)
    with pytest.raises(QueryBudgetExceeded):
        oracle.predict(np.zeros((7, 6), np.float32))
    assert oracle.queries == 4  # a refused request is not sent
    oracle.predict(np.zeros((6, 6), np.float32))
    assert oracle.remaining == 0
    with pytest.raises(InputError):
        LabelOracle(None)


@pytest.mark.parametrize("attack", LABEL_ONLY)
def test_label_only_attacks_reach_the_model_only_through_the_oracle(attack):
    model = SpyModel(linear_net(0))
    first = ATTACKS[attack].run(inputs_with(model, logits_seed=1), seed=4)
    rows = model.rows
    model.rows = 0
    second = ATTACKS[attack].run(inputs_with(model, logits_seed=2), seed=4)
    # other precomputed target outputs, same scores: the attack did not read them
    np.testing.assert_array_equal(first.scores, second.scores)
    # every record the model saw was a counted oracle query
    assert first.queries == rows == model.rows > 0


def test_query_counts_are_what_each_attack_sends():
    model = SpyModel(linear_net(0))
    inputs = inputs_with(model, n=60)
    assert ATTACKS["label-only-gap"].run(inputs).queries == 60
    assert ATTACKS["label-only-noise"].run(inputs).queries == 60 * 50
    assert ATTACKS["label-only-augmentation"].run(inputs).queries == 60 * 16  # tabular: 16 copies
    boundary = ATTACKS["label-only-boundary"].run(inputs)
    assert 60 * minimum_budget() <= boundary.queries <= 60 * boundary.params["budget_per_record"]


@pytest.mark.parametrize("budget", [minimum_budget(), 60, 250])
def test_the_boundary_search_keeps_its_budget(budget):
    model = SpyModel(linear_net(1, d=20))
    x = np.random.default_rng(2).normal(size=(40, 20)).astype(np.float32)
    labels = model.logits(x).argmax(1)
    model.rows = 0
    oracle = LabelOracle(model, budget=budget * len(x))  # would raise on one query too many
    dist, used = boundary_distances(oracle.predict, x, labels, budget, seed=0)
    assert used.max() <= budget and used.sum() == oracle.queries == model.rows
    assert (dist > 0).all()
    if budget >= 60:
        assert used.min() > budget - 10 - 6 - 10 - 10  # a last iteration spends what is left
    with pytest.raises(InputError, match="budget"):
        boundary_distances(oracle.predict, x, labels, minimum_budget() - 1, seed=0)


def test_the_boundary_search_finds_the_distance_to_a_linear_boundary():
    torch.manual_seed(3)
    net = nn.Linear(20, 2)
    x = np.random.default_rng(4).normal(size=(50, 20)).astype(np.float32)
    w = (net.weight[1] - net.weight[0]).detach().numpy().astype(np.float64)
    b = float((net.bias[1] - net.bias[0]).detach())
    true = np.abs(x @ w + b) / np.linalg.norm(w)
    labels = (x @ w + b > 0).astype(np.int64)
    labels[:3] = 1 - labels[:3]  # mislabelled: distance 0
    model = SpyModel(net)
    dist, _ = boundary_distances(LabelOracle(model).predict, x, labels, 600, seed=1)
    assert (dist[:3] == 0).all()
    ratio = dist[3:] / true[3:]
    assert ratio.min() >= 1 - 1e-3  # every point found has the other label: never closer than the truth
    assert np.median(ratio) < 1.05 and ratio.max() < 1.5


def test_a_model_that_gives_one_label_everywhere_leaves_the_box_diagonal():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([[2.0, 0.0, 0.0]]).expand(len(x), 3)

    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    dist, used = boundary_distances(LabelOracle(SpyModel(Constant())).predict, x, np.zeros(5, np.int64), 100, 0)
    np.testing.assert_allclose(dist, (x.max() - x.min()) * 2.0)  # box diagonal, sqrt(4) = 2
    assert (used == 1 + 10).all()  # the label, then the random starts; no search without a start


def test_an_audit_reports_queries_and_skips_white_box_attacks_on_a_tree():
    result = audit(dataset="digits", target="tree", members=60, reference_models=2, population=100,
                   attacks=["threshold-loss", "label-only-gap", "label-only-augmentation"], cache=False, seed=1,
                   progress=False, n_jobs=1)
    rows = {a["name"]: a for a in result.to_dict()["attacks"]}
    assert rows["label-only-gap"]["queries"] == 120
    assert rows["label-only-augmentation"]["queries"] == 120 * 14  # 8x8 images: 14 copies
    assert rows["threshold-loss"]["queries"] == 120  # the signal matrix's: one output per audited record
    plan = make_plan(make_config(dataset="digits", target="tree", members=60, reference_models=2, attacks=["all"]))
    assert "gradient-norm" not in [s.name for s in plan.attacks] and "label-only-gap" in [s.name for s in plan.attacks]
    assert any("gradient-norm: needs a torch target" in n for n in plan.notes)
    with pytest.raises(InputError, match="gradient-norm"):
        make_plan(make_config(dataset="digits", target="tree", members=60, attacks=["gradient-norm"]))


def test_attacks_that_query_the_model_skip_on_precomputed_predictions():
    inputs = inputs_with(SpyModel(linear_net(0)))
    bare = AttackInputs.target_only(inputs.target_logits, inputs.labels)
    for name in LABEL_ONLY + ["gradient-norm"]:
        assert ATTACKS[name].unmet_need_of(bare) is not None
        assert ATTACKS[name].unmet_need(0, False, 0) is not None  # what a --predictions audit asks
        with pytest.raises(InputError):
            ATTACKS[name].run(bare)


def test_calibrated_variants_need_the_reference_models_themselves():
    import dataclasses

    inputs = dataclasses.replace(inputs_with(SpyModel(linear_net(0))), reference_models=None)
    for name in LABEL_ONLY + ["gradient-norm", "gradient-norm-lira"]:
        why = ATTACKS[name].unmet_need_of(inputs)
        if name.endswith("-lira"):
            assert why is not None and "reference models themselves" in why
        else:  # the target itself is there (and its torch module, for gradient-norm)
            assert why is None
