"""MLPStack: K trained ReLU MLPs of one shape, weights stacked [K, in, out], and their inference.

Training lives in stack.py; this is what it returns and what the cache stores (per-model states).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from miaudit.errors import InputError
from miaudit.models.devices import device_arithmetic
from miaudit.models.perf import resolve_precision

_INFERENCE_FLOATS = 1 << 24  # bound on one hidden activation block [models, rows, width] at inference


@dataclass
class MLPStack:
    """K trained MLPs of one shape, weights as float32 numpy.

    weights[l]: [K, in_l, out_l]; biases[l]: [K, out_l]; in_0 = n_features, out_last = n_classes.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @property
    def n_models(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def n_features(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.weights[-1].shape[2])

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(w.shape[2]) for w in self.weights[:-1])

    def logits(self, x: np.ndarray, batch_size: int = 4096, precision: str = "float32",
               device: str = "cpu") -> np.ndarray:
        """float32 [K, m, C] logits of every model on x (float32 [m, ...], flattened to [m, d]).

        float32: batched per-model matmuls, so a model's logits are bit-identical in any stack.
        bfloat16: the first layer, which every model applies to the same rows, is one bf16 GEMM over
        the models' concatenated weights [d, K * width] with fp32 output, about 2x faster on CPUs with
        bf16 units; logits move by ~1e-2 (and by the last bits with the stack), attack results by
        noise. Later layers and biases stay fp32. Denormals flush to zero meanwhile.
        device: "cpu" or "cuda" (resolved by perf.resolve_device): where the weights and each block of
        rows go; on cuda fp32 matmuls may use TF32 (devices.device_arithmetic). Returns CPU numpy.
        """
        flat = flatten_records(x, "x")
        if flat.shape[1] != self.n_features:
            raise InputError(f"x: {flat.shape[1]} features per record, the models expect {self.n_features}")
        bf16 = resolve_precision(precision) == "bfloat16"
        k, m = self.n_models, len(flat)
        out = np.empty((k, m, self.n_classes), np.float32)
        rows = max(1, batch_size)
        group = max(1, _INFERENCE_FLOATS // (rows * max((*self.hidden, self.n_classes))))
        weights = [torch.from_numpy(w).to(device) for w in self.weights]  # on the CPU: no copy
        biases = [torch.from_numpy(b).unsqueeze(1).to(device) for b in self.biases]
        with torch.no_grad(), device_arithmetic(device):
            for k0 in range(0, k, group):
                models = slice(k0, k0 + group)
                w0 = weights[0][models]
                g, d, width = w0.shape
                first = w0.permute(1, 0, 2).reshape(d, g * width).bfloat16() if bf16 else w0  # [d, g*width]
                for r0 in range(0, m, rows):
                    xb = torch.from_numpy(flat[r0 : r0 + rows]).to(device)
                    if bf16:  # bias added in place in the GEMM's [rows, g * width] layout
                        h = (xb.bfloat16() @ first).float().add_(biases[0][models].reshape(1, g * width))
                        h = h.view(len(xb), g, width).transpose(0, 1)
                    else:
                        h = torch.matmul(xb, first) + biases[0][models]
                    for w, b in zip(weights[1:], biases[1:], strict=True):
                        h = torch.matmul(h.relu_(), w[models]) + b[models]
                    out[models, r0 : r0 + rows] = h.cpu().numpy()
        return out

    def select(self, k: int | Sequence[int]) -> MLPStack:
        """The sub-stack of model k (K=1) or of the models listed, in that order."""
        index = [k] if isinstance(k, (int, np.integer)) else list(k)
        if not index or min(index) < -self.n_models or max(index) >= self.n_models:
            raise InputError(f"select: model index {k} outside 0..{self.n_models - 1}")
        return MLPStack([w[index].copy() for w in self.weights], [b[index].copy() for b in self.biases])

    @staticmethod
    def concat(stacks: Sequence[MLPStack]) -> MLPStack:
        """One stack holding the models of ``stacks`` in order (all of the same shape)."""
        if not stacks:
            raise InputError("stacks: nothing to concatenate")
        shape = _shape(stacks[0])
        for s in stacks:
            if _shape(s) != shape:
                raise InputError(f"stacks: model shapes differ, {_shape(s)} vs {shape}")
        n_layers = len(stacks[0].weights)
        return MLPStack([np.concatenate([s.weights[i] for s in stacks]) for i in range(n_layers)],
                        [np.concatenate([s.biases[i] for s in stacks]) for i in range(n_layers)])

    def state(self, k: int) -> dict[str, np.ndarray]:
        """Model k's parameters: {"w0": [in, out], "b0": [out], "w1": ..., ...} (copies)."""
        state: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            state[f"w{i}"], state[f"b{i}"] = w[k].copy(), b[k].copy()
        return state

    @classmethod
    def from_states(cls, states: Sequence[dict[str, np.ndarray]]) -> MLPStack:
        """The stack of models given by ``state()`` dicts (shapes read from the arrays)."""
        if not states:
            raise InputError("states: no model states given")
        n_layers = sum(1 for key in states[0] if key.startswith("w"))
        try:
            weights = [np.stack([np.asarray(s[f"w{i}"], np.float32) for s in states]) for i in range(n_layers)]
            biases = [np.stack([np.asarray(s[f"b{i}"], np.float32) for s in states]) for i in range(n_layers)]
        except (KeyError, ValueError) as err:
            raise InputError(f"states: inconsistent model states ({err})") from None
        return cls(weights, biases)


def _shape(stack: MLPStack) -> tuple[int, ...]:
    return (stack.n_features, *stack.hidden, stack.n_classes)


def flatten_records(x: np.ndarray, field: str) -> np.ndarray:
    """float32 [n, d], C-contiguous: records [n, ...] flattened; InputError unless x has a record axis."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise InputError(f"{field}: expected an array [n, features...], got shape {x.shape}")
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
