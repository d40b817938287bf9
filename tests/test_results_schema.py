"""docs/results.schema.json: real audits' results.json validate; a missing contract key or a wrong type does not;
../shared/tools/check-results agrees where it exists."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema  # the dev extra
import pytest

from miaudit import audit
from miaudit.models.recipe import TrainingRecipe
from miaudit.report.files import json_safe
from miaudit.targets.predictions import save_predictions

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "docs" / "results.schema.json"
CHECKER = ROOT.parent / "shared" / "tools" / "check-results"
SMALL = dict(dataset="digits", target="tree", members=200, population=200, reference_models=2, cache=False, n_jobs=1,
             seed=0, progress=False)


def strict_load(path: Path) -> dict:
    """results.json as strict JSON: NaN / Infinity refused (the schema's numbers are finite)."""
    def refuse(name):
        raise ValueError(f"{path}: {name} is not JSON")
    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{kind: results.json path} for an in-memory audit, a chunked one (--signal-chunk) and a --predictions one."""
    out = tmp_path_factory.mktemp("results")
    memory = audit(**SMALL, attacks=["threshold-loss", "lira-online", "rmia", "shokri-lr"])
    memory.save(out / "memory")
    chunked = audit(**SMALL, attacks=["lira-online", "rmia", "population"], signal_chunk=128)
    chunked.save(out / "chunked")
    path = save_predictions(memory.predictions(), out / "signals.npz")
    audit(predictions=str(path), attacks=["threshold-loss", "lira-online"], progress=False).save(out / "predictions")
    return {kind: out / kind / "results.json" for kind in ("memory", "chunked", "predictions")}


def errors(validator, doc) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def check_results(doc: dict, tmp_path: Path) -> int:
    """check-results' exit status on doc (written to a file)."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return subprocess.run([sys.executable, str(CHECKER), str(path)], capture_output=True, timeout=60).returncode


needs_checker = pytest.mark.skipif(
    not CHECKER.is_file(), reason=f"check-results not found at {CHECKER} (the shared tools sit beside the repo)")


@pytest.mark.parametrize("kind", ["memory", "chunked", "predictions"])
def test_real_results_validate(validator, results, kind):
    doc = strict_load(results[kind])
    assert errors(validator, doc) == []
    assert ("signals" in doc) == (kind == "chunked")


@needs_checker
@pytest.mark.parametrize("kind", ["memory", "chunked", "predictions"])
def test_check_results_accepts_the_real_results(results, kind, tmp_path):
    assert check_results(strict_load(results[kind]), tmp_path) == 0


def _drop(*keys):
    def f(doc):
        node = doc
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return f


def _set(value, *keys):
    def f(doc):
        node = doc
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return f


# What check-results refuses: the schema refuses it too.
BOTH_REFUSE = {
    "no miaudit_version": _drop("miaudit_version"),
    "no config": _drop("config"),
    "no target": _drop("target"),
    "no attacks": _drop("attacks"),
    "no timing": _drop("timing"),
    "config without seed": _drop("config", "seed"),
    "config without members": _drop("config", "members"),
    "target without train_accuracy": _drop("target", "train_accuracy"),
    "no timing.total_s": _drop("timing", "total_s"),
    "attack without auc": _drop("attacks", 0, "auc"),
    "attack without TPR at 1% FPR": _drop("attacks", 0, "tpr_at_fpr", "0.01"),
    "a string for a TPR": _set("0.05", "attacks", 0, "tpr_at_fpr", "0.001"),
    "a string for an accuracy": _set("0.8", "target", "test_accuracy"),
    "a bool for an AUC": _set(True, "attacks", 0, "auc"),
    "null for a precision": _set(None, "attacks", 0, "precision"),
    "a recall above 1": _set(1.5, "attacks", 0, "recall"),
    "an advantage below -1": _set(-1.5, "attacks", 0, "advantage"),
    "a negative epsilon": _set(-0.1, "attacks", 0, "epsilon_lower_bound"),
    "negative seconds": _set(-1.0, "attacks", 0, "seconds"),
    "no attacks listed": _set([], "attacks"),
    "an upper-case attack name": _set("LiRA-online", "attacks", 0, "name"),
    "zero members": _set(0, "target", "members"),
    "a float member count": _set(200.5, "target", "non_members"),
}
# Keys of design.md's contract that check-results does not look at: the schema requires them.
SCHEMA_REFUSES = {
    "attack without auc_ci": _drop("attacks", 0, "auc_ci"),
    "attack without queries": _drop("attacks", 0, "queries"),
    "attack without epsilon_method": _drop("attacks", 0, "epsilon_method"),
    "target without model": _drop("target", "model"),
    "no timing.train_gflop": _drop("timing", "train_gflop"),
    "an AUC interval end above 1": _set([0.5, 1.2], "attacks", 0, "auc_ci"),
    "a string for a timing": _set("3 s", "timing", "signals_s"),
}


@pytest.mark.parametrize("case", sorted({**BOTH_REFUSE, **SCHEMA_REFUSES}))
def test_schema_refuses_a_broken_contract(validator, results, case):
    doc = strict_load(results["memory"])
    {**BOTH_REFUSE, **SCHEMA_REFUSES}[case](doc)
    assert errors(validator, doc), case


@needs_checker
@pytest.mark.parametrize("case", sorted(BOTH_REFUSE))
def test_check_results_agrees(validator, results, case, tmp_path):
    doc = strict_load(results["memory"])
    BOTH_REFUSE[case](doc)
    assert check_results(doc, tmp_path) == 1
    assert errors(validator, doc)


def test_nan_is_not_json(results, tmp_path):
    text = results["memory"].read_text(encoding="utf-8").replace('"auc": ', '"auc": NaN, "x": ', 1)
    (tmp_path / "results.json").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="NaN is not JSON"):
        strict_load(tmp_path / "results.json")


# The optional blocks of design.md, in the shapes the code writes them.
EXTENSIONS = {
    "verdict": {"band": "moderate", "title": "Moderate leakage", "test": "tail-rank+mann-whitney-bonferroni",
                "p_value": 5.8e-16, "alpha": 0.01, "tail_p_value": 1.0, "auc_p_value": 2.9e-16,
                "attack": "lira-online", "chosen_by": "pseudo-targets", "why": "highest mean TPR at 0.1% FPR",
                "candidates": {"lira-online": {"tpr_at_fpr_0.001": 0.009, "auc": 0.69}}},
    "attack_choice": {"candidates": ["threshold-loss", "lira-online", "label-only-boundary"],
                      "chosen": ["threshold-loss", "lira-online"], "why": "label-only searches take minutes"},
    "data": {"source": "adult.csv", "encoding": {}, "report": {"rows": 600, "kept": 590},
             "dropped_rows": {"count": 10, "of": 600, "reasons": [
                 {"reason": "missing label", "rows": 0},
                 {"reason": "missing value", "rows": 10, "columns": {"workclass": 7, "occupation": 10}}]},
             "dropped_columns": [{"column": "fnlwgt", "reason": "--drop", "by": "user"},
                                 {"column": "name", "reason": "id-like", "by": "auto", "keep_with": "--keep name"}]},
}
BROKEN_EXTENSIONS = {
    "verdict band not a band": _set("severe", "verdict", "band"),
    "verdict p-value above 1": _set(1.2, "verdict", "p_value"),
    "verdict without chosen_by": _drop("verdict", "chosen_by"),
    "attack_choice without why": _drop("attack_choice", "why"),
    "dropped rows as a string": _set("10", "data", "dropped_rows", "count"),
    "a column dropped by nobody": _set("robot", "data", "dropped_columns", 0, "by"),
    "privacy without its epsilon": _drop("privacy", "accountant_epsilon"),
    "privacy not DP-SGD": _set(False, "privacy", "dp_sgd"),
    "signals without kept": _drop("signals", "kept"),
    "signals in float64": _set("float64", "signals", "dtype"),
}


def _extended(results, noise_multiplier: float = 1.1) -> dict:
    """The in-memory results with every optional block: the chunked audit's signals, a DP-SGD privacy block
    from the code that writes it (through results.json's NaN / inf -> null), the others as the code shapes them."""
    pytest.importorskip("opacus", reason="the DP-SGD accountant is the dp extra: pip install miaudit[dp]")
    from miaudit.models.dp_sgd import privacy_block

    doc = strict_load(results["memory"])
    doc.update(copy.deepcopy(EXTENSIONS))
    doc["signals"] = strict_load(results["chunked"])["signals"]
    doc["privacy"] = privacy_block(TrainingRecipe(dp_noise_multiplier=noise_multiplier, epochs=3), 1800)
    return json.loads(json.dumps(json_safe(doc), allow_nan=False))


@pytest.mark.parametrize("noise_multiplier", [1.1, 0.0])  # sigma = 0: an unbounded accountant epsilon, null
def test_optional_blocks_validate(validator, results, noise_multiplier):
    doc = _extended(results, noise_multiplier)
    assert errors(validator, doc) == []
    assert (doc["privacy"]["accountant_epsilon"] is None) == (noise_multiplier == 0)


@pytest.mark.parametrize("case", sorted(BROKEN_EXTENSIONS))
def test_optional_blocks_are_checked(validator, results, case):
    doc = _extended(results)
    BROKEN_EXTENSIONS[case](doc)
    assert errors(validator, doc), case


def test_added_keys_are_allowed(validator, results):
    doc = strict_load(results["memory"])
    doc["something_new"] = {"any": "shape"}
    doc["attacks"][0]["new_metric"] = [1, 2, 3]
    doc["timing"]["new_stage_s"] = 0.5
    row = next(iter(doc["attacks"][0]["per_class"].values()))
    row["tpr_at_fpr_0.001_below_resolution"] = True  # a flag beside a per-class rate is no rate
    assert errors(validator, doc) == []
    row["tpr_at_fpr_0.001"] = "0.1"
    assert errors(validator, doc)
    row["tpr_at_fpr_0.001"] = 0.1
    doc["timing"]["new_stage_s"] = -0.5  # a new *_s key is seconds all the same
    assert errors(validator, doc)
