"""Stacked CNN training and inference (models/cnn_stack.py, cnn_models.py, cnn_spec.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from miaudit.errors import InputError
from miaudit.models.cnn_models import CNNStack, stacked_forward
from miaudit.models.cnn_spec import build_module, init_params, parse_spec, plan_layers, preset_layers
from miaudit.models.cnn_stack import cnn_train_flops, train_cnn_stack
from miaudit.models.recipe import TrainingRecipe

SPEC = "conv(4,3,2,same),maxpool(2,1),conv(6,3,1,valid),maxpool(2,2),dense(8),dense(3)"
SHAPE = (2, 9, 9)  # odd size: 'same' with stride 2 pads unevenly


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, *SHAPE)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    masks = rng.random((3, 40)) < 0.5
    return x, y, masks


def _plan(spec: str = SPEC, shape=SHAPE, n_classes: int = 3):
    return plan_layers(parse_spec(spec), shape, n_classes)


def _train_alone(plan, x, y, recipe, seed):
    """A plain nn.Sequential, trained by itself: same init, same record order, torch Adam."""
    module = build_module(plan)
    params = [p for p in init_params(plan, torch.Generator().manual_seed(seed)) if p is not None]
    linear = [m for m in module if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for m, (w, b) in zip(linear, params, strict=True):
            m.weight.copy_(w)
            m.bias.copy_(b)
    opt = torch.optim.Adam(module.parameters(), lr=recipe.lr)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(recipe.epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x), recipe.batch_size):
            rows = torch.from_numpy(order[s:s + recipe.batch_size])
            loss = F.cross_entropy(module(xt[rows]), yt[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [t.detach().numpy() for t in module.parameters()]


def test_stack_equals_models_trained_one_by_one(data):
    x, y, masks = data
    plan = _plan()
    recipe = TrainingRecipe(epochs=2, batch_size=8, lr=1e-2)
    seeds = [3, 11, 7]
    stack = train_cnn_stack(plan, x, y, masks, recipe, seeds, precision="float32")
    for k in range(3):
        alone = _train_alone(plan, x[masks[k]], y[masks[k]], recipe, seeds[k])
        state = stack.state(k)
        stacked = [state[key] for key in sorted(state, key=lambda s: (int(s[1:]), s[0] == "b"))]
        assert len(stacked) == len(alone)
        for a, b in zip(stacked, alone, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def test_same_model_whatever_k_and_workers(data, monkeypatch):
    from miaudit.models import cnn_stack

    x, y, masks = data
    plan = _plan()
    recipe = TrainingRecipe(epochs=2, batch_size=8, lr=1e-2)
    both = train_cnn_stack(plan, x, y, masks[:2], recipe, [5, 9], precision="float32", workers=1)
    three = train_cnn_stack(plan, x, y, masks, recipe, [5, 9, 4], precision="float32", workers=2)
    monkeypatch.setattr(cnn_stack, "MAX_STACK", 2)  # one thread, stacks of 2 and 1
    again = train_cnn_stack(plan, x, y, masks, recipe, [5, 9, 4], precision="float32", workers=1)
    one = train_cnn_stack(plan, x, y, masks[1:2], recipe, [9], precision="float32")
    for key, value in one.state(0).items():
        np.testing.assert_allclose(both.state(1)[key], value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(three.state(1)[key], value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(again.state(1)[key], value, rtol=1e-5, atol=1e-6)
    logits = both.logits(x)
    np.testing.assert_allclose(logits[1], one.logits(x)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(three.logits(x)[:2], logits, rtol=1e-4, atol=1e-5)
    assert not np.allclose(logits[0], logits[1])


def test_stacked_gradients_match_separate_modules(data):
    x, y, _ = data
    plan = _plan()
    k, batch = 3, 5
    per_model = [init_params(plan, torch.Generator().manual_seed(s)) for s in range(k)]
    params = [None if p is None else tuple(torch.stack([m[i][j] for m in per_model]).requires_grad_() for j in range(2))
              for i, p in enumerate(per_model[0])]
    rows = torch.arange(k * batch).view(k, batch)  # model k's own records
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    xb = xt[rows.T].reshape(batch, k * SHAPE[0], *SHAPE[1:])
    logits = stacked_forward(plan, params, xb, k)
    F.cross_entropy(logits.reshape(k * batch, -1), yt[rows].reshape(-1), reduction="sum").backward()
    for j in range(k):
        module = build_module(plan)
        with torch.no_grad():
            for m, (w, b) in zip([m for m in module if hasattr(m, "weight")],
                                 [p for p in per_model[j] if p is not None], strict=True):
                m.weight.copy_(w)
                m.bias.copy_(b)
        F.cross_entropy(module(xt[rows[j]]), yt[rows[j]], reduction="sum").backward()
        stacked = [t.grad[j] for p in params if p is not None for t in p]
        for g, m in zip(stacked, [p.grad for p in module.parameters()], strict=True):
            torch.testing.assert_close(g, m, rtol=1e-4, atol=1e-5)


def test_flops_match_torch_flop_counter(data):
    """Counted on K plain modules: the counter ignores groups in a grouped conv's weight gradient."""
    x, _, _ = data
    plan = _plan()
    k, batch = 2, 6
    with FlopCounterMode(display=False) as counter:
        for j in range(k):
            build_module(plan)(torch.from_numpy(x[j * batch:(j + 1) * batch])).sum().backward()
    assert counter.get_total_flops() == pytest.approx(cnn_train_flops(plan, k * batch), rel=1e-9)
    mnist = plan_layers(preset_layers("mnist-cnn", (1, 28, 28), 10), (1, 28, 28), 10)
    macs = 16 * 64 * 14 * 14 + 32 * 256 * 5 * 5 + 512 * 32 + 32 * 10  # the protocol's layers, by hand
    assert cnn_train_flops(mnist, 1) == 6 * macs - 2 * 16 * 64 * 14 * 14


def test_presets_match_the_torch_nets():
    from miaudit.models.nets import SmallCNN, TutorialCNN

    for name, net, shape in (("cnn", TutorialCNN, (1, 28, 28)), ("small-cnn", SmallCNN, (3, 11, 13))):
        plan = plan_layers(preset_layers(name, shape, 10), shape, 10)
        ours = build_module(plan)
        theirs = net(shape[0], shape[1:], 10)
        assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
        with torch.no_grad():
            for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
                a.copy_(b)
        xb = torch.randn(4, *shape, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(ours(xb), theirs.eval()(xb))


def test_inference_select_and_states(data):
    x, y, masks = data
    plan = _plan()
    stack = train_cnn_stack(plan, x, y, masks, TrainingRecipe(epochs=1, batch_size=8), [1, 2, 3], "float32")
    logits = stack.logits(x)
    assert logits.shape == (3, 40, 3)
    np.testing.assert_allclose(stack.select([2, 0]).logits(x), logits[[2, 0]], rtol=1e-5, atol=1e-6)
    again = CNNStack.from_states(plan, [stack.state(k) for k in range(3)])
    np.testing.assert_array_equal(again.logits(x), logits)
    bf16 = stack.logits(x, precision="bfloat16")
    np.testing.assert_allclose(bf16, logits, atol=0.1)


@pytest.mark.parametrize("bad, message", [
    ("conv(16,8,2,sideways),dense(3)", "padding is same, valid"),
    ("conv(16,8),dense(4)", "the data has 3 classes"),
    ("conv(16),dense(3)", "takes 2-4 arguments"),
    ("dense(8),conv(4,3),dense(3)", "after flatten"),
    ("pool(3,1),banana(2),dense(3)", "unknown layer 'banana'"),
    ("conv(16,8,2,same),maxpool(2,1)", "last layer must be dense"),
    ("conv(4,20),dense(3)", "output would be empty"),
    ("conv(4,3,0),dense(3)", "sizes must be positive"),
    ("conv((4,3),dense(3)", "unbalanced parentheses"),
])
def test_bad_specs_are_one_line_input_errors(bad, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as err:
        _plan(bad)
    assert "\n" not in str(err.value)


def test_cnn_audit_trains_stacked_reports_flops_and_caches(tmp_path):
    from miaudit.audit.run import audit

    settings = dict(dataset="digits", target="cnn-spec:conv(4,3,1,same),maxpool(2,2),dense(10)", members=100,
                    reference_models=2, epochs=2, attacks=["lira-online"], population=50, cache_dir=str(tmp_path))
    first = audit(progress=False, **settings)
    assert first.timing["target_trained_with_references"] is True
    assert first.timing["reference_models_trained"] == 2 and first.timing["train_gflops_per_s"] > 0
    inputs = first.inputs  # a subset of stacked CNN references is those models (the mnist-cnn benchmark's K=4, 16)
    one = inputs.select_references([1])
    np.testing.assert_array_equal(one.reference_logits, inputs.reference_logits[[1]])
    np.testing.assert_array_equal(one.reference_models.logits(inputs.records[:5]),
                                  inputs.reference_models.logits(inputs.records[:5])[[1]])
    again = audit(progress=False, **settings)
    assert again.timing["reference_models_from_cache"] == 2
    np.testing.assert_array_equal(again.attacks[0].scores, first.attacks[0].scores)


def test_bfloat16_training_follows_float32_closely(data):
    x, y, masks = data
    plan = _plan()
    recipe = TrainingRecipe(epochs=2, batch_size=8, lr=1e-2)
    fp32 = train_cnn_stack(plan, x, y, masks, recipe, [1, 2, 3], precision="float32").logits(x)
    bf16 = train_cnn_stack(plan, x, y, masks, recipe, [1, 2, 3], precision="bfloat16").logits(x)
    other = train_cnn_stack(plan, x, y, masks, recipe, [4, 5, 6], precision="float32").logits(x)
    assert np.abs(bf16 - fp32).mean() < 0.1 * np.abs(other - fp32).mean()  # far closer than other seeds
    assert (bf16.argmax(-1) == fp32.argmax(-1)).mean() > 0.9


def test_attacks_that_query_each_reference_cnn_run_on_stacked_references():
    from miaudit.audit.run import audit

    result = audit(progress=False, dataset="digits", target="cnn-spec:conv(4,3,1,same),maxpool(2,2),dense(10)",
                   members=40, reference_models=2, epochs=1, population=20, cache=False,
                   attacks=["gradient-norm-lira", "label-only-boundary-lira"])
    assert [a.name for a in result.attacks] == ["gradient-norm-lira", "label-only-boundary-lira"]
    for outcome in result.attacks:
        assert outcome.scores.shape == (80,) and np.isfinite(outcome.scores).all()
        assert np.unique(outcome.scores).size > 10  # a score per record, not a constant
