"""miaudit sweep: a tiny sweep end to end, resume, the finding's logic and bad input."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import miaudit
from miaudit.errors import InputError
from miaudit.sweeps import EXPERIMENTS, make_sweep, parse_overrides, run_sweep
from miaudit.sweeps.run import t_interval
from miaudit.sweeps.seed_stats import resolution, summarize
from miaudit.sweeps.spec import MARGINS, make_spec
from miaudit.sweeps.verdict import finding

TINY = {"experiment": "tiny", "seeds": 2, "metric": "auc", "claim": "increasing", "finding_attack": "threshold-loss",
        "base": {"dataset": "digits", "target": "mlp", "hidden": [32], "members": 120, "reference_models": 2,
                 "population": 100, "attacks": ["threshold-loss", "lira-online"]},
        "grid": {"epochs": [1, 15]}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    doc = run_sweep(make_spec(TINY), out, progress=False)
    return out, doc


def test_tiny_sweep_writes_every_output(tiny):
    out, doc = tiny
    for name in ("sweep.json", "sweep.csv", "sweep.md", "sweep.html", "sweep_auc.png", "sweep_tpr_at_0001.png",
                 "sweep_accuracy.png", "sweep_tradeoff.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 100, name
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["experiment"] == "tiny" and saved["complete"] and isinstance(saved["supported"], bool)
    assert saved["finding"].startswith("threshold-loss AUC")
    assert len(saved["runs"]) == 4 and {r["seed"] for r in saved["runs"]} == {0, 1}
    points = saved["points"]
    assert [(p["setting"], p["attack"]) for p in points] == [
        ("epochs=1", "threshold-loss"), ("epochs=1", "lira-online"),
        ("epochs=15", "threshold-loss"), ("epochs=15", "lira-online")]
    for p in points:
        assert p["seeds"] == [0, 1]
        lo, hi = p["ci"]
        assert 0 <= lo <= p["mean"] <= hi <= 1
    # the long-trained target fits its data better than the one-epoch one
    assert points[2]["test_accuracy"]["mean"] > points[0]["test_accuracy"]["mean"]
    table = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(table) == 4 and float(table[0]["auc_mean"]) == pytest.approx(points[0]["mean"], rel=1e-5)
    assert "| epochs=15 | lira-online |" in (out / "sweep.md").read_text()
    assert "<img src=\"sweep_auc.png\"" in (out / "sweep.html").read_text()


def test_a_rerun_resumes_without_new_audits(tiny, monkeypatch):
    out, doc = tiny
    calls = []
    monkeypatch.setattr(miaudit, "audit", lambda **kw: calls.append(kw))
    again = run_sweep(make_spec(TINY), out, progress=False)
    assert calls == [] and again["points"] == doc["points"]
    # a new seed runs only the new (point, seed) pairs
    with pytest.raises(AttributeError):  # the stub returns None: the one new run reached audit()
        run_sweep(make_spec({**TINY, "seeds": 3}), out, progress=False)
    assert len(calls) == 1 and calls[0]["seed"] == 2


def test_t_interval_is_scipys_student_t_cut_to_the_range():
    mean, (lo, hi) = t_interval([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and lo == pytest.approx(0.6 - 4.303 * 0.1 / 3 ** 0.5, abs=1e-3)
    assert t_interval([0.9, 1.0], bounds=(0, 1))[1][1] == 1.0
    assert t_interval([0.3])[1] == [None, None]


def test_t_interval_of_seeds_that_agree_is_not_zero_width():
    mean, (lo, hi) = t_interval([0.25, 0.25, 0.25])  # exact in binary: a sample SD of exactly 0
    assert lo < 0.25 < hi
    # three TPRs of exactly 0 at 500 members: the SD is floored at one member (1/500)
    mean, (lo, hi) = t_interval([0.0, 0.0, 0.0], bounds=(0, 1), resolution=1 / 500)
    assert mean == 0 and lo == 0 and hi == pytest.approx(4.303 * (1 / 500) / 3 ** 0.5, rel=1e-3)
    assert resolution("tpr_at_0.001", 500, 400) == 1 / 500 and resolution("accuracy", 500, 400) == 1 / 900


def _point(label, mean, sd, attack="a", n=3):
    half = 4.303 * sd / n ** 0.5
    return {"setting": label, "attack": attack, "mean": mean, "ci": [mean - half, mean + half], "sd": sd, "n": n}


@pytest.mark.parametrize("claim, points, supported, outcome, word", [
    ("increasing", [_point("x", 0.5, 0.01), _point("y", 0.7, 0.01)], True, "effect", "rises"),
    ("increasing", [_point("x", 0.5, 0.05), _point("y", 0.55, 0.05)], False, "inconclusive", "inconclusive"),
    ("decreasing", [_point("x", 0.5, 0.01), _point("y", 0.7, 0.01)], False, "effect", "contradicted"),
    ("decreasing", [_point("x", 0.5, 0.001), _point("y", 0.501, 0.001)], False, "no effect", "margin"),
    ("flat", [_point("x", 0.5, 0.05), _point("y", 0.55, 0.05)], False, "inconclusive", "inconclusive"),
    ("flat", [_point("x", 0.5, 0.002), _point("y", 0.501, 0.002)], True, "no effect", "supported"),
    ("flat", [_point("x", 0.5, 0.01), _point("y", 0.7, 0.01)], False, "effect", "contradicted"),
    ("highest:y", [_point("x", 0.5, 0.01), _point("y", 0.7, 0.01)], True, "effect", "highest"),
    ("lowest:y", [_point("x", 0.5, 0.01), _point("y", 0.7, 0.01)], False, "effect", "contradicted"),
    ("best-attack:b@x", [_point("x", 0.5, 0.01), _point("x", 0.7, 0.01, "b"), _point("y", 0.7, 0.01)],
     True, "effect", "best attack"),
])
def test_finding_states_the_tests_and_their_outcome(claim, points, supported, outcome, word):
    spec = make_spec({"experiment": "t", "claim": claim, "finding_attack": "a", "base": {"attacks": ["a", "b"]},
                      "points": [{"label": "x"}, {"label": "y"}]})
    verdict = finding(spec, points)
    assert verdict["supported"] is supported and verdict["outcome"] == outcome and word in verdict["finding"]
    assert verdict["margin"] == MARGINS["auc"] and "TOST" in verdict["test"]


def test_flat_needs_equivalence_not_overlapping_intervals():
    """3 seeds, SD 0.01, a true difference of 3 SDs (0.03) against the default margin 0.02: overlapping
    intervals called it flat in about 77% of runs; TOST does so in at most 5%."""
    spec = make_spec({"experiment": "t", "claim": "flat", "metric": "accuracy",
                      "points": [{"label": "x"}, {"label": "y"}]})
    rng = np.random.default_rng(0)
    called_flat = 0
    for _ in range(200):
        pts = []
        for label, shift in (("x", 0.60), ("y", 0.63)):
            values = rng.normal(shift, 0.01, 3)
            s = summarize(values, resolution=1e-3)
            pts.append({"setting": label, "attack": "a", **s.to_dict()})
        called_flat += finding(spec, pts)["supported"]
    assert called_flat <= 10  # <= 5%: at a margin below the true difference TOST is a level-5% test


def test_margin_is_settable_and_defaults_to_the_metrics():
    points = [_point("x", 0.50, 0.01), _point("y", 0.52, 0.01)]
    base = {"experiment": "t", "claim": "flat", "finding_attack": "a", "points": [{"label": "x"}, {"label": "y"}]}
    assert finding(make_spec(base), points)["outcome"] != "no effect"  # 0.02 apart, margin 0.02
    wide = finding(make_spec({**base, "margin": 0.1}), points)
    assert wide["outcome"] == "no effect" and wide["supported"] and wide["margin"] == 0.1
    with pytest.raises(InputError, match="margin"):
        make_spec({**base, "margin": -1})


def test_sweep_json_records_outcome_test_and_margin(tiny):
    saved = tiny[1]  # the file itself is rewritten by the resume test's interrupted run
    assert saved["outcome"] in ("effect", "no effect", "inconclusive") and saved["margin"] == 0.02
    assert "TOST" in saved["test"] and isinstance(saved["supported"], bool)
    for p in saved["points"]:
        assert p["n"] == 2 and p["sd"] > 0 and p["ci"][1] > p["ci"][0]
    assert saved["runs"][0]["members"] == 120


@pytest.mark.parametrize("content", ["[]", "null", "3", '{"runs": null}'])
def test_a_sweep_json_that_is_not_an_object_is_an_input_error(tmp_path, content):
    (tmp_path / "sweep.json").write_text(content)
    with pytest.raises(InputError, match="not a sweep.json"):
        run_sweep(make_spec(TINY), tmp_path, progress=False)


def test_cli_sweep_json_of_an_empty_list_exits_2(tmp_path):
    (tmp_path / "sweep.json").write_text("[]")
    proc = subprocess.run([sys.executable, "-m", "miaudit.cli", "sweep", "epochs", "--dataset", "digits",
                           "--out", str(tmp_path), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a sweep.json" in proc.stderr and "Traceback" not in proc.stderr


def test_builtin_experiments_fit_a_small_dataset():
    for name in EXPERIMENTS:
        spec = make_sweep(name, "digits", seeds=2)
        for p in spec.points:
            members = {**spec.base, **p.settings}["members"]
            assert 2 * members <= 1797, (name, p.label)
    assert make_sweep("model-type", "digits").base["members"] == 1797 // 4
    assert make_sweep("model-type").base["members"] == 1000  # Fashion-MNIST keeps the classic size


def test_cli_sweep_that_cannot_fit_the_dataset_exits_2_before_running(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "miaudit.cli", "sweep", "model-type", "--dataset", "digits",
                           "--seeds", "2", "--set", "members=1000", "--out", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "need 2000 records, digits has 1797" in proc.stderr
    assert not (tmp_path / "sweep.json").exists()


def test_a_sweep_where_no_point_ran_is_an_error(tmp_path):
    table = tmp_path / "small.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    spec = make_spec({"experiment": "none", "seeds": 1, "base": {"dataset": str(table), "members": 50,
                                                                  "attacks": ["threshold-loss"]},
                      "grid": {"target": ["logreg", "tree"]}})
    with pytest.raises(InputError, match="no point ran") as e:
        run_sweep(spec, tmp_path / "out", progress=False)
    assert "need 100 records" in str(e.value)


def test_every_builtin_experiment_is_a_valid_sweep_of_valid_audits():
    for name in EXPERIMENTS:
        spec = make_sweep(name, "digits", seeds=3)
        assert len(spec.points) >= 2 and spec.seeds == 3 and spec.base["dataset"] == "digits"
        from miaudit.sweeps.run import check_points
        check_points(spec, {"members": 100})


def test_config_file_changes_a_builtin(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('seeds = 4\n[base]\nmembers = 300\n[grid]\nepochs = [3, 6]\n')
    spec = make_sweep("epochs", "digits", config=path)
    assert spec.seeds == 4 and spec.base["members"] == 300 and spec.base["target"] == "mlp"
    assert [p.label for p in spec.points] == ["epochs=3", "epochs=6"] and spec.claim == "increasing"


@pytest.mark.parametrize("call, field", [
    (lambda: make_sweep("no-such"), "experiment"),
    (lambda: make_spec({**TINY, "metric": "f1"}), "metric"),
    (lambda: make_spec({**TINY, "claim": "upwards"}), "claim"),
    (lambda: make_spec({**TINY, "grid": {"epochs": [1]}}), "two points"),
    (lambda: parse_overrides(["members"]), "--set"),
    (lambda: run_sweep(make_spec(TINY), "/tmp/unused", overrides={"members": -1}), "point 'epochs=1': members"),
])
def test_bad_sweeps_are_one_line_input_errors(call, field):
    with pytest.raises(InputError, match=field) as e:
        call()
    assert "\n" not in str(e.value)


def test_cli_unknown_experiment_exits_2():
    proc = subprocess.run([sys.executable, "-m", "miaudit.cli", "sweep", "nope", "--out", "/tmp/x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown experiment 'nope'" in proc.stderr
