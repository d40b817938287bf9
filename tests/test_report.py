"""report: the files written for a small fake audit, the contract checker, atomic writing."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from miaudit import report
from miaudit.errors import InputError
from miaudit.metrics import compute_metrics
from miaudit.report.files import parquet_available, scores_table
from miaudit.report.html import render_html
from miaudit.results import AttackOutcome, AuditResult, TargetSummary

CHECKER = "/work/shared/tools/check-results"
N = 300


def fake_result(strengths=(("threshold-loss", 0.5), ("lira-online", 2.0), ("rmia", 1.0))) -> AuditResult:
    rng = np.random.default_rng(0)
    membership = np.r_[np.ones(N // 2, bool), np.zeros(N - N // 2, bool)]
    labels = rng.integers(0, 4, N)
    attacks = []
    for name, strength in strengths:
        scores = rng.normal(size=N) + strength * membership
        attacks.append(AttackOutcome(name, "black-box", scores,
                                     compute_metrics(scores, membership, labels=labels), 0.25))
    return AuditResult(
        miaudit_version="0.1.0",
        config={"dataset": "digits", "target": "mlp", "members": N // 2, "reference_models": 4, "seed": 0},
        target=TargetSummary("mlp", 0.99, 0.9, N // 2, N - N // 2),
        attacks=attacks,
        timing={"total_s": 1.5, "train_target_s": 0.5, "train_reference_s": 1.0, "reference_models": 4},
        record_index=np.arange(1000, 1000 + N),
        membership=membership,
        labels=labels,
        notes=["offline attacks used <4> OUT models & no IN models"],
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = fake_result()
    out = tmp_path_factory.mktemp("run") / "nested" / "out"
    return result, out, report.write_report(result, out)


def test_writes_the_four_files(written):
    _, out, paths = written
    for name in ("results.json", "report.html", "roc.png", "scores.csv"):
        assert paths[name] == out / name and paths[name].stat().st_size > 0
    assert paths["roc.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_results_json_passes_contract_checker(written):
    _, out, _ = written
    run = subprocess.run([sys.executable, CHECKER, str(out / "results.json"),
                          "--attacks", "threshold-loss,lira-online,rmia"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["attacks"][1]["name"] == "lira-online"
    assert set(doc["attacks"][1]["tpr_at_fpr"]) >= {"0.001", "0.01"}
    assert set(doc["attacks"][1]["per_class"]) == {"0", "1", "2", "3"}


def test_scores_csv_columns_and_values(written):
    result, out, paths = written
    table = pd.read_csv(out / "scores.csv")
    assert list(table.columns) == ["record_index", "label", "is_member", "threshold-loss", "lira-online", "rmia"]
    assert table["record_index"].tolist() == result.record_index.tolist()
    assert table["is_member"].astype(bool).tolist() == result.membership.tolist()
    assert np.array_equal(table["rmia"].to_numpy(), result.attack("rmia").scores)
    if parquet_available():
        pd.testing.assert_frame_equal(pd.read_parquet(paths["scores.parquet"]), scores_table(result))


def test_html_is_self_contained_and_escaped(written):
    _, out, _ = written
    page = (out / "report.html").read_text()
    for name in ("threshold-loss", "lira-online", "rmia"):
        assert name in page
    assert page.count('<img src="data:image/png;base64,') == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "&lt;4&gt; OUT models &amp; no IN models" in page
    # Best attack (strongest signal) comes first in the table and heads the per-class section.
    assert page.index("lira-online") < page.index("rmia") < page.index("threshold-loss")
    assert "Per class: lira-online" in page


def test_html_escapes_hostile_config():
    result = fake_result(strengths=(("threshold-loss", 1.0),))
    result.config["dataset"] = "<script>alert(1)</script>"
    page = render_html(result, b"png", b"png")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_out_dir_that_is_a_file_is_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="--out: .* is not writable"):
        report.write_report(fake_result(), blocker)
    with pytest.raises(InputError, match="--out"):
        report.write_report(fake_result(), blocker / "sub")


def test_failure_leaves_no_partial_output(tmp_path, monkeypatch):
    def broken(result, path):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "write_scores_csv", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        report.write_report(fake_result(strengths=(("rmia", 1.0),)), out)
    assert list(out.iterdir()) == []
