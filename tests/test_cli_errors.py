"""Bad input on the CLI: one line on stderr naming the problem, exit code 2, nothing in --out."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from tests.fixtures.cli import run_cli


def write_csv(path, rows=60, label=None, nan=False):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(rows, 4)), columns=list("abcd"))
    if label is not None:
        df["label"] = label(rows)
    if nan:
        df.loc[3, "b"] = np.nan
    df.to_csv(path, index=False)
    return path


def write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def cases(tmp):
    good = write_csv(tmp / "good.csv", label=lambda n: np.arange(n) % 3)
    cfg = tmp / "cfg.json"
    cfg.write_text('{"dataset": "digits", "members": 100, "memberz": 3}')
    a_file = tmp / "a_file"
    a_file.write_text("x")
    big = pd.DataFrame({"a": np.r_[1e300, np.ones(59)], "b": np.arange(60.0), "label": np.arange(60) % 2})
    big.to_csv(tmp / "big.csv", index=False)
    tree = ["--target", "tree", "--reference-models", "0", "--attacks", "threshold-loss"]
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
        "label not a whole number": (
            ["--dataset", str(write_csv(tmp / "half.csv", label=lambda n: np.arange(n) % 3 + 0.5))], "label"),
        "every row missing a value": (
            ["--dataset", write(tmp / "gaps.csv", "a,b,c,label\n1,?,x,0\n2,5,,1\n3,NA,y,0\n")],
            "every row has a missing"),
        "unwritable out": (["--dataset", str(good), "--out", str(a_file / "sub")], "--out"),
        "config unknown key": (["--config", str(cfg)], "memberz"),
        "bad recipe value": (["--lr", "-0.1"], "lr"),
        "cross-dataset overlap": (["--dataset", "digits", "--nonmember-dataset", "digits", "--members", "300"],
                                  "overlap"),
        # options without bounds or with loose parsing
        "a million reference models": (["--reference-models", "1000000"], "reference_models: at most 1024"),
        "infinite lr": (["--lr", "inf", *tree], "lr: Input should be a finite number"),
        "NaN weight decay": (["--weight-decay", "nan"], "weight_decay: Input should be a finite number"),
        "infinite delta": (["--delta", "inf"], "delta"),
        "dropout of one": (["--dropout", "1"], "dropout"),
        "negative width": (["--hidden=-5"], "hidden: layer widths must be positive integers"),
        "zero width": (["--hidden", "256,0"], "hidden"),
        "width not a number": (["--hidden", "wide"], "hidden"),
        "negative seed": (["--seed=-1", *tree], "seed: Input should be greater than or equal to 0"),
        "seed beyond 32 bits": (["--seed", str(2**40), *tree], "seed"),
        "class names not numbers": (["--keep-classes", "a,b"], "keep_classes: class numbers"),
        "negative class": (["--keep-classes", "0,-1"], "keep_classes"),
        "epochs without end": (["--epochs", "1000000000"], "epochs"),
        "no attack named": (["--attacks", ","], "attacks: give attack names"),
        "recipe not a table": (["--config", write(tmp / "r.toml", 'recipe = "fast"\n')], "recipe: must be a table"),
        "recipe a number": (["--config", write(tmp / "r.json", '{"recipe": 5}')], "recipe: must be a table"),
        "config not UTF-8": (["--config", write(tmp / "latin.yaml", b"dataset: caf\xe9\n")], "not UTF-8"),
        "config key not a name": (["--config", write(tmp / "k.yaml", "1: 2\n")], "unknown setting 1"),
        "config is a directory": (["--config", str(tmp)], "is not a file"),
        "n_jobs of zero": (["--config", write(tmp / "j.json", '{"n_jobs": 0}')], "n_jobs"),
        "diverging training": (["--lr", "1e30", "--reference-models", "0", "--attacks", "threshold-loss"],
                               "training diverged: the target's outputs are not finite (NaN) — lower --lr (now 1e+30)"),
        # paths that are not what they claim
        "data dir is a file": (["--data-dir", str(a_file), *tree], "--data-dir"),
        "data dir missing": (["--data-dir", str(tmp / "nowhere"), *tree], "--data-dir"),
        "cache dir is a file": (["--cache-dir", str(a_file), "--target", "tree", "--reference-models", "2"],
                                "--cache-dir"),
        "cache dir below a file": (["--cache-dir", str(a_file / "c"), "--target", "tree", "--reference-models", "2"],
                                   "--cache-dir"),
        # malformed files
        "float64 beyond float32": (["--dataset", str(tmp / "big.csv"), *tree], "beyond float32's range"),
        "duplicate label column": (["--dataset", write(tmp / "dupl.csv", "a,label,label\n1,0,1\n2,1,0\n")],
                                   "duplicate column name 'label' (columns 1, 2): the label"),
        "empty csv": (["--dataset", write(tmp / "empty.csv", "")], "empty file"),
        "header only": (["--dataset", write(tmp / "header.csv", "a,b,label\n")], "no records"),
        "member column not 0/1": (["--dataset", write(tmp / "mem.csv", "a,m,label\n1,2,0\n2,1,1\n"),
                                   "--member-column", "m"], "m: value 2 in row 0 is not 0/1"),
        "members file id unknown": (["--dataset", "digits", "--members-file", write(tmp / "ids.txt", "3\n99999\n")],
                                    "id '99999' is not a record id"),
        "csv not UTF-8": (["--dataset", write(tmp / "latin.csv", b"caf\xe9,b,label\n1,2,0\n3,4,1\n")], "latin.csv"),
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


def test_a_damaged_cache_entry_is_one_warning_line_and_the_audit_completes(tmp_path, monkeypatch, capsys):
    args = ["audit", "--quiet", "--target", "tree", "--reference-models", "2", "--attacks", "lira-offline",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    code, first, _ = run_cli(args, monkeypatch, capsys)
    victim = sorted((tmp_path / "cache").glob("*/*.pkl"))[0]
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    victim.write_bytes(bytes(blob))
    code, again, err = run_cli(args, monkeypatch, capsys)
    assert code == 0
    assert err.strip().splitlines() == [err.strip()] and err.startswith(f"warning: model cache: discarded {victim}")
    assert [line for line in again.splitlines() if "lira" in line][0].split()[:3] == \
        [line for line in first.splitlines() if "lira" in line][0].split()[:3]
