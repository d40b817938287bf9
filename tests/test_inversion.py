"""Model inversion (MIFace): it raises each class's probability, stops as told, and `miaudit invert` draws it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.fixtures.cli import run_cli
from torch import nn

from miaudit.data import load_dataset
from miaudit.errors import InputError
from miaudit.inversion import as_torch_module, invert
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.registry import fit_single, model_spec


@pytest.fixture(scope="module")
def digits_mlp(one_torch_thread):
    ds = load_dataset("digits")
    model = fit_single(model_spec("mlp", (32,)), ds.x[:600], ds.y[:600], 10, TrainingRecipe(epochs=15), 0)
    return model, ds


def _probabilities(module, x):
    with torch.no_grad():
        return torch.softmax(module(torch.from_numpy(x)), dim=1).numpy()


def test_inversion_raises_each_class_probability(digits_mlp):
    model, ds = digits_mlp
    module = as_torch_module(model)
    start = _probabilities(module, np.zeros((10, 1, 8, 8), np.float32))[np.arange(10), np.arange(10)]
    recon, reached = invert(model, 10, (1, 8, 8), max_iter=300, objective="log-probability", cost_threshold=0.05)
    assert recon.shape == (10, 1, 8, 8)
    assert (recon >= 0).all() and (recon <= 1).all()
    after = _probabilities(module, recon)
    np.testing.assert_allclose(reached, after[np.arange(10), np.arange(10)], atol=1e-5)
    assert (reached > start + 0.2).all()  # from ~0.1 at the zero image
    assert (after.argmax(1) == np.arange(10)).sum() >= 9
    # Fredrikson's cost 1 - p climbs too, and a start away from zero is honoured
    result = invert(model, 10, (1, 8, 8), classes=[3, 7], start=np.full((1, 8, 8), 0.5, np.float32), max_iter=200)
    assert list(result.classes) == [3, 7]
    at_start = _probabilities(module, np.full((2, 1, 8, 8), 0.5, np.float32))[[0, 1], [3, 7]]
    assert (result.probabilities > at_start).all()


def test_stack_target_becomes_the_same_torch_module(digits_mlp):
    model, ds = digits_mlp
    logits = as_torch_module(model)(torch.from_numpy(ds.x[:50])).detach().numpy()
    np.testing.assert_allclose(logits, model.logits(ds.x[:50]), rtol=1e-4, atol=1e-4)


def test_no_progress_stops_after_the_window_and_threshold_stops_at_once():
    flat = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        flat[1].weight.zero_()
        flat[1].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    result = invert(flat, 3, (4,), max_iter=1000, window=7, clip=None)
    assert (result.iterations == 7).all()  # a constant model never improves
    easy = invert(flat, 3, (4,), max_iter=1000, window=7, cost_threshold=0.5, clip=None)
    assert list(easy.iterations) == [7, 7, 0]  # class 2 already has p = 0.67 >= 1 - 0.5


def test_bad_settings_are_one_line_input_errors(digits_mlp):
    model, _ = digits_mlp
    for settings, field in [({"lr": -1.0}, "lr"), ({"classes": [10]}, "classes"), ({"window": 0}, "window"),
                            ({"objective": "logit"}, "objective"), ({"cost_threshold": 1.0}, "cost_threshold")]:
        with pytest.raises(InputError, match=field):
            invert(model, 10, (1, 8, 8), **settings)
    with pytest.raises(InputError, match="smoothing"):
        invert(nn.Linear(4, 3), 3, (4,), smoothing=1.0)
    with pytest.raises(InputError, match="gradients"):
        invert(object(), 3, (4,))


def test_cli_invert_writes_one_grid_per_budget_and_the_combined_figure(tmp_path, monkeypatch, capsys, one_torch_thread):
    code, out, err = run_cli(["invert", "--dataset", "digits", "--epochs", "1,3", "--members", "400",
                              "--max-iter", "40", "--smoothing", "0.5", "--out", str(tmp_path), "--quiet"],
                             monkeypatch, capsys)
    assert code == 0, err
    for name in ("inversion_1epochs.png", "inversion_3epochs.png", "inversion.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "inversion.json").read_text())
    assert [b["epochs"] for b in summary["budgets"]] == [1, 3]
    assert all(len(b["probabilities"]) == 10 for b in summary["budgets"])
    assert "1 epochs: test acc" in out


@pytest.mark.parametrize("args, field", [
    (["--epochs", "1,x"], "--epochs"), (["--target", "tree"], "--target"), (["--dataset", "wine"], "--dataset"),
    (["--lr", "-1", "--members", "300"], "lr"), (["--members", "5000"], "--members"),
])
def test_cli_invert_bad_input_exits_2_with_one_line(args, field, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["invert", "--dataset", "digits", *args, "--out", str(tmp_path / "o"), "--quiet"],
                           monkeypatch, capsys)
    assert code == 2
    assert err.startswith("error: ") and field in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
