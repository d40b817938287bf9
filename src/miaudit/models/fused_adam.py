"""Adam / AdamW on fp32 master weights from bf16 gradients, fused with the bf16 operand cast (numba).

One pass per weight tensor over flat contiguous memory: read the bf16 gradient, update the fp32
weight, exp_avg and exp_avg_sq in place, write the bf16 copy of the new weight that the next step's
matmuls use. About 28 bytes per parameter per step, against 40 for torch's three passes (bf16->fp32
gradient copy 6, fused Adam 28, fp32->bf16 weight cast 6).

The math is torch.optim.Adam / AdamW(fused=True)'s CPU kernel operation by operation, its fmas
included: it agrees with torch bit for bit except on the last numel % vector-width elements of a
tensor, where torch's scalar tail rounds exp_avg_sq differently (1 ulp). The bf16 rounding is
torch's fp32->bf16 conversion (round to nearest even, NaN -> 0x7FC0). numba is optional: without it,
or if the kernel fails to compile or to check out, available() is False and callers keep torch's
optimizer. The kernel releases the GIL (worker threads call it at once) and runs on one thread.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic
except ImportError:  # optional dependency: callers fall back to torch's optimizer
    njit = None

# error_model "numpy": x / 0 gives inf instead of raising, so the loop has no branch and vectorizes
_JIT_OPTIONS = dict(nogil=True, fastmath=False, error_model="numpy")


def _jit(fn: Callable) -> Callable:
    """njit with the on-disk cache (numba's __pycache__ next to this file, else ~/.cache/numba or
    NUMBA_CACHE_DIR); without it when no cache directory is writable."""
    try:
        return njit(cache=True, **_JIT_OPTIONS)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(cache=False, **_JIT_OPTIONS)(fn)


if njit is not None:
    @intrinsic
    def _fma(typingctx, a, b, c):
        """float32 a * b + c with one rounding (llvm.fma, a vfmadd instruction)."""
        if not (a == b == c == types.float32):
            return None
        return types.float32(a, b, c), lambda context, builder, sig, args: builder.fma(*args)

    @intrinsic
    def _as_float32(typingctx, bits):
        """The float32 whose bit pattern is ``bits`` (an integer, taken as uint32)."""
        if not isinstance(bits, types.Integer):
            return None
        return types.float32(types.uint32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.FloatType())

    @intrinsic
    def _as_uint32(typingctx, x):
        """The bit pattern of the float32 ``x`` as a uint32."""
        if x != types.float32:
            return None
        return types.uint32(x), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(32))

    def _adam_bf16_kernel(param, exp_avg, exp_avg_sq, grad_bits, out_bits, coupled_decay, decay_factor,
                          avg_weight, beta2, sq_weight, bias2_sqrt, eps, neg_step_size):
        """One Adam step in place over n elements.

        param, exp_avg, exp_avg_sq: float32 [n]; grad_bits: uint16 [n], the bf16 gradient's bits;
        out_bits: uint16 [n], receives bf16(new param). Scalars float32: coupled_decay = Adam's
        weight_decay (0 for AdamW), decay_factor = AdamW's 1 - lr * weight_decay (1 for Adam),
        avg_weight = 1 - beta1, sq_weight = 1 - beta2, bias2_sqrt = sqrt(1 - beta2^t),
        neg_step_size = -lr / (1 - beta1^t).
        """
        shift, one, bias, low = np.uint32(16), np.uint32(1), np.uint32(0x7FFF), np.uint16(0x7FC0)
        coupled = coupled_decay != 0
        for i in range(param.size):
            g = _as_float32(np.uint32(grad_bits[i]) << shift)
            p = param[i]
            if coupled:
                g = _fma(p, coupled_decay, g)
            p = p * decay_factor
            m = _fma(avg_weight, g - exp_avg[i], exp_avg[i])  # exp_avg.lerp_(grad, 1 - beta1)
            v = _fma(sq_weight * g, g, exp_avg_sq[i] * beta2)
            exp_avg[i] = m
            exp_avg_sq[i] = v
            p = p + neg_step_size * m / (np.sqrt(v) / bias2_sqrt + eps)
            param[i] = p
            u = _as_uint32(p)
            out_bits[i] = low if p != p else np.uint16((u + ((u >> shift) & one) + bias) >> shift)


@functools.cache
def kernel() -> Callable | None:
    """The compiled kernel (compiled, or loaded from numba's cache, and checked against torch's
    fused Adam on first call), or None: numba missing, compile error, or a wrong result."""
    if njit is None:
        return None
    for compiled in (lambda: _jit(_adam_bf16_kernel), lambda: njit(cache=False, **_JIT_OPTIONS)(_adam_bf16_kernel)):
        try:
            candidate = compiled()
            if _checks_out(candidate):
                return candidate
        except Exception:  # numba's typing / lowering errors, or an unwritable cache on save
            continue
    return None


def available() -> bool:
    """True when the fused kernel compiled and agrees with torch's fused Adam (decided once)."""
    return kernel() is not None


def _checks_out(fn: Callable) -> bool:
    """Three AdamW steps on 64 random weights agree with torch's fused AdamW within 1e-6 relative, and
    the bf16 copies with torch's cast of the new weights."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(64, generator=gen)
    grads = torch.randn(3, 64, generator=gen).to(torch.bfloat16)
    reference = weight.clone()
    optimizer = torch.optim.AdamW([reference], lr=1e-2, weight_decay=0.1, fused=True)
    fused = Bf16Adam([weight.clone()], [torch.empty_like(grads[0])], [torch.empty_like(grads[0])], lr=1e-2,
                     betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, decoupled=True, fn=fn)
    for g in grads:
        reference.grad = g.float()
        optimizer.step()
        fused.grads[0].copy_(g)
        fused.step()
    return torch.allclose(fused.weights[0], reference, rtol=1e-6, atol=0) and torch.equal(
        fused.low[0], fused.weights[0].to(torch.bfloat16))


def bf16_bits(t: torch.Tensor) -> np.ndarray:
    """uint16 [numel] numpy view of a contiguous bf16 tensor's memory (shares it)."""
    return t.view(-1).view(torch.int16).numpy().view(np.uint16)


class Bf16Adam:
    """torch.optim.Adam (decoupled=False) or AdamW for fp32 weights whose gradients come in bf16.

    weights: fp32 tensors [...] updated in place; grads: bf16 tensors of the same shapes, read at
    step(); low: bf16 tensors, set to bf16(weights) here and after every step. All contiguous.
    lr, betas, eps, weight_decay as torch's Adam; exp_avg / exp_avg_sq: fp32 state like torch's.
    """

    def __init__(self, weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], low: Sequence[torch.Tensor],
                 lr: float, betas: tuple[float, float], eps: float, weight_decay: float, decoupled: bool,
                 fn: Callable | None = None) -> None:
        self.fn = fn if fn is not None else kernel()
        if self.fn is None:
            raise RuntimeError("fused Adam kernel not available (numba missing or failed to compile)")
        self.weights, self.grads, self.low = list(weights), list(grads), list(low)
        self.exp_avg = [torch.zeros_like(w) for w in self.weights]
        self.exp_avg_sq = [torch.zeros_like(w) for w in self.weights]
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.weight_decay, self.decoupled, self.steps = float(weight_decay), decoupled, 0
        self._arrays = []
        for w, g, lo, m, v in zip(self.weights, self.grads, self.low, self.exp_avg, self.exp_avg_sq, strict=True):
            if not (w.dtype == torch.float32 and g.dtype == lo.dtype == torch.bfloat16
                    and w.shape == g.shape == lo.shape and w.is_contiguous() and g.is_contiguous()
                    and lo.is_contiguous()):
                raise ValueError("Bf16Adam: fp32 weights and same-shaped contiguous bf16 grads / low copies")
            lo.copy_(w)
            self._arrays.append((w.view(-1).numpy(), m.view(-1).numpy(), v.view(-1).numpy(), bf16_bits(g),
                                 bf16_bits(lo)))

    def step(self) -> None:
        """One optimizer step for every weight (torch's step count, bias corrections in float64)."""
        self.steps += 1
        beta1, beta2 = self.betas
        step = float(self.steps)
        decay = self.weight_decay
        scalars = [np.float32(s) for s in (
            0.0 if self.decoupled else decay, 1.0 - self.lr * decay if self.decoupled else 1.0,
            1.0 - beta1, beta2, 1.0 - beta2, math.sqrt(1.0 - beta2**step), self.eps,
            -(self.lr / (1.0 - beta1**step)))]
        for arrays in self._arrays:
            self.fn(*arrays, *scalars)
