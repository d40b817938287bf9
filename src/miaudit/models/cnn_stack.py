"""K CNNs of one architecture trained at once: parameters stacked on a model axis, one grouped
forward / backward and one optimizer step for all models (cnn_models.stacked_forward).

Model k depends only on seeds[k], masks[k] and the shared data, as in stack.py for MLPs: its
initial parameters come from ``torch.Generator().manual_seed(seeds[k])`` (drawn as nn.Conv2d /
nn.Linear draw theirs), its record order from ``np.random.default_rng(seeds[k])`` (one permutation
per epoch), and the loss is the sum over models of each model's own mean cross-entropy, so the
gradients and the elementwise torch.optim updates never mix models. Models whose subsets take
different numbers of steps per epoch train as separate stacks (no model steps without data).

bf16 (--precision bfloat16; "auto" where the CPU or GPU runs it natively): the forward
and backward run under torch.autocast with fp32 master parameters and optimizer. No dropout and no
early stopping here (references.py trains such recipes one model at a time).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from miaudit.errors import InputError
from miaudit.models.cnn_models import CNNStack, stacked_forward
from miaudit.models.cnn_spec import Conv, Dense, Plan, init_params
from miaudit.models.perf import resolve_cnn_precision
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import batch_row_weights, check_inputs, make_optimizer
from miaudit.models.stack_workers import StepCounter, run_jobs

_PROGRESS_EVERY = 5  # batched steps between progress callbacks
# Models per stack: beyond ~8 mnist-cnn models a step's activations outgrow the caches and GFLOP/s
# fall (one thread, batch 64: 16-22 GFLOP/s at 2-8 models, 12 at 16; docs/cnn-stack.md).
MAX_STACK = 8


def cnn_train_flops(plan: Plan, samples_seen: int) -> float:
    """Training FLOPs of one CNN over ``samples_seen`` samples: per sample and conv / dense layer,
    2 x its multiply-accumulates forward, 2 x for the weight gradient and 2 x for the input gradient,
    which the first such layer does not compute. What torch.utils.flop_counter counts (convolutions
    and matmuls); biases, activations, pools, the loss and the optimizer are not counted."""
    macs = []
    for layer, shape, out in zip(plan.layers, plan.shapes, plan.shapes[1:], strict=False):
        if isinstance(layer, Conv):
            macs.append(math.prod(out) * shape[0] * layer.kernel ** 2)
        elif isinstance(layer, Dense):
            macs.append(shape[0] * layer.width)
    return (6.0 * sum(macs) - 2.0 * macs[0]) * float(samples_seen) if macs else 0.0


def stackable(recipe: TrainingRecipe) -> bool:
    """Can train_cnn_stack follow this recipe (no dropout, no early stopping)?"""
    return recipe.dropout == 0 and recipe.patience == 0


def train_cnn_stack(plan: Plan, x: np.ndarray, y: np.ndarray, masks: np.ndarray, recipe: TrainingRecipe,
                    seeds: Sequence[int], precision: str = "auto",
                    progress: Callable[[int], None] | None = None, device: str = "cpu",
                    workers: int | None = None) -> CNNStack:
    """Train K CNNs of ``plan`` at once; model k on the images where masks[k], with seeds[k].

    x: float32 [n, C, H, W] (plan.input_shape); y: int [n] in [0, n_classes); masks: bool [K, n].
    progress(steps_done) about every 5 batched steps and at the end; steps_done ends at the sum over
    groups (models with equal steps per epoch) of epochs x steps per epoch. device: "cpu" or "cuda"
    (resolved by perf.resolve_device); precision by perf.resolve_cnn_precision.
    workers (CPU): each group is split into contiguous slices of at most MAX_STACK models, at least
    ``workers`` of them, trained as separate stacks on that many Python threads with one intra-op torch
    thread each (stack_workers.run_jobs; model k does not depend on the split);
    None = min(K, torch.get_num_threads()), 1 = no threads.
    """
    x = np.asarray(x)
    if x.shape[1:] != plan.input_shape:
        raise InputError(f"x: images of shape {x.shape[1:]}, the architecture expects {plan.input_shape}")
    if not stackable(recipe):
        raise InputError("recipe: dropout and early stopping are not supported by the stacked CNN trainer")
    labels, masks = check_inputs(x[:, :0, 0, 0], y, masks, plan.n_classes, (), recipe, seeds)
    bf16 = resolve_cnn_precision(precision, device) == "bfloat16"
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device)
    yt = torch.from_numpy(labels).to(device)
    steps_per_epoch = -(-masks.sum(axis=1) // recipe.batch_size)
    groups = [np.flatnonzero(steps_per_epoch == s) for s in np.unique(steps_per_epoch)]
    if workers is not None and (int(workers) != workers or workers < 1):
        raise InputError(f"workers: must be a positive integer, got {workers}")
    workers = 1 if device != "cpu" else min(len(masks), torch.get_num_threads() if workers is None else int(workers))
    counter = StepCounter([len(members) for members in groups])
    reported = 0

    def poll() -> None:  # runs in the calling thread only
        nonlocal reported
        if progress is not None and counter.steps >= reported + _PROGRESS_EVERY:
            reported = counter.steps
            progress(reported)

    slices = [(g, part) for g, members in enumerate(groups)
              for part in np.array_split(members, max(workers, -(-len(members) // MAX_STACK))) if len(part)]
    jobs = [functools.partial(_train_group, plan, xt, yt, masks[part], [int(seeds[i]) for i in part], recipe, bf16,
                              counter, g) for g, part in slices]
    trained = run_jobs(jobs, min(workers, len(jobs)), poll)
    if progress is not None:
        progress(recipe.epochs * int(sum(steps_per_epoch[members[0]] for members in groups)))
    stack = CNNStack.concat(trained)
    order = np.argsort(np.concatenate([part for _, part in slices]), kind="stable")
    return stack if (order == np.arange(len(order))).all() else stack.select(order.tolist())


def _train_group(plan: Plan, xt: torch.Tensor, yt: torch.Tensor, masks: np.ndarray, seeds: list[int],
                 recipe: TrainingRecipe, bf16: bool, counter: StepCounter, group: int,
                 check: Callable[[], None]) -> CNNStack:
    """Train models whose subsets take the same number of steps per epoch, as one stack.
    After every optimizer step: counter.add(group, K), then check() (may raise to stop the job)."""
    k, batch = len(seeds), recipe.batch_size
    subsets = [np.flatnonzero(m) for m in masks]
    sizes = np.array([len(s) for s in subsets])
    steps = int(-(-sizes.max() // batch))
    per_model = [init_params(plan, torch.Generator().manual_seed(s)) for s in seeds]
    params = [None if p is None else tuple(torch.stack([m[i][j] for m in per_model]).to(xt.device).requires_grad_()
                                           for j in range(2))
              for i, p in enumerate(per_model[0])]
    flat = [t for p in params if p is not None for t in p]
    optimizer = make_optimizer(flat, recipe)
    orders = [np.random.default_rng(s) for s in seeds]
    row_weights = batch_row_weights(sizes, steps, batch).to(xt.device)  # [K, steps, B]
    order = np.zeros((k, steps * batch), np.int64)  # padding rows point at record 0, weight 0
    c = plan.input_shape[0]
    for _ in range(recipe.epochs):
        for i, (rng, subset) in enumerate(zip(orders, subsets, strict=True)):
            order[i, : len(subset)] = subset[rng.permutation(len(subset))]
        index = torch.from_numpy(order).view(k, steps, batch).permute(1, 2, 0).contiguous()  # [steps, B, K]
        index = index.to(xt.device)
        for s in range(steps):
            rows = index[s]
            xb = xt[rows].reshape(batch, k * c, *plan.input_shape[1:]).contiguous(memory_format=torch.channels_last)
            with torch.autocast(xt.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = stacked_forward(plan, params, xb, k)
            loss = F.cross_entropy(logits.float().reshape(k * batch, -1), yt[rows.T.reshape(-1)], reduction="none")
            loss = (loss * row_weights[:, s].reshape(-1)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            counter.add(group, k)
            check()
    return CNNStack(plan, [None if p is None else tuple(t.detach().cpu().numpy().copy() for t in p) for p in params])
