"""End-to-end audits on the embedded digits data: contract, attack strength, reproducibility."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import miaudit
from miaudit.attacks import label_only_boundary
from miaudit.errors import InputError

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check-results"
FAST = dict(dataset="digits", members=300, reference_models=8, population=500, cache=False)


@pytest.fixture(autouse=True)
def small_boundary_searches(monkeypatch):
    """The boundary searches of "all" with a small budget and two reference models: a forest answers
    each label query slowly (hundreds of sequential queries at the default budget)."""
    monkeypatch.setattr(label_only_boundary, "DEFAULT_BUDGET", 60)
    monkeypatch.setattr(label_only_boundary, "REFERENCE_MODELS", 2)


@pytest.fixture(scope="module")
def forest_audit():
    """An overfit random forest on digits, every attack that can run (small boundary searches, as
    ``small_boundary_searches``: module fixtures start before it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(label_only_boundary, "DEFAULT_BUDGET", 60)
        patch.setattr(label_only_boundary, "REFERENCE_MODELS", 2)
        return miaudit.audit(target="forest", attacks=["all"], seed=3, progress=False, **FAST)


def test_every_attack_beats_chance_on_an_overfit_target(forest_audit):
    r = forest_audit
    gap = r.target.train_accuracy - r.target.test_accuracy
    assert gap > 0.02
    names = {a.name for a in r.attacks}
    assert {"threshold-loss", "shokri-lr", "lira-online", "lira-offline", "rmia", "population"} <= names
    assert {"label-only-gap", "label-only-boundary-lira"} <= names
    for a in r.attacks:
        if a.threat_model != "label-only":
            assert a.metrics.auc > 0.6, (a.name, a.metrics.auc)
        elif a.name == "label-only-gap":  # its AUC is 1/2 + the accuracy gap / 2 on a balanced audit
            assert a.metrics.auc == pytest.approx(0.5 + gap / 2, abs=1e-9)
        else:  # labels alone: weaker, a forest generalises well (0.55-0.70 at the full budget)
            assert a.metrics.auc > 0.52, (a.name, a.metrics.auc)


def test_results_json_meets_the_contract(forest_audit, tmp_path):
    paths = forest_audit.save(tmp_path / "run")
    for name in ("results.json", "report.html", "roc.png", "scores.csv"):
        assert (tmp_path / "run" / name).is_file()
    assert CHECKER.is_file(), f"{CHECKER}: the contract checker (../shared/tools, beside the clone) is missing"
    proc = subprocess.run([str(CHECKER), str(paths["results.json"]), "--attacks", "lira-online,shokri-lr"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["config"]["members"] == 300 and doc["target"]["members"] == 300
    assert doc["timing"]["reference_models"] == 8
    scores = (tmp_path / "run" / "scores.csv").read_text().splitlines()
    assert len(scores) == 1 + 600


def test_same_seed_same_numbers():
    kw = dict(target="logreg", attacks=["threshold-loss", "shokri-lr", "lira-online", "rmia"], seed=5,
              progress=False, **{**FAST, "reference_models": 4})
    a, b = miaudit.audit(**kw), miaudit.audit(**kw)
    for x, y in zip(a.attacks, b.attacks):
        assert x.name == y.name
        np.testing.assert_array_equal(x.scores, y.scores)
    c = miaudit.audit(**{**kw, "seed": 6})
    assert not np.array_equal(a.attacks[0].scores, c.attacks[0].scores)


def test_attacker_mode_runs_offline_attacks_and_skips_online(tmp_path):
    r = miaudit.audit(target="forest", reference_data="attacker", attacks=["all"], progress=False,
                      **{**FAST, "members": 200, "reference_models": 3})
    names = {a.name for a in r.attacks}
    assert "shokri-rf" in names and "lira-offline" in names and "lira-online" not in names
    assert any("lira-online" in n for n in r.notes)
    assert r.attack("shokri-lr").metrics.auc > 0.55
    # calibration data are imbalanced here (each shadow: 1 in for K-1 out), decisions must not collapse
    # onto one side: half of the audited records are members, the calls must not be all or none
    for name in ("threshold-loss", "lira-offline"):
        m = r.attack(name).metrics
        called = m.recall * 0.5 / m.precision  # share of records called members
        assert m.recall > 0.2 and 0.1 < called < 0.9, (name, m.recall, m.precision)


def test_keep_classes_audits_only_those_classes_relabelled_in_order():
    from sklearn.datasets import load_digits

    r = miaudit.audit(target="naive-bayes", keep_classes=[7, 3], attacks=["threshold-loss"],
                      progress=False, **{**FAST, "members": 150, "reference_models": 0})
    original = load_digits().target
    kept = np.flatnonzero(np.isin(original, [7, 3]))  # digits records of classes 7 and 3, in dataset order
    assert len(r.labels) == 300 and np.unique(r.record_index).size == 300
    np.testing.assert_array_equal(r.labels, (original[kept[r.record_index]] == 3).astype(int))  # 7 -> 0, 3 -> 1
    assert 0.3 < r.labels.mean() < 0.7  # both classes audited
    assert r.target.test_accuracy > 0.9  # two digits apart, not ten


def test_bad_settings_raise_input_error_before_training():
    with pytest.raises(InputError, match="members"):
        miaudit.audit(dataset="digits", members=10_000, progress=False)


def _digits_like_npz(path, transform, seed=0):
    """An NPZ dataset with digits' shape [n, 1, 8, 8]: digits images passed through ``transform``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = transform((d.images / 16.0).astype(np.float32)[:, None], np.random.default_rng(seed))
    np.savez(path, x=x.astype(np.float32), y=d.target.astype(np.int64))
    return str(path)


def test_out_of_domain_non_members_are_easy_to_tell_apart(tmp_path):
    noise = _digits_like_npz(tmp_path / "noise.npz", lambda x, rng: rng.uniform(0, 1, x.shape))
    r = miaudit.audit(target="logreg", nonmember_dataset=noise, attacks=["threshold-confidence"],
                      progress=False, **{**FAST, "members": 200, "reference_models": 0})
    assert any("out-of-domain" in n for n in r.notes)
    assert r.attack("threshold-confidence").metrics.auc > 0.9


def test_shadow_models_on_another_dataset(tmp_path):
    mirrored = _digits_like_npz(tmp_path / "mirrored.npz", lambda x, rng: x[..., ::-1])
    r = miaudit.audit(target="forest", shadow_dataset=mirrored, attacks=["shokri-lr", "lira-offline"],
                      progress=False, **{**FAST, "members": 200, "reference_models": 2})
    assert r.config["shadow_dataset"] == mirrored
    assert any("attacker mode" in n for n in r.notes)
    assert r.attack("shokri-lr").metrics.auc > 0.55


def test_shadow_dataset_of_another_shape_is_rejected(tmp_path):
    flat = tmp_path / "flat.npz"
    np.savez(flat, x=np.zeros((50, 5), np.float32), y=np.arange(50) % 2)
    with pytest.raises(InputError, match="shadow-dataset"):
        miaudit.audit(target="logreg", shadow_dataset=str(flat), progress=False, **FAST)


def test_attacks_run_concurrently_with_the_same_results_in_order():
    from miaudit.audit.config import make_config
    from miaudit.audit.plan import make_plan
    from miaudit.audit.run import run_attacks, train_reference_models, train_target
    from miaudit.audit.signal_stage import signal_request
    from miaudit.signals.matrix import compute_signals

    cfg = make_config(target="forest", attacks=["all"], seed=5, **FAST)
    plan = make_plan(cfg)
    inputs = compute_signals(signal_request(plan), train_target(plan), train_reference_models(plan))
    one = run_attacks(make_plan(cfg.model_copy(update={"n_jobs": 1})), inputs)
    two = run_attacks(make_plan(cfg.model_copy(update={"n_jobs": 2})), inputs)
    assert [o.name for o in two] == [a.name for a in plan.attacks] == [o.name for o in one]
    for a, b in zip(one, two, strict=True):
        assert np.allclose(a.scores, b.scores, rtol=1e-6, atol=1e-9), a.name
        assert a.metrics.auc == pytest.approx(b.metrics.auc, abs=1e-9)


def test_the_longest_attacks_start_first(monkeypatch):
    from miaudit.attacks.registry import AttackSpec
    from miaudit.audit.config import make_config
    from miaudit.audit.plan import make_plan
    from miaudit.audit.run import run_attacks, train_reference_models, train_target
    from miaudit.audit.signal_stage import signal_request
    from miaudit.signals.matrix import compute_signals

    plan = make_plan(make_config(target="forest", attacks=["threshold-loss", "shokri-rf", "rmia", "population"],
                                 seed=5, n_jobs=1, **FAST))
    inputs = compute_signals(signal_request(plan), train_target(plan), train_reference_models(plan))
    started: list[str] = []
    real_run = AttackSpec.run
    monkeypatch.setattr(AttackSpec, "run", lambda self, *a, **k: started.append(self.name) or real_run(self, *a, **k))
    outcomes = run_attacks(plan, inputs)  # one worker: attacks run in the order they were submitted
    assert started == ["shokri-rf", "rmia", "threshold-loss", "population"]
    assert [o.name for o in outcomes] == ["threshold-loss", "shokri-rf", "rmia", "population"]
