"""DP-SGD: the stack's per-example clipping against Opacus, the accountant's ε in results.json, and
an audit that sees less of a DP-SGD target."""
from __future__ import annotations

import json
import math
import pickle
from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import miaudit
from miaudit.errors import InputError
from miaudit.models import dp_sgd
from miaudit.models.nets import SmallCNN
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import train_mlp_stack
from miaudit.models.train import seeded_module, torch_logits, train_torch_model

opacus = pytest.importorskip("opacus")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def _opacus_mlp(x, y, widths, recipe, seed, sigma):
    """The stack's model trained by Opacus: nn.Linear layers with the stack's init and record order,
    GradSampleModule + DPOptimizer (expected_batch_size = batch_size)."""
    gen = torch.Generator().manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in pairwise(widths)]
    with torch.no_grad():
        for layer in layers:
            bound = 1 / np.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)
    net = opacus.GradSampleModule(nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())][:-1]))
    opt = opacus.optimizers.DPOptimizer(torch.optim.Adam(net.parameters(), lr=recipe.lr), noise_multiplier=sigma,
                                        max_grad_norm=recipe.dp_max_grad_norm, expected_batch_size=recipe.batch_size)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(recipe.epochs):
        for batch in torch.from_numpy(rng.permutation(len(x))).split(recipe.batch_size):
            opt.zero_grad()
            F.cross_entropy(net(xt[batch]), yt[batch]).backward()
            opt.step()
    with torch.no_grad():
        return net(xt).numpy()


def test_stack_clipping_is_opacus_clipping(data):
    """σ = 0 isolates per-example clipping: a clipping norm that binds, 3 epochs with a short last batch."""
    x, y = data
    recipe = TrainingRecipe(epochs=3, batch_size=48, lr=1e-2, dp_noise_multiplier=0.0, dp_max_grad_norm=0.05)
    ours = train_mlp_stack(x, y, np.ones((1, len(x)), bool), 3, (16,), recipe, [4], "float32").logits(x)[0]
    theirs = _opacus_mlp(x, y, (12, 16, 3), recipe, 4, 0.0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    plain = train_mlp_stack(x, y, np.ones((1, len(x)), bool), 3, (16,),
                            TrainingRecipe(epochs=3, batch_size=48, lr=1e-2), [4], "float32").logits(x)[0]
    assert np.abs(plain - ours).max() > 1e-2  # clipping did bind


def test_stack_noise_is_per_model_and_seeded(data):
    x, y = data
    recipe = TrainingRecipe(epochs=2, batch_size=32, lr=1e-2, dp_noise_multiplier=1.0)
    masks = np.random.default_rng(1).random((3, len(x))) < 0.5
    together = train_mlp_stack(x, y, masks, 3, (8,), recipe, [1, 2, 3], "float32").logits(x)
    alone = train_mlp_stack(x, y, masks[1:2], 3, (8,), recipe, [2], "float32").logits(x)[0]
    np.testing.assert_allclose(alone, together[1], rtol=1e-4, atol=1e-4)
    clipped_only = train_mlp_stack(x, y, masks[1:2], 3, (8,), recipe.model_copy(update={"dp_noise_multiplier": 0.0}),
                                   [2], "float32").logits(x)[0]
    assert np.abs(clipped_only - alone).max() > 1e-3  # the noise is there


def test_accountant_solves_epsilon_and_reports_it_back():
    recipe = TrainingRecipe(epochs=10, batch_size=50, dp_epsilon=2.0, dp_delta=1e-5)
    sigma = dp_sgd.noise_multiplier(recipe, 1000)
    assert 0.3 < sigma < 20
    block = dp_sgd.privacy_block(recipe, 1000)
    assert block["noise_multiplier"] == sigma and block["steps"] == 200 and block["sample_rate"] == 0.05
    assert 1.9 < block["accountant_epsilon"] <= 2.0
    more_noise = dp_sgd.accountant_epsilon(2 * sigma, 0.05, 200, 1e-5)
    assert more_noise < block["accountant_epsilon"]
    assert dp_sgd.accountant_epsilon(0.0, 0.05, 200, 1e-5) == math.inf


def test_opacus_trains_a_dp_cnn_and_leaves_a_plain_module():
    images = np.random.default_rng(2).random((96, 1, 8, 8)).astype(np.float32)
    labels = (images[:, 0, :4].mean((1, 2)) > 0.5).astype(np.int64)
    recipe = TrainingRecipe(epochs=2, batch_size=16, lr=3e-3, dp_noise_multiplier=1.0)
    outs = []
    for _ in range(2):
        module = seeded_module(lambda: SmallCNN(1, 8, 2), seed=0)
        train_torch_model(module, images, labels, recipe, 0, "float32")
        outs.append(torch_logits(module, images))
        assert not any(m._forward_hooks or m._backward_hooks for m in module.modules())
        pickle.dumps(module)
    np.testing.assert_array_equal(outs[0], outs[1])  # seeded noise
    assert np.isfinite(outs[0]).all()


def test_dp_sgd_reports_a_finite_epsilon_and_lowers_the_attack_auc(tmp_path):
    kw = dict(dataset="digits", target="mlp", hidden=(128,), members=100, reference_models=4, population=300,
              cache=False, attacks=["threshold-loss", "lira-online"], epochs=60, lr=3e-3, seed=2, progress=False)
    plain = miaudit.audit(**kw)
    private = miaudit.audit(**kw, dp_epsilon=1.0)
    assert plain.privacy is None and "privacy" not in plain.to_dict()
    eps = private.privacy["accountant_epsilon"]
    assert math.isfinite(eps) and 0.9 < eps <= 1.0
    assert plain.attack("lira-online").metrics.auc > 0.7
    assert private.attack("lira-online").metrics.auc < plain.attack("lira-online").metrics.auc - 0.15
    assert private.attack("threshold-loss").metrics.auc < plain.attack("threshold-loss").metrics.auc
    private.save(tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["privacy"]["dp_sgd"] is True and doc["privacy"]["accountant_delta"] == 1e-5


@pytest.mark.parametrize("bad", [dict(target="tree", dp_epsilon=1.0), dict(dp_epsilon=1.0, dp_noise_multiplier=1.0),
                                 dict(dp_epsilon=-1.0), dict(dp_max_grad_norm=0.0, dp_noise_multiplier=1.0)])
def test_bad_dp_settings_are_one_line_errors(bad):
    with pytest.raises(InputError) as e:
        miaudit.audit(progress=False, **bad)
    assert "\n" not in str(e.value)
