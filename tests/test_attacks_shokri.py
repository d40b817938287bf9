"""Shokri shadow-model attack on a real overfit model (random forest on digits)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from miaudit.attacks import shokri
from miaudit.attacks.inputs import AttackInputs
from miaudit.attacks.shokri import ShokriAttackModel, attack_features
from miaudit.errors import InputError

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


def test_global_linear_attack_runs(digits_inputs):
    # A linear model cannot combine "probability of class c" with "label is c", so the global linear
    # attack is weak by design; it must still produce valid probabilities.
    inputs, _ = digits_inputs
    result = shokri.shokri_lr(inputs, per_class=False)
    assert np.all((result.scores >= 0) & (result.scores <= 1))
    np.testing.assert_array_equal(result.decision, result.scores >= 0.5)


def test_same_seed_same_scores(digits_inputs):
    inputs, _ = digits_inputs
    np.testing.assert_array_equal(shokri.shokri_dt(inputs, seed=3).scores,
                                  shokri.shokri_dt(inputs, seed=3).scores)


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
