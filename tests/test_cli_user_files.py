"""The user's files on the command line: each bad file is one line on stderr and exit code 2."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from sklearn.tree import DecisionTreeClassifier
from tests.fixtures.cli import run_cli


def onnx_linear(path, n_features: int, n_classes: int = 10):
    module = torch.nn.Linear(n_features, n_classes)
    torch.onnx.export(module, (torch.zeros(2, n_features),), str(path), dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return path


def bad_files(tmp):
    corrupt = tmp / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not an onnx graph" * 10)
    narrow = onnx_linear(tmp / "narrow.onnx", 30)
    tree = DecisionTreeClassifier().fit(np.random.default_rng(0).random((40, 64)), np.arange(40) % 10)
    (tmp / "tree.pkl").write_bytes(pickle.dumps(tree))
    rng = np.random.default_rng(0)
    n, k = 50, 4
    np.savez(tmp / "wrong_k.npz", target_logits=rng.normal(size=(n, 3)), labels=np.arange(n) % 3,
             membership=np.arange(n) % 2, reference_logits=rng.normal(size=(k - 1, n, 3)),
             reference_masks=rng.random((k, n)) < 0.5)
    return {
        "corrupted ONNX": (["--target", str(corrupt)], "corrupt.onnx: not an ONNX model"),
        "wrong input width": (["--target", str(narrow), "--reference-models", "0"],
                              "narrow.onnx: input 'x' takes records of shape (30), the data has (1, 8, 8)"),
        "pickle without --trust-pickle": (["--target", str(tmp / "tree.pkl")], "--trust-pickle"),
        "reference logits with the wrong K": (["--predictions", str(tmp / "wrong_k.npz")],
                                              "reference_logits: shape (3, 50, 3), expected (4, 50, 3)"),
        "save-target of a user's file": (["--target", str(narrow), "--save-target", str(tmp / "t.onnx")],
                                         "--save-target"),
        "unknown model suffix": (["--target", str(tmp / "model.h5")], "model.h5"),
    }


@pytest.mark.parametrize("case", ["corrupted ONNX", "wrong input width", "pickle without --trust-pickle",
                                  "reference logits with the wrong K", "save-target of a user's file",
                                  "unknown model suffix"])
def test_bad_user_file_is_one_line(case, tmp_path, monkeypatch, capsys):
    args, must_mention = bad_files(tmp_path)[case]
    out = tmp_path / "out"
    code, stdout, err = run_cli(["audit", "--quiet", "--dataset", "digits", "--out", str(out), *args],
                                monkeypatch, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (stdout, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert must_mention in lines[0], lines[0]
    assert not out.exists()


def test_trusted_pickle_audits(tmp_path, monkeypatch, capsys):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)  # a user's model of digits takes them as published: pixel counts 0..16
    tree = DecisionTreeClassifier(random_state=0).fit(x[:400], y[:400])
    (tmp_path / "tree.pkl").write_bytes(pickle.dumps(tree))
    code, stdout, err = run_cli(["audit", "--quiet", "--dataset", "digits", "--target", str(tmp_path / "tree.pkl"),
                                 "--trust-pickle", "--reference-models", "2",
                                 "--attacks", "threshold-loss,lira-offline",
                                 "--out", str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["target_source"]["reference_models"].startswith("clones of the target's estimator")
    assert results["target"]["test_accuracy"] > 0.5
