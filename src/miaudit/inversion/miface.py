"""MIFace model inversion (Fredrikson, Jha and Ristenpart, CCS 2015, Algorithm 1).

For each class c, gradient descent on the input x (from zeros or a given start) on the cost
c(x) = 1 - p_c(x): x <- Process(x - lr * grad c(x)), where Process clips x to its range and, if
asked, blurs it (a Gaussian of ``smoothing`` pixels, the paper's denoising step). A class stops when
its cost is at most ``cost_threshold``, when its cost is not below the largest of its previous
``window`` costs (no more progress; judged from step ``window`` on), or after ``max_iter`` steps;
its reconstruction is the point of lowest cost seen. All classes descend together, one batched
forward / backward per step.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from miaudit.errors import InputError

OBJECTIVES = ("probability", "log-probability")


@dataclass
class Inversion:
    """reconstructions float32 [C', *feature_shape], probabilities float [C'] the model's probability
    of each class at its reconstruction, iterations int [C'] steps taken, classes int [C'].
    Unpacks as ``reconstructions, probabilities``."""

    reconstructions: np.ndarray
    probabilities: np.ndarray
    iterations: np.ndarray
    classes: np.ndarray

    def __iter__(self):
        return iter((self.reconstructions, self.probabilities))


class Standardize(nn.Module):
    """x -> (x - mean) / scale, the input scaling a model was trained behind (mean, scale broadcast
    to one record's shape)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


def as_torch_module(model) -> nn.Module:
    """A differentiable module giving logits [n, C] for a torch module, a miaudit TorchTarget
    (``.module``) or a one-model MLP StackTarget (``.stack``, rebuilt as Linear / ReLU layers)."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(getattr(model, "module", None), nn.Module):
        return model.module
    stack = getattr(model, "stack", None)
    if stack is not None and getattr(stack, "n_models", 0) == 1:
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (w, b) in enumerate(zip(stack.weights, stack.biases, strict=True)):
            linear = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w[0].T.copy()))
                linear.bias.copy_(torch.from_numpy(b[0].copy()))
            layers += [linear] if i == len(stack.weights) - 1 else [linear, nn.ReLU()]
        return nn.Sequential(*layers)
    raise InputError(f"invert: model inversion needs the model's gradients (a torch model); "
                     f"got {type(model).__name__}")


def invert(model, n_classes: int, feature_shape: Sequence[int], *, classes: Sequence[int] | None = None,
           start: np.ndarray | None = None, max_iter: int = 5000, window: int = 100,
           cost_threshold: float = 0.01, lr: float = 0.1, clip: tuple[float, float] | None = (0.0, 1.0),
           smoothing: float = 0.0, objective: str = "probability") -> Inversion:
    """One reconstruction per class (``classes``, default all n_classes) of ``model``.

    model: anything :func:`as_torch_module` takes; it maps [n, *feature_shape] to logits [n, C].
    start: float [*feature_shape] or [C', *feature_shape] (default zeros). clip: the input range
    (None: unbounded). smoothing: Gaussian blur sigma in pixels after each step (images [ch, h, w]
    only; 0 = none). objective: descend on 1 - p_c (Fredrikson's cost) or -log p_c (its gradient does
    not vanish where p_c is tiny); stopping is judged on 1 - p_c either way.
    """
    with _one_torch_thread():  # a batch of C records: more threads only contend (8x slower on a busy box)
        return _invert(model, n_classes, feature_shape, classes, start, max_iter, window, cost_threshold, lr, clip,
                       smoothing, objective)


def _invert(model, n_classes, feature_shape, classes, start, max_iter, window, cost_threshold, lr, clip,
            smoothing, objective) -> Inversion:
    module = as_torch_module(model).eval()
    shape = tuple(int(s) for s in feature_shape)
    wanted = np.arange(n_classes) if classes is None else np.asarray(classes, np.int64)
    _check(n_classes, shape, wanted, max_iter, window, cost_threshold, lr, clip, smoothing, objective)
    m = len(wanted)
    x0 = np.zeros((m, *shape), np.float32) if start is None else np.broadcast_to(
        np.asarray(start, np.float32), (m, *shape)).copy()
    if x0.shape != (m, *shape):
        raise InputError(f"start: shape {np.shape(start)} does not match the features {shape}")
    x = torch.from_numpy(x0)
    if clip is not None:
        x = x.clamp(*clip)
    target = torch.from_numpy(wanted)
    blur = _gaussian_blur(shape, smoothing) if smoothing > 0 else None
    best_x = x.clone()
    best_cost = torch.full((m,), np.inf, dtype=torch.float64)
    history = torch.full((m, window), -np.inf, dtype=torch.float64)  # last `window` costs per class
    active = torch.ones(m, dtype=torch.bool)
    iterations = np.zeros(m, np.int64)
    rows = torch.arange(m)
    for step in range(max_iter + 1):
        x.requires_grad_(True)
        logits = module(x)
        if logits.shape != (m, n_classes):
            raise InputError(f"invert: the model gives outputs of shape {tuple(logits.shape)}, "
                             f"expected [{m}, {n_classes}]")
        log_p = torch.log_softmax(logits.float(), dim=1)[rows, target]
        cost = 1 - log_p.detach().double().exp()
        better = active & (cost < best_cost)
        best_cost = torch.where(better, cost, best_cost)
        best_x[better] = x.detach()[better]
        # no progress: not below the largest of the last `window` costs (judged once there are `window`)
        stop = (cost <= cost_threshold) | ((step >= window) & (cost >= history.max(dim=1).values))
        active &= ~stop
        if step == max_iter or not active.any():
            break
        history[:, step % window] = torch.where(active, cost, history[:, step % window])
        loss = -log_p if objective == "log-probability" else 1 - log_p.exp()
        (grad,) = torch.autograd.grad(loss[active].sum(), x)
        with torch.no_grad():
            x = x.detach()
            x[active] -= lr * grad[active]
            if blur is not None:
                x[active] = blur(x[active])
            if clip is not None:
                x.clamp_(*clip)
        iterations[active.numpy()] += 1
    return Inversion(best_x.numpy(), 1 - best_cost.numpy(), iterations, wanted)


def check_settings(n_classes: int, feature_shape: Sequence[int], **settings) -> None:
    """InputError now for settings ``invert`` would refuse (before any model is trained)."""
    bound = inspect.signature(invert).bind(None, n_classes, feature_shape, **settings)
    bound.apply_defaults()
    a = bound.arguments
    wanted = np.arange(n_classes) if a["classes"] is None else np.asarray(a["classes"], np.int64)
    _check(n_classes, tuple(int(s) for s in feature_shape), wanted, a["max_iter"], a["window"],
           a["cost_threshold"], a["lr"], a["clip"], a["smoothing"], a["objective"])


@contextmanager
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check(n_classes, shape, wanted, max_iter, window, cost_threshold, lr, clip, smoothing, objective) -> None:
    if n_classes < 2:
        raise InputError(f"n_classes: need at least 2 classes, got {n_classes}")
    if not shape or min(shape) < 1:
        raise InputError(f"feature_shape: must be positive sizes, got {shape}")
    if len(wanted) == 0 or wanted.min() < 0 or wanted.max() >= n_classes:
        raise InputError(f"classes: each must be in [0, {n_classes})")
    if max_iter < 0 or window < 1:
        raise InputError(f"max_iter must be >= 0 and window >= 1, got {max_iter} and {window}")
    if not 0 <= cost_threshold < 1:
        raise InputError(f"cost_threshold: must be in [0, 1), got {cost_threshold}")
    if not lr > 0:
        raise InputError(f"lr: must be positive, got {lr}")
    if clip is not None and not clip[0] < clip[1]:
        raise InputError(f"clip: need low < high, got {clip}")
    if smoothing < 0 or (smoothing > 0 and len(shape) != 3):
        raise InputError(f"smoothing: a blur sigma >= 0, for images [channels, height, width] only (got "
                         f"{smoothing} for features {shape})")
    if objective not in OBJECTIVES:
        raise InputError(f"objective: {objective!r} is not one of {', '.join(OBJECTIVES)}")


def _gaussian_blur(shape: tuple[int, ...], sigma: float):
    """x [n, ch, h, w] -> the same blurred per channel by a normalised Gaussian of sigma pixels."""
    channels = shape[0]
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(x, (radius,) * 4, mode="replicate")
        return torch.nn.functional.conv2d(padded, kernel, groups=channels)

    return blur
