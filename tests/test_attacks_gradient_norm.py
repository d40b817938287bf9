"""White-box gradient norms: equal to a one-by-one autograd computation, per layer and in total,
for torch modules (torch.func) and MLP stacks (closed form); the attack finds memorised records."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from miaudit.attacks.registry import ATTACKS
from miaudit.attacks.white_box import gradient_norms, module_gradient_norms, stack_gradient_norms
from miaudit.data.splits import balanced_masks
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.nets import SmallCNN
from miaudit.models.references import ReferenceModels
from miaudit.models.wrappers import StackTarget, TorchTarget
from miaudit.signals.inputs import AttackInputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def one_by_one(module: nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Squared gradient norm per parameter tensor, record by record with loss.backward()."""
    out: dict[str, list[float]] = {name: [] for name, _ in module.named_parameters()}
    for xi, yi in zip(x, y, strict=True):
        module.zero_grad()
        F.cross_entropy(module(torch.from_numpy(xi[None])), torch.tensor([int(yi)])).backward()
        for name, p in module.named_parameters():
            out[name].append(float(p.grad.double().pow(2).sum()))
    return {name: np.array(v) for name, v in out.items()}


def test_torch_func_norms_match_autograd_one_record_at_a_time():
    torch.manual_seed(0)
    module = SmallCNN(1, 8, 3).eval()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(37, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 37)
    norms = module_gradient_norms(module, x, y, batch_size=16)  # batches of 16, 16 and 5
    squares = one_by_one(module, x, y)
    layers = {name.rpartition(".")[0] for name in squares}
    assert set(norms) == {"all"} | layers
    for layer in layers:
        want = np.sqrt(sum(v for name, v in squares.items() if name.startswith(layer + ".")))
        np.testing.assert_allclose(norms[layer], want, rtol=1e-4)
    np.testing.assert_allclose(norms["all"], np.sqrt(sum(squares.values())), rtol=1e-4)
    np.testing.assert_allclose(gradient_norms(TorchTarget("cnn", module, 3), x, y)["all"], norms["all"])


def test_mlp_stack_norms_match_autograd_for_every_model():
    rng = np.random.default_rng(2)
    widths = (6, 7, 5, 4)
    stack = MLPStack([rng.normal(size=(3, a, b)).astype(np.float32) for a, b in zip(widths, widths[1:])],
                     [rng.normal(size=(3, b)).astype(np.float32) for b in widths[1:]])
    x, y = rng.normal(size=(29, 6)).astype(np.float32), rng.integers(0, 4, 29)
    norms = stack_gradient_norms(stack, x, y, batch_size=8)
    assert norms["all"].shape == (3, 29)
    for k in range(3):
        layers = []
        for w, b in zip(stack.weights, stack.biases, strict=True):
            linear = nn.Linear(*w.shape[1:])
            linear.weight.data, linear.bias.data = torch.from_numpy(w[k].T.copy()), torch.from_numpy(b[k].copy())
            layers += [linear, nn.ReLU()]
        module = nn.Sequential(*layers[:-1])
        squares = one_by_one(module, x, y)
        for i in range(3):
            want = np.sqrt(squares[f"{2 * i}.weight"] + squares[f"{2 * i}.bias"])
            np.testing.assert_allclose(norms[f"layer{i}"][k], want, rtol=1e-4)
        np.testing.assert_allclose(norms["all"][k], np.sqrt(sum(squares.values())), rtol=1e-4)
        np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), stack.logits(x)[k], atol=1e-4)
    one = gradient_norms(StackTarget("mlp", stack.select(1)), x, y)
    np.testing.assert_allclose(one["all"], norms["all"][1])


def memorised(seed: int, x: np.ndarray, y: np.ndarray, member: np.ndarray) -> nn.Module:
    """An MLP trained to memorise random labels of the member records."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[member]), torch.from_numpy(y[member])
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


def test_gradient_norm_attacks_find_memorised_records():
    rng = np.random.default_rng(3)
    n, k = 120, 4
    x, y = rng.normal(size=(n, 10)).astype(np.float32), rng.integers(0, 3, n)
    member = rng.permutation(n) < n // 2
    ref_in = balanced_masks(k, n, 5)
    target = TorchTarget("mlp", memorised(0, x, y, member), 3)
    refs = ReferenceModels(None, [TorchTarget("mlp", memorised(1 + j, x, y, ref_in[j]), 3) for j in range(k)],
                           0, 0.0, 0.0)
    logits = target.logits(x)[:, None]
    ref_logits = refs.logits(x)[:, :, None]
    inputs = AttackInputs(logits, y, ref_logits, ref_in, ref_logits, ref_in, y, np.zeros((0, 1, 3)),
                          np.zeros((k, 0, 1, 3)), np.zeros(0, np.int64), np.arange(n), np.arange(n), x, target, refs)
    plain = ATTACKS["gradient-norm"].run(inputs)
    np.testing.assert_allclose(plain.scores, -np.log(gradient_norms(target, x, y)["all"]))
    assert plain.queries is None and roc_auc_score(member, plain.scores) > 0.8
    calibrated = ATTACKS["gradient-norm-lira"].run(inputs)
    assert calibrated.params["calibration"] == "online" and roc_auc_score(member, calibrated.scores) > 0.8
    np.testing.assert_array_equal(calibrated.decision, calibrated.scores > 0)
