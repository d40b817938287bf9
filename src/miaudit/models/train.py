"""Training and running one torch model (CNNs etc.) by a TrainingRecipe, without touching global RNG state."""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.denormals import flush_denormals
from miaudit.models.devices import device_arithmetic, on_cpu
from miaudit.models.dp_sgd import noise_multiplier
from miaudit.models.perf import resolve_device_precision
from miaudit.models.recipe import TrainingRecipe, validation_split


def seeded_module(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``factory()`` with parameters initialised from ``seed``; the global torch RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _optimizer(module: nn.Module, recipe: TrainingRecipe) -> torch.optim.Optimizer:
    params = module.parameters()
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def _mean_loss(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, bf16: bool) -> float:
    module.eval()
    total = 0.0
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(x), batch_size):
            logits = module(x[start:start + batch_size]).float()
            total += float(F.cross_entropy(logits, y[start:start + batch_size], reduction="sum"))
    return total / max(len(x), 1)


def train_torch_model(module: nn.Module, x: np.ndarray, y: np.ndarray, recipe: TrainingRecipe, seed: int,
                      precision: str = "auto", progress: Callable[[int], None] | None = None,
                      device: str = "cpu") -> nn.Module:
    """Train ``module`` in place on x float32 [n, ...] and y int [n] labels; returns it in eval mode.

    Minibatches are shuffled by ``torch.Generator().manual_seed(seed)``; dropout draws from a forked
    RNG seeded with ``seed``, so the global torch RNG state is unchanged. With recipe.patience > 0,
    training stops after ``patience`` epochs without a lower (unsmoothed) loss on a seeded
    recipe.validation_fraction split and the weights of the best epoch are restored;
    recipe.label_smoothing smooths the training targets. progress(epochs_done) is called after each epoch.
    Denormals flush to zero meanwhile (denormals.flush_denormals), as in torch_logits.
    device "cpu" or "cuda" (resolved by perf.resolve_device): where the module, data and optimizer live
    while training (TF32 allowed, bf16 autocast where the GPU has it; dropout draws from the GPU's
    generator, seeded and restored the same way); the module comes back on the CPU.
    """
    if len(x) != len(y):
        raise InputError(f"training data: {len(x)} feature rows but {len(y)} labels")
    if len(x) == 0:
        raise InputError("training data: no records")
    with device_arithmetic(device):
        return _train(module.to(device), x, y, recipe, seed, precision, progress, device).cpu()


def _train(module: nn.Module, x: np.ndarray, y: np.ndarray, recipe: TrainingRecipe, seed: int, precision: str,
           progress: Callable[[int], None] | None, device: str) -> nn.Module:
    """train_torch_model's loop, module already on device."""
    bf16 = resolve_device_precision(precision, device) == "bfloat16" and not recipe.dp
    train_idx, val_idx = validation_split(len(x), recipe, seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)  # on the CPU: no copy
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)
    x_train, y_train = xt[train_idx], yt[train_idx]
    x_val, y_val = xt[val_idx], yt[val_idx]
    early_stopping = len(val_idx) > 0

    shuffle = torch.Generator().manual_seed(seed)
    optimizer = _optimizer(module, recipe)
    forward, private = module, None
    if recipe.dp:
        forward, optimizer = private = _make_private(module, optimizer, recipe, len(train_idx), seed, device)
    best_loss, best_state, epochs_since_best = float("inf"), None, 0
    gpus = [] if on_cpu(device) else list(range(torch.cuda.device_count()))  # torch.manual_seed seeds them all
    with torch.random.fork_rng(devices=gpus), warnings.catch_warnings():
        # Opacus's hooks on the first layer: the records need no gradient, which torch mentions each step
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        torch.manual_seed(seed)
        for epoch in range(recipe.epochs):
            module.train()
            order = torch.randperm(len(x_train), generator=shuffle).to(device)
            for start in range(0, len(order), recipe.batch_size):
                batch = order[start:start + recipe.batch_size]
                with torch.autocast(xt.device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = forward(x_train[batch])
                loss = F.cross_entropy(logits.float(), y_train[batch], label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if progress is not None:
                progress(epoch + 1)
            if early_stopping:
                val_loss = _mean_loss(module, x_val, y_val, max(recipe.batch_size, 256), bf16)
                if val_loss < best_loss:
                    best_loss, epochs_since_best = val_loss, 0
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    epochs_since_best += 1
                    if epochs_since_best >= recipe.patience:
                        break
    if private is not None:
        private[0].remove_hooks()
        for p in module.parameters():
            p.grad_sample = None
    if best_state is not None:
        module.load_state_dict(best_state)
    return module.eval()


def _make_private(module: nn.Module, optimizer: torch.optim.Optimizer, recipe: TrainingRecipe, n_train: int,
                  seed: int, device: str = "cpu"):
    """(Opacus GradSampleModule of module, DPOptimizer around optimizer): per-example clipping to
    recipe.dp_max_grad_norm and Gaussian noise (σ from dp_sgd.noise_multiplier) drawn from a generator
    seeded with ``seed``; mean over expected_batch_size = batch_size, as the MLP stack's DP-SGD."""

    opacus = require("opacus", "dp", "--dp-epsilon")
    sigma = noise_multiplier(recipe, n_train)
    wrapped = opacus.GradSampleModule(module)
    private = opacus.optimizers.DPOptimizer(optimizer, noise_multiplier=sigma, max_grad_norm=recipe.dp_max_grad_norm,
                                            expected_batch_size=recipe.batch_size,
                                            generator=torch.Generator(device).manual_seed(seed + 1))
    return wrapped, private


@flush_denormals()
def torch_logits(module: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """float32 [n, C] logits of ``module`` on x float32 [n, ...], in eval mode, batched."""
    module.eval()
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():
        starts = range(0, len(xt), batch_size) if len(xt) else [0]
        parts = [module(xt[start:start + batch_size]).float() for start in starts]
    return torch.cat(parts).numpy()
