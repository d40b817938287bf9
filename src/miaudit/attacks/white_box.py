"""Per-example norms of the cross-entropy loss gradient with respect to a model's parameters.

Torch modules (TorchTarget): torch.func, ``vmap(grad(loss))`` over the records of a batch with the
module's parameters passed by ``functional_call`` (eval mode). MLP stacks (StackTarget, and every
model of an MLPStack at once): exactly, without per-example gradient tensors: a linear layer's
weight gradient for one record is the outer product of its input a and output error delta, so its
norm is |a| |delta| and the layer's (weight and bias) norm is |delta| sqrt(|a|^2 + 1).

Norms come per layer (a torch module's layers are the prefixes of its parameter names, e.g.
"classifier.1"; an MLP's are "layer0", "layer1", ...) and over all parameters ("all").
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from miaudit.errors import InputError
from miaudit.models.mlp_stack import MLPStack, flatten_records
from miaudit.models.wrappers import mlp_stack_of

BATCH = 256
_GRADIENT_FLOATS = 1 << 26  # per-example gradients held at once (256 MB of float32)


def gradient_norms(model, x: np.ndarray, y: np.ndarray, batch_size: int = BATCH) -> dict[str, np.ndarray]:
    """{"all": float64 [n], layer name: float64 [n], ...} gradient norms of model (a TorchTarget or
    StackTarget) on records x [n, ...] with labels y int [n]. InputError for other models."""
    stack = mlp_stack_of(model)
    if stack is not None:
        return {name: v[0] for name, v in stack_gradient_norms(stack, x, y, batch_size).items()}
    if isinstance(getattr(model, "module", None), torch.nn.Module):
        return module_gradient_norms(model.module, x, y, batch_size)
    raise InputError(f"gradient-norm: needs a torch model whose parameters it can read, got {type(model).__name__}")


def module_gradient_norms(module: torch.nn.Module, x: np.ndarray, y: np.ndarray,
                          batch_size: int = BATCH) -> dict[str, np.ndarray]:
    """gradient_norms of a torch module (logits out), vectorised with torch.func."""
    from torch.func import functional_call, grad, vmap

    module = module.eval()
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}
    layers = sorted({name.rpartition(".")[0] or name for name in params})

    def loss(p, xi, yi):
        logits = functional_call(module, (p, buffers), (xi[None],))
        return F.cross_entropy(logits.float(), yi[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    n_params = sum(p.numel() for p in params.values())
    batch_size = max(1, min(batch_size, _GRADIENT_FLOATS // max(n_params, 1)))  # per-example grads in memory
    squares: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for s in range(0, len(xt), batch_size):
        grads = per_example(params, xt[s:s + batch_size], yt[s:s + batch_size])
        sums: dict[str, torch.Tensor] = {}
        for name, g in grads.items():
            layer = name.rpartition(".")[0] or name
            sums[layer] = sums.get(layer, 0.0) + g.double().flatten(1).pow(2).sum(1)
        for layer in layers:
            squares[layer].append(sums[layer].numpy())
    per_layer = {layer: np.concatenate(v) if v else np.zeros(0) for layer, v in squares.items()}
    return _with_total(per_layer)


def stack_gradient_norms(stack: MLPStack, x: np.ndarray, y: np.ndarray, batch_size: int = BATCH,
                         models: list[int] | None = None) -> dict[str, np.ndarray]:
    """{"all": float64 [K, n], "layer0": [K, n], ...}: gradient norms of every model of an MLP stack
    (or of ``models``) on x [n, ...] with labels y int [n], exactly (module docstring)."""
    flat = flatten_records(x, "x")
    yt = torch.from_numpy(np.asarray(y, np.int64))
    index = list(range(stack.n_models)) if models is None else list(models)
    weights = [torch.from_numpy(w[index]).double() for w in stack.weights]
    biases = [torch.from_numpy(b[index]).double() for b in stack.biases]
    n_layers = len(weights)
    squares = [[] for _ in range(n_layers)]
    with torch.no_grad():
        for s in range(0, len(flat), batch_size):
            xb = torch.from_numpy(flat[s:s + batch_size]).double()
            acts = [xb.expand(len(index), *xb.shape)]  # inputs of each layer [K, m, in]
            pre = []
            for w, b in zip(weights, biases, strict=True):
                z = torch.matmul(acts[-1], w) + b[:, None, :]
                pre.append(z)
                acts.append(z.relu())
            delta = torch.softmax(pre[-1], dim=-1)
            delta[..., :] -= F.one_hot(yt[s:s + batch_size], delta.shape[-1]).double()
            for layer in range(n_layers - 1, -1, -1):
                a2 = acts[layer].pow(2).sum(-1)
                squares[layer].append((delta.pow(2).sum(-1) * (a2 + 1.0)).numpy())
                if layer:
                    delta = torch.matmul(delta, weights[layer].transpose(1, 2)) * (pre[layer - 1] > 0)
    per_layer = {f"layer{i}": np.concatenate(v, axis=1) if v else np.zeros((len(index), 0))
                 for i, v in enumerate(squares)}
    return _with_total(per_layer)


def _with_total(squares: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Norms from squared norms per layer, with "all" first."""
    total = sum(squares.values())
    return {"all": np.sqrt(total), **{k: np.sqrt(v) for k, v in squares.items()}}
