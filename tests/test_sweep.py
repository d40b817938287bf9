"""miaudit sweep: a tiny sweep end to end, resume, the finding's logic and bad input."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

import miaudit
from miaudit.errors import InputError
from miaudit.sweeps import EXPERIMENTS, make_sweep, parse_overrides, run_sweep
from miaudit.sweeps.run import t_interval
from miaudit.sweeps.spec import make_spec
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


def _point(label, mean, lo, hi, attack="a"):
    return {"setting": label, "attack": attack, "mean": mean, "ci": [lo, hi]}


@pytest.mark.parametrize("claim, points, supported, word", [
    ("increasing", [_point("x", 0.5, 0.48, 0.52), _point("y", 0.7, 0.68, 0.72)], True, "rises"),
    ("increasing", [_point("x", 0.5, 0.4, 0.6), _point("y", 0.55, 0.45, 0.65)], False, "inconclusive"),
    ("decreasing", [_point("x", 0.5, 0.48, 0.52), _point("y", 0.7, 0.68, 0.72)], False, "contradicted"),
    ("flat", [_point("x", 0.5, 0.4, 0.6), _point("y", 0.55, 0.45, 0.65)], True, "overlap"),
    ("highest:y", [_point("x", 0.5, 0.48, 0.52), _point("y", 0.7, 0.68, 0.72)], True, "highest"),
    ("lowest:y", [_point("x", 0.5, 0.48, 0.52), _point("y", 0.7, 0.68, 0.72)], False, "contradicted"),
    ("best-attack:b@x", [_point("x", 0.5, 0.48, 0.52), _point("x", 0.7, 0.68, 0.72, "b"),
                         _point("y", 0.7, 0.68, 0.72)], True, "best attack"),
])
def test_finding_states_direction_and_whether_intervals_separate(claim, points, supported, word):
    spec = make_spec({"experiment": "t", "claim": claim, "finding_attack": "a", "base": {"attacks": ["a", "b"]},
                      "points": [{"label": "x"}, {"label": "y"}]})
    sentence, ok = finding(spec, points)
    assert ok is supported and word in sentence


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
