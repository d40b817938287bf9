"""Every registered attack ignores the order of the audited records, and is at chance on signals that
carry no membership information, whatever that order."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from miaudit.attacks import label_only_boundary, shokri
from miaudit.attacks.registry import ATTACKS
from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.audit.run import train_target_and_references
from miaudit.audit.signal_stage import signal_request
from miaudit.data.splits import balanced_masks
from miaudit.models.references import ReferenceModels
from miaudit.models.wrappers import TorchTarget
from miaudit.signals.functions import true_class_confidence
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.matrix import compute_signals

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # label-only attacks make many small queries
TARGETS = ("tree", "forest", "naive-bayes", "mlp")


@pytest.fixture(scope="module", params=TARGETS)
def audited(request):
    """(target name, AttackInputs, membership) of a digits audit: 100 members, 100 non-members,
    4 reference models in pool mode, 300 population records."""
    cfg = make_config(dataset="digits", target=request.param, members=100, reference_models=4,
                      population=300, cache=False, seed=3, epochs=20, hidden=(64,), n_jobs=1)
    plan = make_plan(cfg)
    target, refs = train_target_and_references(plan)
    return request.param, compute_signals(signal_request(plan), target, refs), plan.membership


@pytest.fixture(autouse=True)
def few_shokri_rows(monkeypatch):
    """Shokri's attack models train on a subsample (400 of the 800 shadow rows here): the draw
    must not depend on the records' order either. Also keeps these tests fast."""
    monkeypatch.setattr(shokri, "MAX_TRAINING_ROWS", 400)
    monkeypatch.setattr(label_only_boundary, "DEFAULT_BUDGET", 120)  # label queries per record


def runs_here(spec, inputs, target_name: str) -> bool:
    """Whether the attack can run on these inputs; the only attacks that cannot are the white-box
    ones on a scikit-learn target (no parameters to read)."""
    why = spec.unmet_need_of(inputs)
    if why is not None:
        assert spec.needs_white_box and target_name not in ("mlp",), why
    return why is None


def test_the_tie_prone_targets_do_give_tied_signals(audited):
    name, inputs, _ = audited
    _, counts = np.unique(true_class_confidence(inputs.target_logits[:, 0], inputs.labels), return_counts=True)
    tied = counts[counts > 1].sum() / inputs.n_records
    if name in ("tree", "naive-bayes"):
        assert tied > 0.5  # many records share their confidence: what a position tie-break would split
    assert inputs.record_ids is not None and inputs.shadow_records_are_audited


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_permuting_the_records_permutes_the_scores(attack, audited):
    name, inputs, _ = audited
    spec = ATTACKS[attack]
    if not runs_here(spec, inputs, name):
        return
    order = np.random.default_rng(17).permutation(inputs.n_records)
    before, after = spec.run(inputs, seed=5), spec.run(inputs.permuted(order), seed=5)
    np.testing.assert_allclose(after.scores, before.scores[order], rtol=1e-9, atol=1e-12)
    if before.decision is not None:
        np.testing.assert_array_equal(after.decision, before.decision[order])
    assert after.queries == before.queries


class ConstantNet(nn.Module):
    """Logits [1, 0, -0.5] for every record (a bias and an input weight fixed at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0, -0.5]))
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), 3) + self.weight * 0 * x.flatten(1)[:, :1]


def random_net(seed: int, features: int, c: int) -> TorchTarget:
    """An untrained MLP: its outputs say nothing about who is a member."""
    torch.manual_seed(seed)
    return TorchTarget("mlp", nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, c)), c)


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
    records = rng.normal(size=(n, 5)).astype(np.float32)
    if kind == "identical":
        target, refs = TorchTarget("mlp", ConstantNet(), c), [TorchTarget("mlp", ConstantNet(), c) for _ in range(k)]
    else:
        target, refs = random_net(100, 5, c), [random_net(101 + j, 5, c) for j in range(k)]
    models = ReferenceModels(None, refs, 0, 0.0, 0.0)
    inputs = AttackInputs(draw(n), labels, reference, ref_in, reference, ref_in, labels, draw(z), draw(k, z),
                          pop_labels, np.arange(n) * 7 + 3, np.arange(n) * 7 + 3, records, target, models,
                          population_records=np.random.default_rng(29).normal(size=(z, 5)).astype(np.float32))
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
