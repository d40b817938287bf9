"""K MLPs trained at once (models/stack.py): per-model equivalence, masks, precision, stack plumbing."""
from __future__ import annotations

import contextlib
import pickle
import threading
import time
from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from miaudit.errors import InputError
from miaudit.models import fused_adam, stack_workers
from miaudit.models import stack as stack_module
from miaudit.models.denormals import denormals_flushed
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import mlp_train_flops, train_mlp_stack

RECIPE = TrainingRecipe(epochs=2, batch_size=32, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    """300 records x 20 features, 3 classes that a small MLP learns well."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(-1) == y).mean())


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (0.2, 0.5, 0.9)], ids=["equal-sizes", "unequal-sizes"])
def test_batched_training_equals_one_model_at_a_time(data, fractions):
    x, y = data
    masks = np.random.default_rng(1).random((3, len(x))) < np.array(fractions)[:, None]
    seeds = [11, 22, 33]
    stack = train_mlp_stack(x, y, masks, 3, (16,), RECIPE, seeds, precision="float32")
    together = stack.logits(x)
    for k in range(3):
        alone = train_mlp_stack(x, y, masks[k : k + 1], 3, (16,), RECIPE, [seeds[k]], precision="float32")
        np.testing.assert_allclose(alone.logits(x)[0], together[k], rtol=1e-5, atol=1e-5)


def _plain_torch_mlp(x, y, widths, recipe, seed):
    """The same model trained the ordinary way: nn.Linear layers, autograd, torch.optim, mean CE."""
    gen = torch.Generator().manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in pairwise(widths)]
    with torch.no_grad():  # nn.Linear's default init, drawn from the model's own generator
        for layer in layers:
            bound = 1 / np.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)
    net = nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())][:-1])
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[recipe.optimizer]
    extra = {"momentum": recipe.momentum} if recipe.optimizer == "sgd" else {}
    opt = kind(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, **extra)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(recipe.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for batch in order.split(recipe.batch_size):
            opt.zero_grad()
            F.cross_entropy(net(xt[batch]), yt[batch]).backward()
            opt.step()
    with torch.no_grad():
        return net(xt).numpy()


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_one_model_matches_ordinary_torch_training(data, optimizer):
    x, y = data
    x, y = x[:250], y[:250]  # 250 = 7 full batches of 32 and a last one of 26
    recipe = RECIPE.model_copy(update={"optimizer": optimizer, "weight_decay": 1e-3, "lr": 0.05
                                       if optimizer == "sgd" else 3e-3})
    stack = train_mlp_stack(x, y, np.ones((1, len(x)), bool), 3, (16, 8), recipe, [5], precision="float32")
    expected = _plain_torch_mlp(x, y, (20, 16, 8, 3), recipe, seed=5)
    np.testing.assert_allclose(stack.logits(x)[0], expected, rtol=1e-4, atol=1e-4)


def test_records_outside_a_models_mask_have_no_influence(data):
    x, y = data
    masks = np.zeros((2, len(x)), bool)
    masks[0, :150], masks[1, 100:250] = True, True
    before = train_mlp_stack(x, y, masks, 3, (16,), RECIPE, [1, 2], precision="float32").logits(x)
    x2, y2 = x.copy(), y.copy()
    x2[:100] = 5.0  # records only model 0 trains on
    y2[:100] = 2
    after = train_mlp_stack(x2, y2, masks, 3, (16,), RECIPE, [1, 2], precision="float32").logits(x)
    assert np.array_equal(before[1], after[1])
    assert not np.allclose(before[0], after[0], atol=1e-3)


def test_a_model_trained_only_on_class_0_predicts_class_0(data):
    x, y = data
    masks = np.stack([y == 0, np.ones(len(y), bool)])
    recipe = RECIPE.model_copy(update={"epochs": 10, "lr": 1e-2})
    logits = train_mlp_stack(x, y, masks, 3, (16,), recipe, [3, 4], precision="float32").logits(x)
    assert (logits[0].argmax(-1) == 0).all()
    assert _accuracy(logits[1], y) > 0.8


def test_different_seeds_give_different_models(data):
    x, y = data
    masks = np.ones((2, len(x)), bool)
    logits = train_mlp_stack(x, y, masks, 3, (16,), RECIPE, [7, 8], precision="float32").logits(x)
    assert np.abs(logits[0] - logits[1]).mean() > 0.05
    again = train_mlp_stack(x, y, masks[:1], 3, (16,), RECIPE, [7], precision="float32").logits(x)
    assert np.array_equal(again[0], logits[0])


def test_dropout_still_trains_and_changes_the_model(data):
    x, y = data
    masks = np.ones((2, len(x)), bool)
    dropout = RECIPE.model_copy(update={"dropout": 0.5, "epochs": 8, "lr": 1e-2})
    with_dropout = train_mlp_stack(x, y, masks, 3, (32,), dropout, [1, 2], precision="float32").logits(x)
    plain = train_mlp_stack(x, y, masks, 3, (32,), dropout.model_copy(update={"dropout": 0.0}), [1, 2],
                            precision="float32").logits(x)
    assert all(_accuracy(with_dropout[k], y) > 0.8 for k in range(2))  # the majority class is 57%
    assert not np.allclose(with_dropout, plain, atol=1e-3)
    heavy = train_mlp_stack(x, y, masks, 3, (32,), dropout.model_copy(update={"dropout": 0.9}), [1, 2],
                            precision="float32").logits(x)
    assert all(_accuracy(heavy[k], y) < _accuracy(plain[k], y) - 0.1 for k in range(2))  # units really dropped
    alone = train_mlp_stack(x, y, masks[1:], 3, (32,), dropout, [2], precision="float32").logits(x)
    np.testing.assert_allclose(alone[0], with_dropout[1], rtol=1e-5, atol=1e-5)  # per-model dropout masks


def test_bf16_gives_outputs_close_to_fp32(data):
    x, y = data
    masks = np.random.default_rng(2).random((4, len(x))) < 0.5
    recipe = RECIPE.model_copy(update={"epochs": 4})
    fp32 = train_mlp_stack(x, y, masks, 3, (32,), recipe, [1, 2, 3, 4], precision="float32").logits(x)
    bf16 = train_mlp_stack(x, y, masks, 3, (32,), recipe, [1, 2, 3, 4], precision="bfloat16").logits(x)
    assert not np.array_equal(fp32, bf16)  # the bf16 path really ran in lower precision
    for k in range(4):
        assert abs(_accuracy(fp32[k], y) - _accuracy(bf16[k], y)) < 0.04
        assert abs(_accuracy(fp32[k][masks[k]], y[masks[k]]) - _accuracy(bf16[k][masks[k]], y[masks[k]])) < 0.04
    true_logit_gap = np.take_along_axis(fp32 - bf16, y[None, :, None], -1)
    assert np.abs(true_logit_gap).mean() < 0.1 * np.abs(fp32).mean()


def test_progress_reports_batched_steps(data):
    x, y = data
    masks = np.ones((2, len(x)), bool)
    seen: list[int] = []
    train_mlp_stack(x, y, masks, 3, (8,), RECIPE.model_copy(update={"epochs": 5}), [1, 2], "float32", seen.append)
    assert seen == sorted(seen) and seen[-1] == 5 * int(np.ceil(len(x) / RECIPE.batch_size))
    assert len(seen) >= 2


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "bfloat16-torch-adam"])
def test_worker_threads_give_the_same_models(data, precision, monkeypatch):
    if precision == "bfloat16-torch-adam":  # without fused_adam's kernel (numba missing)
        monkeypatch.setattr(fused_adam, "available", lambda: False)
        precision = "bfloat16"
    x, y = data
    fractions = np.array([0.9, 0.5, 0.2, 0.5, 0.5, 0.2])  # groups by steps per epoch: [2, 5], [1, 3, 4], [0]
    masks = np.random.default_rng(3).random((6, len(x))) < fractions[:, None]
    seeds = [5, 6, 7, 8, 9, 10]
    recipe = RECIPE.model_copy(update={"dropout": 0.2})
    one = train_mlp_stack(x, y, masks, 3, (16,), recipe, seeds, precision, workers=1).logits(x)
    alone = [train_mlp_stack(x, y, masks[k : k + 1], 3, (16,), recipe, [seeds[k]], precision).logits(x)[0]
             for k in range(6)]
    np.testing.assert_allclose(one, np.stack(alone), rtol=1e-5, atol=1e-5)
    for workers in (2, 4):  # slices of 1 or 2 models
        threaded = train_mlp_stack(x, y, masks, 3, (16,), recipe, seeds, precision, workers=workers).logits(x)
        np.testing.assert_allclose(threaded, one, rtol=1e-5, atol=1e-5)
    assert np.abs(one[1] - one[3]).mean() > 0.05  # the models differ: a model put back out of order would show


@pytest.fixture
def two_torch_threads():
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(1)


def _recording_train_group(monkeypatch, calls: list, fail_seed: int | None = None,
                           together: threading.Barrier | None = None):
    """Wrap stack.py _train_group: record (thread, torch threads, seeds) per call; raise for fail_seed;
    wait at the barrier ``together`` (a job that never meets another one running breaks it)."""
    real = stack_module._train_group

    def train_group(xt, yt, masks, seeds, *args):
        calls.append((threading.current_thread(), torch.get_num_threads(), list(seeds)))
        if together is not None:
            together.wait()
        if fail_seed in seeds:
            raise RuntimeError("boom")
        result = real(xt, yt, masks, seeds, *args)
        calls.append("finished")
        return result

    monkeypatch.setattr(stack_module, "_train_group", train_group)


@pytest.mark.usefixtures("two_torch_threads")
def test_workers_run_slices_at_once_on_one_torch_thread_each_and_restore_the_setting(data, monkeypatch):
    x, y = data
    calls: list = []
    _recording_train_group(monkeypatch, calls, together=threading.Barrier(2, timeout=20))
    masks = np.ones((5, len(x)), bool)
    train_mlp_stack(x, y, masks, 3, (8,), RECIPE, [1, 2, 3, 4, 5], "float32")  # auto: min(5, 2) workers
    runs = [c for c in calls if c != "finished"]
    assert sorted(seeds for _, _, seeds in runs) == [[1, 2, 3], [4, 5]]  # contiguous, near-equal slices
    assert len({thread for thread, _, _ in runs} - {threading.main_thread()}) == 2  # met at the barrier
    assert {threads for _, threads, _ in runs} == {1}
    assert torch.get_num_threads() == 2
    calls.clear()
    monkeypatch.undo()
    _recording_train_group(monkeypatch, calls)
    train_mlp_stack(x, y, masks[:1], 3, (8,), RECIPE, [1], "float32")  # one model: no worker thread
    assert calls[0][:2] == (threading.main_thread(), 2)


def test_workers_take_turns_at_the_optimizer_step(data, monkeypatch):
    """Optimizer steps (memory-bound) of different workers never run at once; models are unchanged."""
    x, y = data
    active, most, guard = [0], [0], threading.Lock()
    real = stack_module.make_optimizer

    def tracking_optimizer(params, recipe):
        optimizer = real(params, recipe)
        step = optimizer.step

        def tracked_step():
            with guard:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.0005)  # widen the window in which an unguarded second step would enter
            step()
            with guard:
                active[0] -= 1
        optimizer.step = tracked_step
        return optimizer

    monkeypatch.setattr(stack_module, "make_optimizer", tracking_optimizer)
    masks = np.random.default_rng(4).random((4, len(x))) < 0.5
    two = train_mlp_stack(x, y, masks, 3, (8,), RECIPE, [1, 2, 3, 4], "float32", workers=2)
    assert most[0] == 1
    one = train_mlp_stack(x, y, masks, 3, (8,), RECIPE, [1, 2, 3, 4], "float32", workers=1)
    np.testing.assert_array_equal(two.logits(x), one.logits(x))


@pytest.mark.usefixtures("two_torch_threads")
def test_an_error_in_a_worker_reaches_the_caller_and_stops_the_other_workers(data, monkeypatch):
    x, y = data
    calls: list = []
    _recording_train_group(monkeypatch, calls, fail_seed=4)
    before = set(threading.enumerate())
    long = RECIPE.model_copy(update={"epochs": 200})  # 2,000 steps: the other slice is cut short
    with pytest.raises(RuntimeError, match="boom"):
        train_mlp_stack(x, y, np.ones((4, len(x)), bool), 3, (8,), long, [1, 2, 3, 4], "float32", workers=2)
    assert len(calls) == 2 and "finished" not in calls  # both slices started, neither ran to the end
    assert set(threading.enumerate()) == before  # no worker thread left running
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_is_monotone_from_the_calling_thread_and_ends_at_the_total(data, workers, monkeypatch):
    x, y = data
    monkeypatch.setattr(stack_workers, "POLL_SECONDS", 0.001)
    masks = np.zeros((4, len(x)), bool)
    masks[:2, :200] = True  # 25 steps per epoch (batch 8)
    masks[2:, :100] = True  # 13 steps per epoch
    seen: list[tuple[int, threading.Thread]] = []
    recipe = RECIPE.model_copy(update={"epochs": 6, "batch_size": 8})
    train_mlp_stack(x, y, masks, 3, (8,), recipe, [1, 2, 3, 4], "float32",
                    lambda steps: seen.append((steps, threading.current_thread())), workers=workers)
    steps = [s for s, _ in seen]
    assert steps == sorted(steps) and steps[-1] == 6 * (25 + 13)  # batched steps, as without workers
    assert len(steps) >= 3
    assert {thread for _, thread in seen} == {threading.main_thread()}


def test_stack_plumbing_select_concat_states_pickle(data):
    x, y = data
    images = x.reshape(-1, 1, 4, 5)  # any feature shape is flattened
    stack = train_mlp_stack(images, y, np.ones((3, len(x)), bool), 3, (8, 4), RECIPE, [1, 2, 3], "float32")
    assert (stack.n_models, stack.n_classes, stack.hidden, stack.n_features) == (3, 3, (8, 4), 20)
    full = stack.logits(images)
    assert full.shape == (3, len(x), 3) and full.dtype == np.float32
    np.testing.assert_allclose(stack.logits(x, batch_size=7), full, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(stack.select(1).logits(x)[0], full[1])
    np.testing.assert_array_equal(stack.select([2, 0]).logits(x), full[[2, 0]])
    joined = MLPStack.concat([stack.select(2), stack.select([0, 1])])
    np.testing.assert_array_equal(joined.logits(x), full[[2, 0, 1]])
    rebuilt = MLPStack.from_states([stack.state(k) for k in (1, 2)])
    np.testing.assert_array_equal(rebuilt.logits(x), full[[1, 2]])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(stack)).logits(x), full)
    with pytest.raises(InputError, match="features"):
        stack.logits(x[:, :10])


def test_bf16_inference_is_float32_up_to_bf16_rounding(data):
    x, y = data
    stack = train_mlp_stack(x, y, np.ones((3, len(x)), bool), 3, (16,), RECIPE, [1, 2, 3], "float32")
    exact = stack.logits(x)
    fast = stack.logits(x, batch_size=50, precision="bfloat16")
    assert fast.shape == exact.shape and fast.dtype == np.float32
    assert not np.array_equal(fast, exact)  # the bf16 path really ran
    # bf16 keeps 8 significant bits: errors of a fraction of a percent of the logits' spread
    assert np.abs(fast - exact).max() < 0.02 * exact.std()
    assert (fast.argmax(-1) == exact.argmax(-1)).mean() > 0.98
    np.testing.assert_allclose(stack.select(2).logits(x, precision="bfloat16")[0], fast[2], atol=1e-4)
    with pytest.raises(InputError, match="precision"):
        stack.logits(x, precision="float16")


def test_train_flops_are_what_torch_counts_in_the_stacks_training_and_in_plain_torch(data):
    """mlp_train_flops against torch.utils.flop_counter: on the stack's own training run (one worker:
    the counter sees this thread's ops; subsets that fill every batch, so no padding rows), and on
    the same MLP as nn.Linear layers trained by autograd."""
    x, y = data
    masks = np.zeros((2, len(x)), bool)
    masks[0, :256], masks[1, 40:296] = True, True  # 8 full batches of 32 each
    with FlopCounterMode(display=False) as counter:
        train_mlp_stack(x, y, masks, 3, (16, 8), RECIPE, [1, 2], "float32", workers=1)
    samples = int(masks.sum()) * RECIPE.epochs
    assert counter.get_total_flops() == mlp_train_flops(20, (16, 8), 3, samples)
    net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(torch.from_numpy(x[:32])), torch.from_numpy(y[:32])).backward()
    assert counter.get_total_flops() == mlp_train_flops(20, (16, 8), 3, 32)


@pytest.mark.parametrize("change, field", [
    (dict(masks=np.ones((2, 299), bool)), "masks"),
    (dict(masks=np.zeros((2, 300), bool)), "masks"),
    (dict(seeds=[1]), "seeds"),
    (dict(seeds=[1, -2]), "seeds"),
    (dict(precision="float16"), "precision"),
    (dict(y=np.full(300, 3)), "y"),
    (dict(workers=0), "workers"),
])
def test_bad_input_raises_input_error_naming_the_field(data, change, field):
    x, y = data
    args = dict(x=x, y=y, masks=np.ones((2, 300), bool), n_classes=3, hidden=(8,), recipe=RECIPE, seeds=[1, 2],
                precision="float32") | change
    with pytest.raises(InputError, match=f"^{field}"):
        train_mlp_stack(**args)


def _tracking_optimizers(monkeypatch, on_step=None) -> list[torch.optim.Optimizer]:
    """Every torch optimizer the stack makes (appended in order); on_step() runs after each step."""
    made: list[torch.optim.Optimizer] = []
    real = stack_module.make_optimizer

    def tracking_optimizer(params, recipe):
        optimizer = real(params, recipe)
        step = optimizer.step

        def tracked_step():
            step()
            if on_step is not None:
                on_step()
        optimizer.step = tracked_step
        made.append(optimizer)
        return optimizer

    monkeypatch.setattr(stack_module, "make_optimizer", tracking_optimizer)
    return made


def _denormal_moments(optimizer: torch.optim.Optimizer) -> int:
    """How many Adam first moments are float32 denormals (nonzero, below the smallest normal)."""
    moments = [state["exp_avg"].abs() for state in optimizer.state.values()]
    return sum(int(((m > 0) & (m < torch.finfo(torch.float32).tiny)).sum()) for m in moments)


def test_flushing_denormals_leaves_the_models_as_they_were(monkeypatch):
    """Random labels on positive inputs, as in benchmarks/stack_speed.py: after ~800 steps the first
    moments of weights into dead units decay into denormals (and stay there, 0.9 x m rounding back
    to m). Flushed to zero they cost nothing, and the models are the same within float noise."""
    rng = np.random.default_rng(0)
    x, y = rng.random((400, 100), dtype=np.float32), rng.integers(0, 10, 400)
    masks = np.random.default_rng(1).random((2, len(x))) < 0.5
    recipe = TrainingRecipe(epochs=250, batch_size=64, lr=1e-2)  # 4 steps per epoch
    made = _tracking_optimizers(monkeypatch)
    flushed = train_mlp_stack(x, y, masks, 10, (64,), recipe, [1, 2], "float32", workers=1).logits(x)
    monkeypatch.setattr(stack_workers, "flush_denormals", contextlib.nullcontext)
    kept = train_mlp_stack(x, y, masks, 10, (64,), recipe, [1, 2], "float32", workers=1).logits(x)
    other_seeds = train_mlp_stack(x, y, masks, 10, (64,), recipe, [3, 4], "float32", workers=1).logits(x)
    assert _denormal_moments(made[1]) > 1000 and _denormal_moments(made[0]) == 0  # the regime was reached
    assert (flushed.argmax(-1) == kept.argmax(-1)).mean() > 0.99
    assert np.abs(flushed - kept).max() < 1e-3 * np.abs(other_seeds - kept).mean()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_training_thread_flushes_denormals_and_the_caller_gets_its_setting_back(data, workers,
                                                                                       monkeypatch):
    x, y = data
    seen: set[tuple[threading.Thread, bool]] = set()
    _tracking_optimizers(monkeypatch, lambda: seen.add((threading.current_thread(), denormals_flushed())))
    masks = np.ones((4, len(x)), bool)
    try:
        for before in (False, True):
            torch.set_flush_denormal(before)
            seen.clear()
            train_mlp_stack(x, y, masks, 3, (8,), RECIPE, [1, 2, 3, 4], "float32", workers=workers)
            assert denormals_flushed() is before
            threads = {thread for thread, _ in seen}
            assert {flushed for _, flushed in seen} == {True}
            # an idle pool thread may take the next job, so 2 workers can show as 1 thread on a busy machine
            assert len(threads) <= workers and (threading.main_thread() in threads) == (workers == 1)
    finally:
        torch.set_flush_denormal(False)
