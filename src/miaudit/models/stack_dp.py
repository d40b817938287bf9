"""DP-SGD inside the MLP stack: per-example clipped gradients and per-model Gaussian noise.

Opacus computes per-example gradients with hooks on nn.Module layers; the stack's layers are batched
matmuls written out by hand (stack.py), so the same arithmetic is written out here: model k's
gradient is sum_i clip(g_i) / batch_size + N(0, (σ_k C / batch_size)^2), as Opacus's DPOptimizer
with expected_batch_size = batch_size (tests/test_dp_sgd.py checks the two agree).
"""
from __future__ import annotations

import numpy as np
import torch


def clipped_gradients(net, xt: torch.Tensor, yt: torch.Tensor, index: torch.Tensor, real: torch.Tensor,
                      keep: list[torch.Tensor] | None, p_drop: float, max_norm: float, batch_size: int) -> None:
    """DP-SGD's gradient without its noise, fp32, into every .grad of net (a stack._StackedNet): the
    sum over model k's real rows of each row's own cross-entropy gradient, clipped to L2 norm
    max_norm over all parameters, divided by batch_size.

    A row's weight gradient in a dense layer is the outer product a_i δ_i^T, whose norm is
    |a_i| |δ_i|, so the per-example norms cost one pass over the activations and the back-propagated
    δ (which clipping only rescales); real: bool [K, B] (False on padding rows).
    """
    k, batch = index.shape
    acts = [xt[index.reshape(-1)].view(k, batch, -1).float()]
    scale = 1.0 / (1.0 - p_drop)
    n_layers = len(net.weights)
    with torch.no_grad():
        for layer, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
            h = torch.baddbmm(b, acts[-1], w)
            if layer < n_layers - 1:
                h.relu_()
                if keep is not None:
                    h.mul_(keep[layer]).mul_(scale)
            acts.append(h)
        delta = torch.softmax(acts[-1], dim=-1)
        delta.sub_(net.eye[yt[index.reshape(-1)]].view(k, batch, -1))
        deltas, squared = [None] * n_layers, torch.zeros(k, batch, device=xt.device)
        for layer in range(n_layers - 1, -1, -1):
            deltas[layer] = delta
            d2 = delta.square().sum(-1)
            squared += acts[layer].square().sum(-1) * d2 + d2
            if layer > 0:
                delta = torch.ops.aten.threshold_backward(torch.bmm(delta, net.weights[layer].transpose(1, 2)),
                                                          acts[layer], 0)
                if keep is not None:
                    delta.mul_(scale)
        factor = (max_norm / (squared.sqrt() + 1e-6)).clamp_(max=1.0).mul_(real).div_(batch_size).unsqueeze(-1)
        for layer in range(n_layers):
            clipped = deltas[layer] * factor
            torch.bmm(acts[layer].transpose(1, 2), clipped, out=net.weights[layer].grad)
            torch.sum(clipped, dim=1, keepdim=True, out=net.biases[layer].grad)


def add_noise(net, gens: list[torch.Generator], std: np.ndarray) -> None:
    """Add N(0, std[k]^2) to every gradient entry of model k, drawn from gens[k] (layer by layer, on
    the CPU, then moved to the gradients' device)."""
    for p in net.weights + net.biases:
        noise = torch.stack([torch.randn(p.shape[1:], generator=g) for g in gens])
        noise.mul_(torch.from_numpy(std).float().view(-1, *[1] * (p.dim() - 1)))
        p.grad.add_(noise.to(p.grad.device))
