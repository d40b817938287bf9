"""Precomputed predictions: npz / parquet files validated array by array, then AttackInputs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import softmax

from miaudit.attacks.registry import ATTACKS
from miaudit.errors import InputError
from miaudit.targets.predictions import Predictions, load_predictions, runnable_attacks, save_predictions

N, C, K, Z = 60, 3, 4, 20


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    membership = np.arange(N) % 2 == 0
    masks = np.zeros((K, N), bool)
    for k in range(K):
        masks[k, rng.permutation(N)[: N // 2]] = True
    return {
        "target_logits": rng.standard_normal((N, C)).astype(np.float32),
        "labels": rng.integers(0, C, N),
        "membership": membership.astype(np.int8),
        "reference_logits": rng.standard_normal((K, N, C)).astype(np.float32),
        "reference_masks": masks.astype(np.uint8),
        "population_logits": rng.standard_normal((Z, C)).astype(np.float32),
        "population_labels": rng.integers(0, C, Z),
        "population_reference_logits": rng.standard_normal((K, Z, C)).astype(np.float32),
    }


def _npz(tmp_path, arrays, name="p.npz"):
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def test_npz_predictions_become_pool_mode_attack_inputs(tmp_path):
    arrays = _arrays()
    p = load_predictions(_npz(tmp_path, arrays))
    assert (p.n_records, p.n_classes, p.n_reference, p.n_population) == (N, C, K, Z)
    inputs = p.attack_inputs()
    assert inputs.target_logits.shape == (N, 1, C) and inputs.reference_logits.shape == (K, N, 1, C)
    assert inputs.population_reference_logits.shape == (K, Z, 1, C)
    assert inputs.shadow_records_are_audited and inputs.has_in_models
    np.testing.assert_array_equal(inputs.reference_in, arrays["reference_masks"].astype(bool))
    np.testing.assert_array_equal(p.membership, arrays["membership"] == 1)
    again = load_predictions(save_predictions(p, tmp_path / "again.npz"))
    for field in ("target_logits", "labels", "membership", "reference_logits", "reference_in",
                  "population_logits", "population_labels", "population_reference_logits"):
        np.testing.assert_array_equal(getattr(again, field), getattr(p, field))


def test_probabilities_become_log_probabilities(tmp_path):
    arrays = _arrays()
    logits = arrays.pop("target_logits")
    arrays["target_probabilities"] = softmax(logits.astype(np.float64), axis=1)
    arrays["reference_probabilities"] = softmax(arrays.pop("reference_logits").astype(np.float64), axis=2)
    p = load_predictions(_npz(tmp_path, arrays))
    np.testing.assert_allclose(softmax(p.target_logits, axis=1), arrays["target_probabilities"], atol=1e-6)
    np.testing.assert_allclose(p.target_logits, np.log(arrays["target_probabilities"]), atol=1e-6)
    assert p.target_logits.dtype == np.float32 and p.reference_logits.shape == (K, N, C)


def _parquet(tmp_path, arrays) -> object:
    audited = {
        "labels": arrays["labels"].tolist(),
        "membership": arrays["membership"].tolist(),
        "target_logits": arrays["target_logits"].tolist(),
        "reference_logits": np.moveaxis(arrays["reference_logits"], 0, 1).tolist(),
        "reference_masks": arrays["reference_masks"].T.tolist(),
        "population": [False] * N,
    }
    population = {
        "labels": arrays["population_labels"].tolist(),
        "membership": [None] * Z,
        "target_logits": arrays["population_logits"].tolist(),
        "reference_logits": np.moveaxis(arrays["population_reference_logits"], 0, 1).tolist(),
        "reference_masks": [None] * Z,
        "population": [True] * Z,
    }
    table = pa.table({name: audited[name] + population[name] for name in audited})
    pq.write_table(table, tmp_path / "p.parquet")
    return tmp_path / "p.parquet"


def test_parquet_rows_give_the_same_predictions_as_npz(tmp_path):
    arrays = _arrays()
    from_npz = load_predictions(_npz(tmp_path, arrays))
    from_parquet = load_predictions(_parquet(tmp_path, arrays))
    for field in ("target_logits", "labels", "membership", "reference_logits", "reference_in",
                  "population_logits", "population_labels", "population_reference_logits"):
        np.testing.assert_array_equal(getattr(from_parquet, field), getattr(from_npz, field))


def _bad(name: str, value=None, drop: tuple[str, ...] = ()):
    def change(arrays):
        for key in drop:
            arrays.pop(key)
        if name:
            arrays[name] = value(arrays) if callable(value) else value
        return arrays
    return change


def _scaled_row(arrays):
    p = softmax(arrays.pop("target_logits").astype(np.float64), axis=1)
    p[5] *= 1.2
    return p


def _set(name, index, value):
    def fn(arrays):
        out = arrays[name].astype(np.float64 if isinstance(value, float) else arrays[name].dtype)
        out[index] = value
        return out
    return fn


BAD_FILES = [
    (_bad("reference_logits", lambda a: a["reference_logits"][:3]),
     "p.npz: reference_logits: shape (3, 60, 3), expected (4, 60, 3) = "
     "[K, N, C], K from reference_masks, N and C from target_logits"),
    (_bad("target_probabilities", _scaled_row),
     "p.npz: target_probabilities: not probabilities: record 5 sums to 1.2, not 1"),
    (_bad("reference_masks", _set("reference_masks", (0, 0), 2)),
     "p.npz: reference_masks: values must be 0 or 1 (found 2)"),
    (_bad("membership", np.ones(N, np.int64)),
     "p.npz: membership: all 60 records are members; the audit needs members and non-members"),
    (_bad("labels", _set("labels", 0, 3)),
     "p.npz: labels: values must lie in 0..2 (C = 3 classes), found 0..3"),
    (_bad("labels", _set("labels", 0, 1.5)), "p.npz: labels: not integers"),
    (_bad("target_logits", _set("target_logits", (2, 1), np.nan)),
     "p.npz: target_logits: NaN or inf at index (2, 1)"),
    (_bad("population_reference_logits", lambda a: a["population_reference_logits"][:3]),
     "p.npz: population_reference_logits: shape (3, 20, 3), expected (4, 20, 3) = "
     "[K, Z, C], K from reference_masks, Z from population_logits"),
    (_bad("", drop=("population_reference_logits",)),
     "p.npz: population_reference_logits: missing: with reference models and population records, "
     "give each reference model's outputs on the population [K, Z, C]"),
    (_bad("", drop=("reference_logits", "population_reference_logits")),
     "p.npz: reference_masks: given without reference_logits"),
    (_bad("", drop=("reference_masks",)), "p.npz: reference_masks: missing"),
    (_bad("target_probabilities", lambda a: softmax(a["target_logits"], axis=1)),
     "p.npz: target_logits and target_probabilities: give one of them, not both"),
    (_bad("", drop=("target_logits",)),
     "p.npz: target_logits: missing (give target_logits or target_probabilities)"),
    (_bad("", drop=("population_labels",)), "p.npz: population_labels: missing (needed with population_logits)"),
    (_bad("membership", lambda a: a["membership"][:50]),
     "p.npz: membership: shape (50,), expected (60) = [N] from target_logits"),
]


@pytest.mark.parametrize("change, message", BAD_FILES)
def test_each_bad_array_is_named_in_one_line(tmp_path, change, message):
    with pytest.raises(InputError) as err:
        load_predictions(_npz(tmp_path, change(_arrays())))
    assert str(err.value) == message


def test_unknown_names_and_unreadable_files(tmp_path):
    arrays = _arrays()
    arrays["reference_mask"] = arrays["reference_masks"]
    with pytest.raises(InputError) as err:
        load_predictions(_npz(tmp_path, arrays))
    assert str(err.value).startswith("p.npz: reference_mask: unknown array name; known: labels, membership, ")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InputError) as err:
        load_predictions(tmp_path / "junk.npz")
    assert str(err.value).startswith("junk.npz: not a readable npz file of numeric arrays (")
    (tmp_path / "p.csv").write_text("x\n")
    with pytest.raises(InputError) as err:
        load_predictions(tmp_path / "p.csv")
    assert str(err.value) == "p.csv: predictions must be an .npz or .parquet file"


def test_runnable_attacks_follow_what_the_file_holds(tmp_path):
    full = Predictions.from_arrays(_arrays())
    runnable, skipped = runnable_attacks(full)
    queries_model = [n for n, s in ATTACKS.items()  # no model (nor records, for qmia) in a file
                     if s.needs_model or s.needs_white_box or s.needs_records]
    assert [s.name for s in runnable] == [n for n in ATTACKS if n not in queries_model]
    assert [w.split(":")[0] for w in skipped] == queries_model
    inputs = full.attack_inputs()
    for spec in runnable:
        assert spec.run(inputs).scores.shape == (N,)

    target_only = {k: v for k, v in _arrays().items() if not k.startswith(("reference", "population"))}
    runnable, skipped = runnable_attacks(Predictions.from_arrays(target_only))
    assert {s.name for s in runnable} == {n for n in ATTACKS if n.startswith("threshold-")}
    assert "rmia: needs at least 1 reference (shadow) model (--reference-models)" in skipped

    offline = _arrays()
    offline["reference_masks"] = np.zeros((K, N), np.uint8)
    runnable, skipped = runnable_attacks(Predictions.from_arrays(offline), ["lira-online", "lira-offline",
                                                                            "shokri-lr"])
    assert [s.name for s in runnable] == ["lira-offline"]
    assert skipped == ["lira-online: needs reference models trained on the audited records (--reference-data pool)",
                       "shokri-lr: needs reference masks with IN records (1s) to train its attack model"]


def test_a_predictions_audit_is_titled_by_its_file(tmp_path):
    from miaudit import audit
    from miaudit.cli import results_table

    path = _npz(tmp_path, _arrays(), name="my-signals.npz")
    result = audit(predictions=str(path), attacks=["threshold-loss", "lira-offline"], progress=False)
    assert result.config["dataset"] == "my-signals.npz"
    assert "my-signals.npz /" in str(results_table(result).title)
    paths = result.save(tmp_path / "out")
    report = paths["report.html"].read_text()
    assert "audit &middot; my-signals.npz /" in report and "digits" not in report
    assert '"dataset": "my-signals.npz"' in paths["results.json"].read_text()
