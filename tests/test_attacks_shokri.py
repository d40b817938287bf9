"""Shokri shadow-model attack on a real overfit model (random forest on digits)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from miaudit.attacks import shokri
from miaudit.attacks.shokri import ShokriAttackModel, attack_features
from miaudit.data.splits import balanced_masks
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

ATTACKS = {"lr": shokri.shokri_lr, "dt": shokri.shokri_dt, "linear-svm": shokri.shokri_linear_svm,
           "rbf-svm": shokri.shokri_rbf_svm, "rf": shokri.shokri_rf, "mlp": shokri.shokri_mlp}


@pytest.fixture(scope="module")
def shadow_training_set(digits_inputs):
    """(features [K*R, 2C], is_member [K*R]) from the shadow models, as the attacks build it."""
    inputs, _ = digits_inputs
    k, r = inputs.shadow_in.shape
    features = attack_features(inputs.shadow_logits[:, :, 0], inputs.shadow_labels[None, :])
    return features.reshape(k * r, -1), inputs.shadow_in.reshape(-1)


def _auc(scores: np.ndarray, kinds: np.ndarray, positive: str, negative: str) -> float:
    keep = (kinds == positive) | (kinds == negative)
    return roc_auc_score(kinds[keep] == positive, scores[keep])


@pytest.mark.parametrize("name", list(ATTACKS))
def test_per_class_attack_separates_members_and_not_fresh_records(name, digits_inputs):
    inputs, kinds = digits_inputs
    result = ATTACKS[name](inputs, seed=1)
    assert result.scores.shape == (inputs.n_records,)
    assert np.all((result.scores >= 0) & (result.scores <= 1))
    assert result.threshold == 0.5
    np.testing.assert_array_equal(result.decision, result.scores >= 0.5)
    assert _auc(result.scores, kinds, "member", "non-member") > 0.6
    # Two sets of records the target never saw: the attack must be at chance.
    assert abs(_auc(result.scores, kinds, "fresh", "non-member") - 0.5) < 0.07


@pytest.mark.parametrize("name", ["dt", "rf", "mlp"])
def test_global_nonlinear_attack_separates_members(name, digits_inputs):
    inputs, kinds = digits_inputs
    result = ATTACKS[name](inputs, per_class=False)
    assert _auc(result.scores, kinds, "member", "non-member") > 0.6


def overfit_signal(n: int = 600, k: int = 4, seed: int = 0) -> tuple[AttackInputs, np.ndarray]:
    """Pool-mode inputs (2 classes) of an overfit model: members get a higher true-class log-odds
    (+1.5, noise 0.4); and the target's membership [N]. In the column p_0 that is high p_0 for
    class 0 members and low p_0 for class 1 members."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)

    def logits(is_in):
        phi = 1.0 + 1.5 * is_in + 0.4 * rng.normal(size=is_in.shape)  # log-odds of the true class
        out = np.zeros((*is_in.shape, 1, 2))
        np.put_along_axis(out, np.broadcast_to(labels, is_in.shape)[..., None, None], phi[..., None, None], -1)
        return out

    member = rng.permutation(n) < n // 2
    ref_in = balanced_masks(k, n, seed + 1)
    ref = logits(ref_in)
    empty = np.zeros((k, 0, 1, 2))
    return AttackInputs(logits(member), labels, ref, ref_in, ref, ref_in, labels, empty[0], empty,
                        np.zeros(0, np.int64)), member


def test_per_class_models_catch_what_one_linear_model_cannot():
    # one linear model over (p_0, p_1, one-hot label) cannot flip the sign of p_0's effect between
    # the classes (a label only shifts the intercept); Shokri's per-class models can
    inputs, member = overfit_signal()
    per_class = shokri.shokri_lr(inputs)
    global_ = roc_auc_score(member, shokri.shokri_lr(inputs, per_class=False).scores)
    assert roc_auc_score(member, per_class.scores) > 0.95
    assert global_ < 0.75
    assert (per_class.decision == member).mean() > 0.9


def test_needs_reference_models(digits_inputs):
    inputs, _ = digits_inputs
    alone = AttackInputs.target_only(inputs.target_logits, inputs.labels)
    for name, attack in ATTACKS.items():
        with pytest.raises(InputError, match=f"shokri-{name}: needs at least 1 reference"):
            attack(alone)


def test_all_members_rejected(digits_inputs):
    inputs, _ = digits_inputs
    all_in = dataclasses.replace(inputs, shadow_in=np.ones_like(inputs.shadow_in))
    with pytest.raises(InputError, match="all members or all non-members"):
        shokri.shokri_lr(all_in)


def test_attack_features_keep_class_order():
    logits = np.log(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]))
    features = attack_features(logits, np.array([2, 0]))
    np.testing.assert_allclose(features, [[0.2, 0.5, 0.3, 0, 0, 1], [0.6, 0.1, 0.3, 1, 0, 0]])
    assert attack_features(np.zeros((4, 5, 3)), np.zeros(5, int)).shape == (4, 5, 6)
    with pytest.raises(InputError, match="labels"):
        attack_features(logits, np.array([0, 3]))


def test_estimator_clones_and_refits_identically(shadow_training_set):
    features, is_member = shadow_training_set
    model = ShokriAttackModel(classifier="dt", per_class=True, random_state=4)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "classes_")
    model.fit(features, is_member)
    np.testing.assert_array_equal(clone(model).fit(features, is_member).predict_proba(features),
                                  model.predict_proba(features))
    assert model.score(features, is_member) > 0.6
    assert model.predict(features).dtype == bool


def test_class_without_shadow_records_uses_global_model(shadow_training_set):
    features, is_member = shadow_training_set
    labels = features[:, 10:].argmax(axis=1)
    model = ShokriAttackModel("dt", per_class=True, n_classes=10).fit(features[labels != 7],
                                                                      is_member[labels != 7])
    assert sorted(model.class_models_) == [c for c in range(10) if c != 7]
    rows = labels == 7
    np.testing.assert_allclose(model.predict_proba(features[rows]),
                               model.global_model_.predict_proba(features[rows]))
    full = ShokriAttackModel("dt", per_class=True).fit(features, is_member)
    assert full.global_model_ is None and len(full.class_models_) == 10
    flat = ShokriAttackModel("dt", per_class=False).fit(features, is_member)
    assert flat.class_models_ == {} and flat.global_model_ is not None


def test_rbf_training_rows_are_capped(shadow_training_set, monkeypatch):
    features, is_member = shadow_training_set
    monkeypatch.setattr(shokri, "RBF_MAX_ROWS", 60)
    model = ShokriAttackModel("rbf-svm", per_class=False).fit(features, is_member)
    assert model.global_model_[0].n_samples_seen_ == 60


def test_bad_estimator_input(shadow_training_set):
    features, is_member = shadow_training_set
    with pytest.raises(InputError, match="classifier"):
        ShokriAttackModel("knn").fit(features, is_member)
    with pytest.raises(InputError, match="one-hot"):
        ShokriAttackModel().fit(features[:, ::-1], is_member)
    with pytest.raises(InputError, match="n_classes"):
        ShokriAttackModel(n_classes=3).fit(features, is_member)
