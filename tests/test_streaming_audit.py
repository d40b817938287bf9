"""Audits with the signal matrix on disk (--signal-chunk): same numbers as in memory, results.json
"signals" block, one-line errors."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from miaudit import audit
from miaudit.attacks.registry import ATTACKS
from miaudit.attacks.streamed import STREAMED, run_streamed
from miaudit.audit.config import make_config
from miaudit.cli import main
from miaudit.errors import InputError
from miaudit.signals.store import store_inputs

SCORE_READING = [name for name in STREAMED if not ATTACKS[name].needs_white_box]  # a logreg target: no gradients
FAST = dict(dataset="digits", target="logreg", members=250, reference_models=8, population=300, cache=False,
            attacks=SCORE_READING, seed=3)


@pytest.fixture(scope="module")
def both():
    memory = audit(**FAST, progress=False)
    streamed = audit(**FAST, signal_chunk=96, progress=False)  # 500 records: 6 chunks, the last of 20
    return memory, streamed


def test_streamed_audit_matches_in_memory(both):
    memory, streamed = both
    assert [a.name for a in streamed.attacks] == SCORE_READING
    for a in memory.attacks:
        b = streamed.attack(a.name)
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-6, atol=1e-9)
        assert b.metrics.auc == pytest.approx(a.metrics.auc, abs=1e-6)
        assert b.params == a.params
    assert streamed.target.train_accuracy == memory.target.train_accuracy
    assert streamed.inputs is None and memory.inputs is not None


def test_signals_block_and_temporary_store_removed(both):
    from pathlib import Path

    block = both[1].to_dict()["signals"]
    assert block["shape"] == {"models": 8, "records": 500, "classes": 10, "population": 300}
    assert block["chunk"] == 96 and block["chunks_read"] == 6 and block["dtype"] == "float32"
    # reference (8 x 500 x 10) + target (500 x 10) + population (8 x 300 x 10 + 300 x 10) float32 at least
    assert block["bytes"] >= 4 * (8 * 500 * 10 + 500 * 10 + 9 * 300 * 10)
    assert block["kept"] is False and not Path(block["store"]).exists()
    assert "signals" not in both[0].to_dict()


def test_all_under_streaming_selects_the_streamable_attacks():
    from miaudit.audit.plan import make_plan

    plan = make_plan(make_config(**{**FAST, "attacks": "all", "reference_models": 0}, signal_chunk=64))
    no_references = [s.name for s in ATTACKS.values() if s.name in SCORE_READING and not s.needs_references]
    assert "population" in no_references and "threshold-loss" in no_references
    assert [s.name for s in plan.attacks] == no_references  # the others need reference models: skipped
    assert any("label-only-augmentation" in n and "cannot stream" in n for n in plan.notes)
    result = audit(**{**FAST, "attacks": "all", "reference_models": 0}, signal_chunk=64, progress=False)
    assert [a.name for a in result.attacks] == no_references
    assert result.to_dict()["signals"]["shape"]["models"] == 0


def test_streamed_scores_equal_in_memory_on_a_real_audits_signals(both, tmp_path):
    """Every streamed attack on the in-memory audit's own signal matrix, written to a store in chunks of 96:
    the registered in-memory attack's scores at rtol 1e-9, its decision and params."""
    inputs = both[0].inputs
    store = store_inputs(inputs, tmp_path / "s", chunk=96)
    for name in SCORE_READING:
        want, got = ATTACKS[name].run(inputs), run_streamed(name, store)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12, err_msg=name)
        assert got.params == want.params, name
        assert (got.decision is None) == (want.decision is None), name
        if want.decision is not None:
            np.testing.assert_array_equal(got.decision, want.decision, err_msg=name)
            assert got.threshold == pytest.approx(want.threshold, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("settings, words", [
    (dict(signal_chunk=-1), "signal_chunk"),
    (dict(signal_chunk=64, signal_dtype="float64"), "signal_dtype"),
    (dict(signal_chunk=64, queries=2), "--queries 1"),
    (dict(signal_chunk=64, reference_data="attacker"), "--reference-data pool"),
    (dict(signal_chunk=64, attacks="lira-online,label-only-noise"), "label-only-noise cannot stream"),
    (dict(signal_store="/tmp/x"), "--signal-store: needs --signal-chunk"),
])
def test_bad_streaming_settings_are_one_line_errors(settings, words):
    with pytest.raises(InputError) as e:
        make_config(**settings)
    assert words in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 200


def run_cli(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["miaudit", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def test_cli_audit_with_signal_chunk_writes_the_signals_block(tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    code, err = run_cli(["audit", "--dataset", "digits", "--target", "logreg", "--members", "150",
                         "--reference-models", "4", "--population", "200", "--attacks", "all",
                         "--signal-chunk", "64", "--signal-dtype", "float16", "--signal-store", str(store),
                         "--out", str(tmp_path / "out"), "--no-cache", "--quiet"], monkeypatch, capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [a["name"] for a in doc["attacks"]] == [name for name in ATTACKS if name in SCORE_READING]  # registry order
    assert doc["signals"]["dtype"] == "float16" and doc["signals"]["kept"] is True
    assert doc["signals"]["shape"]["records"] == 300 and (store / "zarr.json").exists()
    assert doc["config"]["signal_chunk"] == 64
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000


@pytest.mark.parametrize("flags", [["--signal-chunk", "-2"], ["--signal-chunk", "8", "--signal-dtype", "int8"],
                                   ["--signal-chunk", "8", "--queries", "3"],
                                   ["--signal-chunk", "8", "--reference-data", "attacker"],
                                   ["--signal-chunk", "8", "--save-predictions", "p.npz"]])
def test_cli_bad_streaming_flags_exit_2(tmp_path, monkeypatch, capsys, flags):
    code, err = run_cli(["audit", "--dataset", "digits", "--out", str(tmp_path / "out"), *flags], monkeypatch, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "results.json").exists()


def test_gradient_attacks_stream_with_the_models_attached():
    """gradient-norm and gradient-norm-lira of an MLP target, chunk by chunk (the models and records the
    audit holds, attached to the store), equal the in-memory audit's."""
    settings = dict(dataset="digits", target="mlp", members=150, reference_models=4, population=200, epochs=3,
                    cache=False, attacks=["gradient-norm", "gradient-norm-lira"], seed=2, progress=False)
    memory, streamed = audit(**settings), audit(**settings, signal_chunk=64)
    assert [a.name for a in streamed.attacks] == settings["attacks"]
    for a in memory.attacks:
        b = streamed.attack(a.name)
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-9, atol=1e-12, err_msg=a.name)
        assert b.params == a.params, a.name
