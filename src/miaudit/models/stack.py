"""K ReLU MLPs trained at once: parameters stacked [K, in, out], one batched step for all models.

Model k depends only on seeds[k], masks[k] and the shared data: its initial weights and dropout
masks come from ``torch.Generator().manual_seed(seeds[k])``, its record order from
``np.random.default_rng(seeds[k])``, and the loss is the sum over models of each model's own mean
cross-entropy, so gradients and the elementwise torch.optim updates never mix models. Training
model k alone (K=1) or inside a stack of 64 gives the same model, up to float rounding.

Subsets of different sizes: models are grouped by steps per epoch, ceil(subset / batch), and each
group is trained as its own stack; within a group a shorter last batch is averaged over its own
rows (padding rows weigh zero). No model ever takes an optimizer step without data, which keeps
the per-model equivalence exact for Adam. Balanced halves form one group.

bf16 with Adam / AdamW: when numba is installed, every parameter steps with fused_adam.Bf16Adam:
for a weight matrix one pass that reads the bf16 gradient, updates the fp32 weight and moments and
writes the next bf16 operand copy (torch's own fused Adam math); the biases from fp32 gradients.
Otherwise, and for float32 or SGD, torch.optim does every update. The choice is made once per process.

The trained models come back as an MLPStack (mlp_stack.py: the container and its inference).

Workers: each group is split into W contiguous slices trained as separate stacks on W Python
threads with one intra-op torch thread each (stack_workers.py); by the above, model k does not
depend on the split. Every thread that trains flushes denormals to zero meanwhile (late in training
gradients and Adam moments fall into the slow denormal range), and restores its own setting after.

On a GPU (``device``) data, parameters, buffers and torch.optim state live there, groups train in the
calling thread with TF32 allowed (devices.py), bf16 by the same casts, never the numba kernel; seeded
draws stay on the CPU, and the models come back as CPU float32 numpy.
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np
import torch

from miaudit.errors import InputError
from miaudit.models.devices import device_arithmetic, on_cpu
from miaudit.models.dp_sgd import noise_multiplier
from miaudit.models.mlp_stack import MLPStack, flatten_records
from miaudit.models.perf import resolve_device_precision
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack_dp import add_noise, clipped_gradients
from miaudit.models.stack_early_stopping import StackEarlyStopping, validation_masks
from miaudit.models.stack_workers import StepCounter, run_jobs

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, used on both optimizer paths
_PROGRESS_EVERY = 20  # batched steps between progress callbacks


def mlp_train_flops(n_features: int, hidden: Sequence[int], n_classes: int, samples_seen: int) -> float:
    """Training FLOPs of an MLP over ``samples_seen`` samples: per sample and layer, 2 x its multiply-
    accumulates forward, 2 x for its weight gradient and 2 x for its input gradient, which the first
    layer does not compute (the records need none). The matmuls torch.utils.flop_counter counts; bias
    adds, activations, the loss and the optimizer are not counted."""
    widths = (n_features, *hidden, n_classes)
    macs = [a * b for a, b in pairwise(widths)]
    return (6.0 * sum(macs) - 2.0 * macs[0]) * float(samples_seen)


def train_mlp_stack(x: np.ndarray, y: np.ndarray, masks: np.ndarray, n_classes: int, hidden: tuple[int, ...],
                    recipe: TrainingRecipe, seeds: Sequence[int], precision: str = "auto",
                    progress: Callable[[int], None] | None = None, workers: int | None = None,
                    device: str = "cpu") -> MLPStack:
    """Train K MLPs (widths d, *hidden, n_classes; ReLU) at once; model k on the records where masks[k].

    x: float32 [n, ...] (flattened to [n, d]); y: int [n] in [0, n_classes); masks: bool [K, n];
    seeds: K non-negative ints. precision "bfloat16" runs the matmuls in bf16 with fp32 master weights
    and optimizer (what torch.autocast does; Adam / AdamW fused with the cast when numba is installed);
    "auto" picks it when perf.bf16_available().
    workers: Python threads, each training a contiguous slice of every group as its own stack on one
    intra-op torch thread (stack_workers.py); None = min(K, torch.get_num_threads()), 1 = no threads.
    progress(steps_done) is called from the calling thread only, about every 20 batched steps (checked
    every 0.05 s with workers) and at the end; steps_done is monotone and ends at the sum over groups
    of epochs x steps per epoch (batched steps of the whole group in one stack, whatever the workers).
    device: "cpu" or "cuda" (resolved by perf.resolve_device; "auto" precision by
    perf.resolve_device_precision); off the CPU, workers is ignored (one thread).
    """
    flat = flatten_records(x, "x")
    labels, masks = check_inputs(flat, y, masks, n_classes, hidden, recipe, seeds)
    held_out = validation_masks(masks, recipe, seeds)
    masks = masks & ~held_out
    sigmas = _noise_multipliers(masks, recipe)
    if workers is not None and (int(workers) != workers or workers < 1):
        raise InputError(f"workers: must be a positive integer, got {workers}")
    cpu = on_cpu(device)
    workers = min(len(masks), torch.get_num_threads() if workers is None else int(workers)) if cpu else 1
    bf16 = resolve_device_precision(precision, device) == "bfloat16" and not recipe.dp  # DP-SGD clips in fp32
    fused = cpu and bf16 and recipe.optimizer in ("adam", "adamw") and _fused_adam_available()
    xt = torch.from_numpy(flat)
    xt = (xt.to(torch.bfloat16) if bf16 else xt).to(device)  # on the CPU: no copy
    yt = torch.from_numpy(labels).to(device)
    steps_per_epoch = -(-masks.sum(axis=1) // recipe.batch_size)
    groups = [np.flatnonzero(steps_per_epoch == s) for s in np.unique(steps_per_epoch)]
    widths = (flat.shape[1], *hidden, n_classes)
    counter = StepCounter([len(members) for members in groups])
    reported = 0

    def poll() -> None:  # runs in the calling thread only
        nonlocal reported
        steps = counter.steps
        if progress is not None and steps >= reported + _PROGRESS_EVERY:
            reported = steps
            progress(steps)

    slices = [(g, part) for g, members in enumerate(groups) for part in np.array_split(members, workers)
              if len(part)]
    # optimizer steps read and write ~28 bytes per parameter and are bound by memory bandwidth, the
    # matmuls by compute: workers taking turns at the optimizer overlap one's step with the other's
    # matmuls (bf16, 2 workers: 1-5% less time per model in three interleaved A/B runs, near this
    # machine's noise; the same models bit for bit)
    turn = threading.Lock() if workers > 1 else contextlib.nullcontext()
    jobs = [functools.partial(_train_group, xt, yt, masks[part], [int(seeds[i]) for i in part], widths, recipe,
                              bf16, fused, counter, g, turn, held_out[part], sigmas[part]) for g, part in slices]
    if cpu:
        trained = run_jobs(jobs, min(workers, len(jobs)), poll)
    else:
        with device_arithmetic(device):
            trained = [job(poll) for job in jobs]
    if progress is not None:
        progress(recipe.epochs * int(sum(steps_per_epoch[members[0]] for members in groups)))
    stack = MLPStack.concat(trained)
    order = np.argsort(np.concatenate([part for _, part in slices]), kind="stable")
    return stack if (order == np.arange(len(order))).all() else stack.select(order.tolist())


def _fused_adam_available() -> bool:
    """True when fused_adam's numba kernel is usable (numba imported only on first need)."""
    from miaudit.models import fused_adam

    return fused_adam.available()


def check_inputs(flat, y, masks, n_classes, hidden, recipe, seeds) -> tuple[np.ndarray, np.ndarray]:
    """Validated int64 labels [n] and bool masks [K, n]."""
    n = len(flat)
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise InputError(f"y: expected shape ({n},), got {labels.shape}")
    labels = labels.astype(np.int64)
    if n_classes < 2 or labels.min() < 0 or labels.max() >= n_classes:
        raise InputError(f"y: labels must lie in [0, {n_classes}), found {labels.min()}..{labels.max()}")
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != n:
        raise InputError(f"masks: expected shape (K, {n}), got {masks.shape}")
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise InputError("masks: must be boolean (or 0/1)")
        masks = masks.astype(bool)
    if len(seeds) != len(masks):
        raise InputError(f"seeds: {len(seeds)} seeds for {len(masks)} models")
    if any(int(s) != s or s < 0 for s in seeds):
        raise InputError(f"seeds: must be non-negative integers, got {list(seeds)[:5]}...")
    empty = np.flatnonzero(~masks.any(axis=1))
    if empty.size:
        raise InputError(f"masks: model {int(empty[0])} has no training records")
    if any(h < 1 for h in hidden):
        raise InputError(f"hidden: layer widths must be positive, got {tuple(hidden)}")
    return labels, masks


def _noise_multipliers(masks: np.ndarray, recipe: TrainingRecipe) -> np.ndarray:
    """float64 [K]: each model's DP-SGD noise multiplier (from its own training-set size), NaN without DP."""
    if not recipe.dp:
        return np.full(len(masks), np.nan)

    return np.array([noise_multiplier(recipe, int(n)) for n in masks.sum(axis=1)])


def _init_layer(gen: torch.Generator, fan_in: int, fan_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear's default init (kaiming-uniform a=sqrt(5) = U(+-1/sqrt(fan_in)), same for the bias).

    Drawn in nn.Linear's order and layout (weight [out, in], then bias); returned as [in, out], [out].
    """
    bound = 1.0 / math.sqrt(fan_in)
    weight = torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=gen)
    bias = torch.empty(fan_out).uniform_(-bound, bound, generator=gen)
    return weight.T.contiguous(), bias


def make_optimizer(params: list[torch.Tensor], recipe: TrainingRecipe) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[recipe.optimizer]
    extra = {"momentum": recipe.momentum} if recipe.optimizer == "sgd" else {}
    adam = {} if recipe.optimizer == "sgd" else {"betas": ADAM_BETAS, "eps": ADAM_EPS}
    try:
        return kind(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True, **extra, **adam)
    except (RuntimeError, TypeError):  # a torch build without the fused CPU kernel
        return kind(params, lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True, **extra, **adam)


def _fused_step(net: _StackedNet, recipe: TrainingRecipe) -> Callable[[], None]:
    """One fused Adam / AdamW step (fused_adam.Bf16Adam) of every parameter of net: the weights from
    their bf16 gradients (writing the next bf16 operand copies), the biases from their fp32 ones.
    torch.optim.Adam's default betas and eps, as on the torch path."""
    from miaudit.models.fused_adam import Bf16Adam

    return Bf16Adam(net.weights + net.biases, net.grad_low + [b.grad for b in net.biases],
                    net.w_low + [None] * len(net.biases), recipe.lr, ADAM_BETAS, ADAM_EPS, recipe.weight_decay,
                    decoupled=recipe.optimizer == "adamw").step


def batch_row_weights(sizes: np.ndarray, steps: int, batch: int) -> torch.Tensor:
    """float32 [K, steps, batch]: 1 / (rows of model k's batch) on real rows, 0 on padding rows."""
    position = np.arange(steps * batch).reshape(steps, batch)
    real = position[None] < sizes[:, None, None]
    rows = real.sum(axis=2, keepdims=True)
    return torch.from_numpy(np.where(real, 1.0 / np.maximum(rows, 1), 0.0).astype(np.float32))


def _train_group(xt: torch.Tensor, yt: torch.Tensor, masks: np.ndarray, seeds: list[int],
                 widths: tuple[int, ...], recipe: TrainingRecipe, bf16: bool, fused: bool, counter: StepCounter,
                 group: int, turn: contextlib.AbstractContextManager, held_out: np.ndarray,
                 sigmas: np.ndarray, check: Callable[[], None]) -> MLPStack:
    """Train models whose subsets take the same number of steps per epoch, as one stack.

    fused (bf16 and Adam / AdamW only): every parameter steps with fused_adam.Bf16Adam.
    turn: held for each optimizer step (a lock shared by the workers, or a null context).
    held_out: bool [K, n] validation records of each model (early stopping when recipe.patience).
    sigmas: float [K] DP-SGD noise multipliers (used when recipe.dp): per-example clipping and noise,
    fp32 (_StackedNet.dp_step).
    After every optimizer step: counter.add(group, K), then check() (may raise to stop the job).
    """
    k, batch = len(seeds), recipe.batch_size
    subsets = [np.flatnonzero(m) for m in masks]
    sizes = np.array([len(s) for s in subsets])
    steps = int(-(-sizes.max() // batch))
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    orders = [np.random.default_rng(s) for s in seeds]
    device = xt.device
    net = _StackedNet(gens, widths, batch, bf16, fused, recipe.label_smoothing, device)
    # fused: no torch.optim at all (its first construction imports torch._dynamo, ~1 s per process)
    optimizer_step = _fused_step(net, recipe) if fused else make_optimizer(net.weights + net.biases, recipe).step
    row_weights = batch_row_weights(sizes, steps, batch).to(device)
    order = np.zeros((k, steps * batch), np.int64)  # padding rows point at record 0, weight 0
    stopper = StackEarlyStopping(net, held_out, recipe.patience) if recipe.patience else None

    for _ in range(recipe.epochs):
        for i, (rng, subset) in enumerate(zip(orders, subsets, strict=True)):
            order[i, : len(subset)] = subset[rng.permutation(len(subset))]
        index = torch.from_numpy(order).view(k, steps, batch).transpose(0, 1).contiguous().to(device)
        keep = _dropout_keep(gens, steps, batch, widths[1:-1], recipe.dropout, device)
        for s in range(steps):
            step_keep = None if keep is None else [m[:, s] for m in keep]
            if recipe.dp:
                clipped_gradients(net, xt, yt, index[s], row_weights[:, s] > 0, step_keep, recipe.dropout,
                                  recipe.dp_max_grad_norm, batch)
                add_noise(net, gens, sigmas * recipe.dp_max_grad_norm / batch)
            else:
                net.gradients(xt, yt, index[s], row_weights[:, s], step_keep, recipe.dropout)
            with turn:
                optimizer_step()
            counter.add(group, k)
            check()
        if stopper is not None and stopper.epoch_done(xt, yt):
            break
    if stopper is not None:
        stopper.restore_best()
    return MLPStack([w.detach().cpu().numpy().copy() for w in net.weights],
                    [b.detach().squeeze(1).cpu().numpy().copy() for b in net.biases])


class _StackedNet:
    """Stacked parameters plus reused work buffers; forward and backward written out by hand.

    weights[l]: fp32 [K, in, out], biases[l]: fp32 [K, 1, out], each with a preallocated .grad, all on
    ``device`` (initialised on the CPU from gens, then moved).
    In bf16 mode the matmul operands are bf16 (weights cast into reused buffers w_low each step, the
    same casts torch.autocast would make) and the weight gradients, computed in bf16 into grad_low,
    are cast back into the fp32 .grad buffers: fp32 master weights and optimizer. With fused (bf16
    only) the optimizer reads grad_low and writes w_low itself: no casts here, no fp32 weight .grad.
    Reusing buffers matters: fresh weight-sized tensors every step cost page faults that rival the
    matmuls.
    """

    def __init__(self, gens: list[torch.Generator], widths: tuple[int, ...], batch: int, bf16: bool,
                 fused: bool = False, label_smoothing: float = 0.0, device: torch.device | str = "cpu") -> None:
        per_model = [[_init_layer(g, a, b) for a, b in pairwise(widths)] for g in gens]
        k, n_layers = len(gens), len(widths) - 1
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.fused = bf16 and fused
        self.weights = [torch.stack([m[i][0] for m in per_model]).to(device) for i in range(n_layers)]
        self.biases = [torch.stack([m[i][1] for m in per_model]).unsqueeze(1).to(device) for i in range(n_layers)]
        for p in self.biases if self.fused else self.weights + self.biases:
            p.grad = torch.empty_like(p)  # always overwritten before use
        self.x = torch.empty(k * batch, widths[0], dtype=self.dtype, device=device)
        if bf16:  # low-precision operand copies of the weights and low-precision weight gradients
            self.w_low = [torch.empty_like(w, dtype=self.dtype) for w in self.weights]
            self.grad_low = [torch.empty_like(w, dtype=self.dtype) for w in self.weights]
        # the cross-entropy's targets: one-hot rows, smoothed to (1 - ε) one-hot + ε / C
        self.eye = (torch.eye(widths[-1]) * (1.0 - label_smoothing) + label_smoothing / widths[-1]).to(device)

    def gradients(self, xt: torch.Tensor, yt: torch.Tensor, index: torch.Tensor, row_weight: torch.Tensor,
                  keep: list[torch.Tensor] | None, p_drop: float) -> None:
        """Fill every .grad (fused: grad_low for the weights) with d(sum_k mean CE_k)/d(param) on the
        minibatch index int64 [K, B].

        row_weight: fp32 [K, B] (1 / batch rows of model k, 0 on padding); keep: per hidden layer
        bool [K, B, width] dropout keep-masks, or None.
        """
        k, batch = index.shape
        flat_index = index.view(-1)
        torch.index_select(xt, 0, flat_index, out=self.x)
        low = self.dtype != torch.float32
        if low and not self.fused:
            for w, w_low in zip(self.weights, self.w_low, strict=True):
                w_low.copy_(w)
        weights = self.w_low if low else self.weights
        biases = [b.to(self.dtype) for b in self.biases]
        scale = 1.0 / (1.0 - p_drop)
        acts = [self.x.view(k, batch, -1)]
        with torch.no_grad():
            for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
                h = torch.baddbmm(b, acts[-1], w)
                if layer < len(weights) - 1:
                    h.relu_()
                    if keep is not None:
                        h.mul_(keep[layer]).mul_(scale)
                acts.append(h)
            grad = torch.softmax(acts[-1], dim=-1, dtype=torch.float32)
            grad.sub_(self.eye[yt[flat_index]].view(k, batch, -1)).mul_(row_weight.unsqueeze(-1))
            for layer in range(len(weights) - 1, -1, -1):
                grad_low = grad.to(self.dtype)
                a_t = acts[layer].transpose(1, 2)
                if low:
                    torch.bmm(a_t, grad_low, out=self.grad_low[layer])
                    if not self.fused:
                        self.weights[layer].grad.copy_(self.grad_low[layer])
                else:
                    torch.bmm(a_t, grad_low, out=self.weights[layer].grad)
                torch.sum(grad, dim=1, keepdim=True, dtype=torch.float32, out=self.biases[layer].grad)
                if layer > 0:
                    grad = torch.bmm(grad_low, weights[layer].transpose(1, 2))
                    grad = torch.ops.aten.threshold_backward(grad, acts[layer], 0)
                    if keep is not None:
                        grad.mul_(scale)


def _dropout_keep(gens: list[torch.Generator], steps: int, batch: int, hidden: tuple[int, ...],
                  p_drop: float, device: torch.device | str = "cpu") -> list[torch.Tensor] | None:
    """Per hidden layer bool [K, steps, batch, width] keep-masks for one epoch, model k from gens[k]
    (drawn on the CPU, moved to device)."""
    if p_drop <= 0:
        return None
    return [torch.stack([torch.rand(steps, batch, width, generator=g) >= p_drop for g in gens]).to(device)
            for width in hidden]
