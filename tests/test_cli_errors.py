"""Bad input on the CLI: one line on stderr naming the problem, exit code 2, nothing in --out."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit.cli import main


def run_cli(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["miaudit", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def write_csv(path, rows=60, label=None, nan=False):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(rows, 4)), columns=list("abcd"))
    if label is not None:
        df["label"] = label(rows)
    if nan:
        df.loc[3, "b"] = np.nan
    df.to_csv(path, index=False)
    return path


def cases(tmp):
    good = write_csv(tmp / "good.csv", label=lambda n: np.arange(n) % 3)
    cfg = tmp / "cfg.json"
    cfg.write_text('{"dataset": "digits", "members": 100, "memberz": 3}')
    a_file = tmp / "a_file"
    a_file.write_text("x")
    return {
        "unknown dataset": (["--dataset", "no-such-set"], "no-such-set"),
        "unknown target": (["--target", "transformer"], "transformer"),
        "unknown attack": (["--attacks", "threshold-loss,telepathy"], "telepathy"),
        "missing dataset file": (["--dataset", str(tmp / "missing.csv")], "missing.csv"),
        "too many members": (["--members", "5000"], "--members"),
        "zero members": (["--members", "0"], "members"),
        "shadow attack without shadows": (["--reference-models", "0", "--attacks", "shokri-lr"], "shokri-lr"),
        "online attack without pool references": (
            ["--reference-data", "attacker", "--attacks", "lira-online"], "lira-online"),
        "label column missing": (["--dataset", str(write_csv(tmp / "nolabel.csv"))], "label"),
        "labels out of range": (
            ["--dataset", str(write_csv(tmp / "neg.csv", label=lambda n: np.arange(n) % 3 - 1))], "label"),
        "NaN feature": (
            ["--dataset", str(write_csv(tmp / "nan.csv", label=lambda n: np.arange(n) % 3, nan=True))], "NaN"),
        "unwritable out": (["--dataset", str(good), "--out", str(a_file / "sub")], "--out"),
        "config unknown key": (["--config", str(cfg)], "memberz"),
        "bad recipe value": (["--lr", "-0.1"], "lr"),
        "cross-dataset overlap": (["--dataset", "digits", "--nonmember-dataset", "digits", "--members", "300"],
                                  "overlap"),
    }


def pytest_generate_tests(metafunc):
    """``case`` takes every name cases() defines (its files written once to a scratch folder)."""
    if "case" in metafunc.fixturenames:
        with tempfile.TemporaryDirectory() as scratch:
            metafunc.parametrize("case", list(cases(Path(scratch))))


def test_bad_input_exits_2_with_one_line(case, tmp_path, monkeypatch, capsys):
    args, must_mention = cases(tmp_path)[case]
    out_dir = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", str(out_dir)]
    code, out, err = run_cli(["audit", "--quiet", "--epochs", "1", *args], monkeypatch, capsys)
    assert code == 2, (case, out, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert must_mention.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_unknown_flag_is_a_usage_error(monkeypatch, capsys):
    code, _, err = run_cli(["audit", "--no-such-flag"], monkeypatch, capsys)
    assert code == 2
    assert "no-such-flag" in err
