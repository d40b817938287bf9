"""CNNStack: K trained CNNs of one architecture (cnn_spec.Plan), parameters stacked on a model axis,
and the stacked forward pass that trains and runs them.

Layout: the K models' feature maps side by side on the channel axis, [B, K * C, H, W] in channels-
last memory, so every conv is one grouped convolution (groups=K) and every pool one pool; after the
flatten, activations are [K, B, F] and dense layers are batched matmuls. At inference all models see
the same records: the first conv is then one plain convolution with the K models' filters
concatenated. Training lives in cnn_stack.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from miaudit.errors import InputError
from miaudit.models.cnn_spec import Conv, Dense, Flatten, MaxPool, Plan, ReLU, build_module, conv_padding, pool_size
from miaudit.models.denormals import flush_denormals
from miaudit.models.perf import resolve_cnn_precision

_INFERENCE_FLOATS = 1 << 25  # bound on one activation block [rows, models x channels, H, W] at inference
INFERENCE_GROUP = 16  # models per grouped forward at inference; a model's logits depend (in rounding) on its group
Params = list[tuple[torch.Tensor, torch.Tensor] | None]


def stacked_forward(plan: Plan, params: Params, x: torch.Tensor, k: int, shared: bool = False) -> torch.Tensor:
    """Logits [K, B, n_classes] of the K models.

    params[l]: (weight [K, *nn layout], bias [K, out]) for conv / dense layers, None otherwise.
    x: [B, K * C, H, W] (model k's own images in channels k*C..(k+1)*C), or with ``shared`` [B, C, H, W]
    seen by every model.
    """
    h = x
    batch = x.shape[0]
    for i, (layer, shape, p) in enumerate(zip(plan.layers, plan.shapes, params, strict=False)):
        if isinstance(layer, Conv):
            w, b = p
            pads = conv_padding(layer, shape[1:])
            padding: tuple[int, int] | int = 0
            if pads[0] == pads[1] and pads[2] == pads[3]:
                padding = (pads[2], pads[0])
            else:
                h = F.pad(h, pads)
            groups = 1 if shared and i == 0 else k
            h = F.conv2d(h, w.reshape(k * w.shape[1], *w.shape[2:]), b.reshape(-1), layer.stride, padding,
                         groups=groups)
            continue
        if shared and i == 0:  # a first layer without parameters: every model gets its own copy
            h = h.repeat(1, k, 1, 1)
        if isinstance(layer, MaxPool):  # training: torch's kernel, whose backward is cheaper
            h = F.max_pool2d(h, layer.kernel, layer.stride, ceil_mode=layer.ceil) if torch.is_grad_enabled() \
                else max_pool(h, layer)
        elif isinstance(layer, ReLU):
            h = torch.relu(h) if torch.is_grad_enabled() else h.relu_()
        elif isinstance(layer, Flatten):
            h = h.reshape(batch, k, -1).transpose(0, 1)
        elif isinstance(layer, Dense):
            w, b = p
            h = torch.baddbmm(b.unsqueeze(1).to(h.dtype), h, w.transpose(1, 2).to(h.dtype))
    return h


def max_pool(h: torch.Tensor, layer: MaxPool) -> torch.Tensor:
    """F.max_pool2d(h, kernel, stride, ceil_mode) as running maxima of strided slices, first over rows
    then over columns (max pooling is separable): the same values, for inference (its backward is
    slower than torch's). torch's CPU max_pool2d kernel on channels-last maps took most of the stacked
    inference time (docs/cnn-stack.md)."""
    k, s = layer.kernel, layer.stride
    height, width = h.shape[-2:]
    out_h, out_w = pool_size(height, layer), pool_size(width, layer)
    pad_h, pad_w = max(0, (out_h - 1) * s + k - height), max(0, (out_w - 1) * s + k - width)
    if pad_h or pad_w:  # ceil mode: windows running past the edge see -inf there
        h = F.pad(h, (0, pad_w, 0, pad_h), value=float("-inf"))
    span_h, span_w = (out_h - 1) * s + 1, (out_w - 1) * s + 1
    rows = h[..., 0:span_h:s, :]
    for i in range(1, k):
        rows = torch.maximum(rows, h[..., i:i + span_h:s, :])
    out = rows[..., 0:span_w:s]
    for j in range(1, k):
        out = torch.maximum(out, rows[..., j:j + span_w:s])
    return out


@dataclass
class CNNStack:
    """K trained CNNs of one plan; params[l] = (weight float32 [K, ...], bias [K, out]) or None."""

    plan: Plan
    params: list[tuple[np.ndarray, np.ndarray] | None]

    @property
    def n_models(self) -> int:
        return int(next(p for p in self.params if p is not None)[0].shape[0])

    @property
    def n_classes(self) -> int:
        return self.plan.n_classes

    @flush_denormals()
    def logits(self, x: np.ndarray, batch_size: int = 64, precision: str = "float32",
               device: str = "cpu") -> np.ndarray:
        """float32 [K, m, C] logits of every model on images x float32 [m, C, H, W].

        bfloat16 runs the convolutions and matmuls under torch.autocast (fp32 parameters). A model's
        logits do not depend on the other models of the stack beyond float rounding. device: "cpu"
        or "cuda" (resolved by perf.resolve_device).
        """
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.plan.input_shape:
            raise InputError(f"x: records of shape {x.shape[1:]}, the models expect {self.plan.input_shape}")
        bf16 = resolve_cnn_precision(precision, device) == "bfloat16"
        k, m = self.n_models, len(x)
        out = np.empty((k, m, self.n_classes), np.float32)
        widest = max(int(np.prod(s)) for s in self.plan.shapes)
        group = min(k, INFERENCE_GROUP)
        rows = max(1, min(batch_size, _INFERENCE_FLOATS // (INFERENCE_GROUP * widest)))  # small blocks stay in cache
        params = [None if p is None else (torch.from_numpy(p[0]).to(device), torch.from_numpy(p[1]).to(device))
                  for p in self.params]
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            for k0 in range(0, k, group):
                part = [None if p is None else (p[0][k0:k0 + group], p[1][k0:k0 + group]) for p in params]
                g = min(group, k - k0)
                for r0 in range(0, m, rows):
                    xb = torch.from_numpy(x[r0:r0 + rows]).to(device).contiguous(memory_format=torch.channels_last)
                    logits = stacked_forward(self.plan, part, xb, g, shared=True)
                    out[k0:k0 + g, r0:r0 + rows] = logits.float().cpu().numpy()
        return out

    def module(self, k: int) -> torch.nn.Sequential:
        """Model k as a plain torch module (cnn_spec.build_module) holding its trained parameters, eval mode."""
        module = build_module(self.plan)
        layers = [m for m in module if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        with torch.no_grad():
            for m, (w, b) in zip(layers, [p for p in self.params if p is not None], strict=True):
                m.weight.copy_(torch.from_numpy(w[k]))
                m.bias.copy_(torch.from_numpy(b[k]))
        return module.eval()

    def select(self, k: int | Sequence[int]) -> CNNStack:
        """The sub-stack of model k (K=1) or of the models listed, in that order."""
        index = [k] if isinstance(k, (int, np.integer)) else list(k)
        if not index or min(index) < -self.n_models or max(index) >= self.n_models:
            raise InputError(f"select: model index {k} outside 0..{self.n_models - 1}")
        return CNNStack(self.plan, [None if p is None else (p[0][index].copy(), p[1][index].copy())
                                    for p in self.params])

    @staticmethod
    def concat(stacks: Sequence[CNNStack]) -> CNNStack:
        """One stack holding the models of ``stacks`` in order (all of the same plan)."""
        if not stacks:
            raise InputError("stacks: nothing to concatenate")
        if any(s.plan != stacks[0].plan for s in stacks):
            raise InputError("stacks: architectures differ")
        params = [None if p is None else (np.concatenate([s.params[i][0] for s in stacks]),
                                          np.concatenate([s.params[i][1] for s in stacks]))
                  for i, p in enumerate(stacks[0].params)]
        return CNNStack(stacks[0].plan, params)

    def state(self, k: int) -> dict[str, np.ndarray]:
        """Model k's parameters: {"w<layer>": weight (nn layout), "b<layer>": bias} (copies)."""
        state: dict[str, np.ndarray] = {}
        for i, p in enumerate(self.params):
            if p is not None:
                state[f"w{i}"], state[f"b{i}"] = p[0][k].copy(), p[1][k].copy()
        return state

    @classmethod
    def from_states(cls, plan: Plan, states: Sequence[dict[str, np.ndarray]]) -> CNNStack:
        """The stack of models given by ``state()`` dicts; InputError when one does not fit the plan."""
        if not states or not all(state_fits(plan, s) for s in states):
            raise InputError("states: model states missing or not of this architecture")
        return cls(plan, [None if shape is None else
                          (np.stack([np.asarray(s[f"w{i}"], np.float32) for s in states]),
                           np.stack([np.asarray(s[f"b{i}"], np.float32) for s in states]))
                          for i, shape in enumerate(plan.param_shapes)])


def state_fits(plan: Plan, state: object) -> bool:
    """Does ``state`` look like CNNStack.state() of a model of this plan?"""
    if not isinstance(state, dict) or len(state) != 2 * sum(p is not None for p in plan.param_shapes):
        return False
    for i, shape in enumerate(plan.param_shapes):
        if shape is None:
            continue
        w, b = state.get(f"w{i}"), state.get(f"b{i}")
        if not (isinstance(w, np.ndarray) and w.shape == shape[0] and isinstance(b, np.ndarray)
                and b.shape == shape[1]):
            return False
    return True
