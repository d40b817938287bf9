"""Property: whatever the options and however malformed the files, `miaudit audit` either succeeds with a
complete output directory (exit 0, results.json valid) or fails with exit 2, one line on stderr and
nothing written to --out. Never a traceback, exit 1 or a half-written report."""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from miaudit.cli import main

FLOATS = st.one_of(st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1", "1e-3", "0.5", "1e400", "abc", "1e30"]),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))
ATTACKS = ["threshold-loss", "threshold-confidence", "lira-offline", "lira-online", "rmia", "population",
           "shokri-lr", "telepathy", ""]
CSV_FLAWS = ["none", "text cell", "duplicate column", "empty", "header only", "not utf-8", "nan", "huge value",
             "one class", "string labels", "missing label"]
CONFIGS = {
    "valid": '{"members": 30, "population": 100}',
    "unknown key": '{"memberz": 3}',
    "recipe not a table": '{"recipe": [1, 2]}',
    "bad recipe": '{"recipe": {"lr": -1}}',
    "not json": '{"members": ',
    "not a mapping": "[1, 2]",
    "hidden as floats": '{"hidden": [2.5]}',
    "n_jobs zero": '{"n_jobs": 0}',
    "not utf-8": b'{"dataset": "caf\xe9"}',
}


def write_csv(path: Path, flaw: str, rng: np.random.Generator) -> None:
    """A 60-row table: 3 numeric features and a label column, with one flaw."""
    x = rng.normal(size=(60, 3))
    labels = [str(v) for v in np.arange(60) % 3]
    header = ["a", "b", "c", "label"]
    if flaw == "duplicate column":
        header[1] = "a"
    if flaw == "one class":
        labels = ["1"] * 60
    if flaw == "string labels":
        labels = [["cat", "dog"][i % 2] for i in range(60)]
    rows = [[f"{v:.6g}" for v in row] + [label] for row, label in zip(x, labels)]
    cell = rows[int(rng.integers(60))]
    if flaw == "text cell":
        cell[int(rng.integers(3))] = "x"
    if flaw == "nan":
        cell[0] = "nan"
    if flaw == "huge value":
        cell[1] = "1e300"
    if flaw == "missing label":
        cell[3] = ""
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    if flaw == "empty":
        text = ""
    if flaw == "header only":
        text = ",".join(header) + "\n"
    data = text.encode()
    if flaw == "not utf-8":
        data = b"caf\xe9," + data
    path.write_bytes(data)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", ["miaudit", *argv]), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code
        else:
            code = 0
    return code, out.getvalue(), err.getvalue()


VALID = {
    "--reference-models": st.integers(0, 2).map(str),
    "--members": st.integers(20, 40).map(str),
    "--non-members": st.integers(20, 40).map(str),
    "--population": st.integers(0, 150).map(str),
    "--seed": st.integers(0, 2**32 - 1).map(str),
    "--lr": st.sampled_from(["1e-3", "0.5"]), "--weight-decay": st.sampled_from(["0", "1e-4"]),
    "--dropout": st.sampled_from(["0", "0.5"]), "--delta": st.sampled_from(["1e-5", "0.01"]),
    "--epochs": st.integers(1, 2).map(str), "--batch-size": st.integers(1, 64).map(str),
    "--hidden": st.sampled_from(["8", "16,8", "4-4"]), "--keep-classes": st.sampled_from(["0,1", "2,0,1"]),
    "--queries": st.integers(1, 3).map(str), "--precision": st.sampled_from(["auto", "float32"]),
    "--input-scaling": st.sampled_from(["auto", "none", "standard"]),
    "--reference-data": st.sampled_from(["pool", "attacker"]), "--optimizer": st.sampled_from(["adam", "sgd"]),
}
ANY = {
    "--reference-models": st.one_of(st.integers(-1, 2).map(str), st.just("1000000")),
    "--members": st.one_of(st.integers(-1, 40).map(str), st.just("5000"), st.just("x")),
    "--non-members": st.integers(-1, 40).map(str),
    "--population": st.one_of(st.integers(-1, 150).map(str), st.just("100000000")),
    "--seed": st.integers(-3, 2**33).map(str),
    "--lr": FLOATS, "--weight-decay": FLOATS, "--dropout": FLOATS, "--delta": FLOATS,
    "--epochs": st.integers(-1, 2).map(str), "--batch-size": st.integers(-1, 64).map(str),
    "--hidden": st.text("0123456789,- ab", max_size=6), "--keep-classes": st.text("0123,-a", max_size=5),
    "--queries": st.integers(0, 40).map(str), "--precision": st.sampled_from(["float16", "bf16"]),
    "--input-scaling": st.sampled_from(["minmax", ""]), "--reference-data": st.sampled_from(["other"]),
    "--optimizer": st.sampled_from(["lbfgs"]), "--label-column": st.sampled_from(["a", "nope", ""]),
}


@st.composite
def audits(draw) -> dict:
    """Mostly valid settings with at most one kind of damage (an option, the data file, the config, the cache)."""
    broken = draw(st.sampled_from(["nothing", "option", "file", "config", "cache"]))
    options = {flag: draw(strategy) for flag, strategy in VALID.items() if draw(st.integers(0, 3)) == 0}
    if broken == "option":
        for flag in draw(st.lists(st.sampled_from(sorted(ANY)), min_size=1, max_size=2, unique=True)):
            options[flag] = draw(ANY[flag])
    options.setdefault("--reference-models", draw(st.integers(0, 2).map(str)))
    options.setdefault("--population", "100")
    options.setdefault("--members", "30")
    targets = ["tree", "logreg", "transformer"] if broken == "option" else ["tree", "logreg"]
    options["--target"] = draw(st.sampled_from(targets))
    names = ATTACKS if broken == "option" else ATTACKS[:-2]
    options["--attacks"] = ",".join(draw(st.lists(st.sampled_from(names), min_size=1, max_size=3)))
    datasets = ["digits", "csv", "npz-missing"] if broken == "file" else ["digits", "csv"]
    return {"options": options, "dataset": draw(st.sampled_from(datasets)),
            "flaw": draw(st.sampled_from(CSV_FLAWS)) if broken == "file" else "none",
            "config": draw(st.sampled_from([*CONFIGS] if broken == "config" else [None, "valid"])),
            "cache": draw(st.sampled_from(["file"] if broken == "cache" else ["none", "dir"])),
            "seed": draw(st.integers(0, 2**16))}


def build_argv(case: dict, tmp: Path) -> list[str]:
    argv = ["audit", "--quiet", "--out", str(tmp / "out")]
    for flag, value in case["options"].items():
        argv.append(f"{flag}={value}")
    if case["dataset"] == "csv":
        write_csv(tmp / "data.csv", case["flaw"], np.random.default_rng(case["seed"]))
        argv += ["--dataset", str(tmp / "data.csv")]
    elif case["dataset"] == "npz-missing":
        argv += ["--dataset", str(tmp / "missing.npz")]
    if case["config"]:
        content = CONFIGS[case["config"]]
        path = tmp / "audit.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        argv += ["--config", str(path)]
    if case["cache"] == "none":
        argv.append("--no-cache")
    else:
        (tmp / "a_file").write_text("x")
        argv += ["--cache-dir", str(tmp / ("cache" if case["cache"] == "dir" else "a_file"))]
    return argv


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                    HealthCheck.too_slow])
@given(case=audits())
def test_every_run_succeeds_completely_or_fails_on_one_line(case):
    with tempfile.TemporaryDirectory(prefix="miaudit-fuzz-") as name:
        tmp = Path(name)
        argv = build_argv(case, tmp)
        code, out, err = run(argv)
        event(f"exit {code}")
        out_dir = tmp / "out"
        if code == 0:
            results = json.loads((out_dir / "results.json").read_text())
            assert results["attacks"] and all(np.isfinite(a["auc"]) for a in results["attacks"]), argv
            for name in ("report.html", "scores.csv", "roc.png"):
                assert (out_dir / name).is_file(), (argv, name)
            assert all(line.startswith("warning: ") for line in err.splitlines() if line.strip()), (argv, err)
        else:
            assert code == 2, (argv, code, err)
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
            assert not out_dir.exists() or not any(out_dir.iterdir()), argv
