"""Shadow data without real data: noisy and marginal records, model-guided synthesis, the audit flag."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.data.shadow_data import feature_domain, marginal_records, noisy_records
from miaudit.data.synthesis import SynthesisSettings, synthesize_records
from miaudit.errors import InputError


@pytest.fixture(scope="module")
def binary_digits():
    x, y = load_digits(return_X_y=True)
    return (x > 7).astype(np.float32), y


class CentroidSoftmax:
    """A fitted-in-one-line classifier: softmax of minus squared distances to the class means / T."""

    def __init__(self, x, y, temperature):
        self.means = np.stack([x[y == c].mean(0) for c in range(10)])
        self.temperature = temperature

    def predict_proba(self, x):
        d = ((np.asarray(x)[:, None, :] - self.means[None]) ** 2).sum(-1)
        z = -d / self.temperature
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    def predict(self, x):
        return self.predict_proba(x).argmax(1)


@pytest.fixture(scope="module")
def binary_target(binary_digits):
    x, y = binary_digits
    return CentroidSoftmax(x[:1000], y[:1000], temperature=2.0)


class CountingTarget:
    """predict_proba of a fitted model that counts every record it is asked about."""

    def __init__(self, model):
        self.model, self.queries = model, 0

    def __call__(self, x):
        self.queries += len(x)
        return self.model.predict_proba(x)


def test_synthesized_records_are_labelled_c_by_the_target_with_confidence(binary_digits, binary_target):
    x, _ = binary_digits
    domain = feature_domain(x[1000:])
    classes = np.arange(60) % 10
    target = CountingTarget(binary_target)
    settings = SynthesisSettings(conf_min=0.6)
    result = synthesize_records(target, domain, classes, settings, seed=3)
    assert result.ok.mean() > 0.9
    made = result.x[result.ok]
    probs = binary_target.predict_proba(made)
    c = classes[result.ok]
    assert (probs.argmax(1) == c).all()
    assert (probs[np.arange(len(c)), c] >= 0.6).all()
    np.testing.assert_allclose(result.confidence[result.ok], probs[np.arange(len(c)), c], rtol=1e-6)
    assert set(np.unique(made)) <= {0.0, 1.0}  # binary features stay binary
    assert result.total_queries == target.queries  # every query is counted, on its record
    assert result.mean_queries_per_record == pytest.approx(target.queries / result.ok.sum())
    again = synthesize_records(binary_target.predict_proba, domain, classes, settings, seed=3)
    np.testing.assert_array_equal(again.x, result.x)


def test_synthesis_respects_the_query_budget(binary_digits, binary_target):
    x, _ = binary_digits
    target = CountingTarget(binary_target)
    result = synthesize_records(target, feature_domain(x), np.arange(100) % 10,
                                SynthesisSettings(conf_min=0.99, query_budget=450), seed=0)
    assert target.queries <= 450
    assert result.total_queries == target.queries
    assert target.queries > 450 - 100  # it spends the budget rather than stopping early
    assert not result.ok.all()
    assert (result.x[~result.ok] == 0).all()


def test_synthesis_handles_continuous_features():
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    model = CentroidSoftmax(x, y, temperature=50.0)
    domain = feature_domain(x)
    assert not domain.binary[domain.high > domain.low].all()
    result = synthesize_records(model.predict_proba, domain, np.arange(30) % 10,
                                SynthesisSettings(conf_min=0.5), seed=1)
    made = result.x[result.ok]
    assert result.ok.sum() >= 25
    assert (made >= domain.low - 1e-6).all() and (made <= domain.high + 1e-6).all()
    assert (model.predict(made) == (np.arange(30) % 10)[result.ok]).all()


def test_synthesis_settings_are_checked():
    domain = feature_domain(np.eye(8, dtype=np.float32))
    def coin(x):
        return np.ones((len(x), 2)) / 2

    with pytest.raises(InputError, match="k_min"):
        synthesize_records(coin, domain, np.zeros(3, int), SynthesisSettings(k_max=20))
    with pytest.raises(InputError, match="conf_min"):
        synthesize_records(coin, domain, np.zeros(3, int), SynthesisSettings(conf_min=1.5))


def test_noisy_records_flip_the_fraction_of_binary_features_and_are_seeded(binary_digits):
    x, _ = binary_digits
    x = x[:300]
    noisy = noisy_records(x, 0.2, seed=5, domain=feature_domain(x))
    assert noisy.shape == x.shape and noisy.dtype == np.float32
    assert set(np.unique(noisy)) <= {0.0, 1.0}
    changed = (noisy != x).sum(axis=1)
    binary = feature_domain(x).binary
    # each record gets round(0.2 * 64) = 13 changed features; constant features cannot change
    assert changed.max() == 13 and changed.mean() > 13 * binary.mean() - 1
    np.testing.assert_array_equal(noisy, noisy_records(x, 0.2, seed=5, domain=feature_domain(x)))
    assert (noisy != noisy_records(x, 0.2, seed=6, domain=feature_domain(x))).any()


def test_noisy_continuous_features_stay_in_their_range():
    x = np.random.default_rng(0).normal(size=(200, 3, 4, 4)).astype(np.float32)
    noisy = noisy_records(x, 0.5, seed=0)
    dom = feature_domain(x)
    flat = noisy.reshape(200, -1)
    assert noisy.shape == x.shape
    assert (flat >= dom.low).all() and (flat <= dom.high).all()
    assert ((noisy != x).reshape(200, -1).sum(1) <= 24).all()
    with pytest.raises(InputError, match="shadow_noise"):
        noisy_records(x, 0.0, seed=0)


def test_marginal_records_keep_each_class_feature_domain_and_are_seeded(binary_digits):
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    drawn = marginal_records(x, y, seed=2)
    assert drawn.shape == x.shape
    for c in range(10):
        for j in (10, 20, 36):
            assert set(drawn[y == c, j]) <= set(x[y == c, j])
    # per-class means follow the class's marginal, though no record is copied whole
    np.testing.assert_allclose(drawn[y == 3].mean(0), x[y == 3].mean(0), atol=1.5)
    rows = {r.tobytes() for r in x}
    assert sum(r.tobytes() in rows for r in drawn) < 5
    np.testing.assert_array_equal(drawn, marginal_records(x, y, seed=2))
    assert (drawn != marginal_records(x, y, seed=3)).any()


def _attacker_plan(**settings):
    return make_plan(make_config(dataset="digits", target="logreg", members=300, reference_models=2,
                                 reference_data="attacker", attacks=["shokri-lr"], **settings))


def test_plan_replaces_attacker_shadow_records_and_refuses_pool_mode():
    real = _attacker_plan()
    noisy = _attacker_plan(shadow_data="noisy", shadow_noise=0.3)
    marg = _attacker_plan(shadow_data="marginals")
    assert noisy.reference_x.shape == real.reference_x.shape
    np.testing.assert_array_equal(noisy.reference_y, real.reference_y)
    assert (noisy.reference_x != real.reference_x).any() and (marg.reference_x != real.reference_x).any()
    np.testing.assert_array_equal(noisy.pool_x, real.pool_x)  # only the shadow records change
    assert noisy.shadow_data == {"kind": "noisy", "noise_fraction": 0.3}
    with pytest.raises(InputError, match="--shadow-data"):
        make_plan(make_config(dataset="digits", target="logreg", reference_models=2, shadow_data="noisy",
                              attacks=["threshold-loss"]))


def test_audit_with_synthesized_shadow_data_reports_queries():
    from miaudit.audit.run import audit

    result = audit(dataset="digits", target="naive-bayes", members=200, reference_models=2,
                   reference_data="attacker", attacks=["shokri-lr"], shadow_data="synthesized",
                   synthesis_queries=40_000, progress=False, cache=False, n_jobs=1)
    block = result.to_dict()["shadow_data"]
    assert block["kind"] == "synthesized" and block["synthesized"] > 0
    assert block["mean_queries_per_record"] >= 1
    assert block["target_queries"] <= 40_000 == block["settings"]["query_budget"]
    assert any("synthesized from the target" in n for n in result.notes)
    assert 0 <= result.attack("shokri-lr").metrics.auc <= 1


@pytest.mark.parametrize("args, field", [
    (["--shadow-data", "fake"], "shadow_data"),
    (["--shadow-data", "noisy", "--reference-data", "pool"], "--shadow-data"),
    (["--shadow-data", "noisy", "--reference-data", "attacker", "--shadow-noise", "1.5"], "shadow_noise"),
    (["--shadow-data", "synthesized", "--reference-data", "attacker", "--synthesis-queries", "0"],
     "synthesis_queries"),
])
def test_cli_shadow_data_bad_input_exits_2(args, field, tmp_path, monkeypatch, capsys):
    import sys

    from miaudit.cli import main

    monkeypatch.setattr(sys, "argv", ["miaudit", "audit", "--dataset", "digits", "--target", "logreg",
                                      "--reference-models", "2", "--attacks", "shokri-lr", *args,
                                      "--out", str(tmp_path / "o"), "--quiet"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and field in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
