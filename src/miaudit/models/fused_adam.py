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


    def _adam_fp32_kernel(param, exp_avg, exp_avg_sq, grad, coupled_decay, decay_factor, avg_weight, beta2,
                          sq_weight, bias2_sqrt, eps, neg_step_size):
        """:func:`_adam_bf16_kernel` for a float32 gradient ``grad`` [n] and no bf16 copy (the biases)."""
        coupled = coupled_decay != 0
        for i in range(param.size):
            g = grad[i]
            p = param[i]
            if coupled:
                g = _fma(p, coupled_decay, g)
            p = p * decay_factor
            m = _fma(avg_weight, g - exp_avg[i], exp_avg[i])
            v = _fma(sq_weight * g, g, exp_avg_sq[i] * beta2)
            exp_avg[i] = m
            exp_avg_sq[i] = v
            param[i] = p + neg_step_size * m / (np.sqrt(v) / bias2_sqrt + eps)


@functools.cache
def kernels() -> tuple[Callable, Callable] | None:
    """The compiled (bf16-gradient, fp32-gradient) kernels, compiled or loaded from numba's cache and
    checked against a float64 Adam on first call; None: numba missing, compile error, wrong result."""
    if njit is None:
        return None
    for jit in (_jit, lambda fn: njit(cache=False, **_JIT_OPTIONS)(fn)):
        try:
            candidate = (jit(_adam_bf16_kernel), jit(_adam_fp32_kernel))
            if _checks_out(*candidate):
                return candidate
        except Exception:  # numba's typing / lowering errors, or an unwritable cache on save
            continue
    return None


def available() -> bool:
    """True when the fused kernels compiled and agree with Adam's math (decided once per process)."""
    return kernels() is not None


def _checks_out(bf16_fn: Callable, fp32_fn: Callable) -> bool:
    """Three AdamW steps on 64 random weights agree with AdamW computed in float64 numpy within 1e-5
    relative, for both kernels, and the bf16 copies with torch's cast of the new weights. (A float64
    reference rather than torch's optimizer, whose first construction imports torch._dynamo: ~1 s.)"""
    rng = np.random.default_rng(0)
    start = rng.standard_normal(64).astype(np.float32)
    grads = torch.from_numpy(rng.standard_normal((3, 64)).astype(np.float32)).to(torch.bfloat16)
    lr, beta1, beta2, eps, decay = 1e-2, 0.9, 0.999, 1e-8, 0.1
    expected, m, v = start.astype(np.float64), np.zeros(64), np.zeros(64)
    for t, g in enumerate(grads.float().numpy().astype(np.float64), start=1):
        expected *= 1 - lr * decay
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        expected -= lr / (1 - beta1**t) * m / (np.sqrt(v / (1 - beta2**t)) + eps)
    low = torch.empty(64, dtype=torch.bfloat16)
    runs = [Bf16Adam([torch.from_numpy(start.copy())], [torch.empty_like(grads[0])], [low], lr=lr,
                     betas=(beta1, beta2), eps=eps, weight_decay=decay, decoupled=True, fns=(bf16_fn, fp32_fn)),
            Bf16Adam([torch.from_numpy(start.copy())], [torch.empty(64)], [None], lr=lr, betas=(beta1, beta2),
                     eps=eps, weight_decay=decay, decoupled=True, fns=(bf16_fn, fp32_fn))]
    for g in grads:
        for run in runs:
            run.grads[0].copy_(g)
            run.step()
    close = all(np.allclose(run.weights[0].numpy(), expected, rtol=1e-5, atol=1e-7) for run in runs)
    return close and torch.equal(low, runs[0].weights[0].to(torch.bfloat16))


def bf16_bits(t: torch.Tensor) -> np.ndarray:
    """uint16 [numel] numpy view of a contiguous bf16 tensor's memory (shares it)."""
    return t.view(-1).view(torch.int16).numpy().view(np.uint16)


class Bf16Adam:
    """torch.optim.Adam (decoupled=False) or AdamW for fp32 weights with bf16 or fp32 gradients.

    weights: fp32 tensors [...] updated in place; grads: tensors of the same shapes, read at step():
    bf16 (with a bf16 ``low`` tensor, set to bf16(weight) here and after every step) or fp32 (with
    low None: the biases). All contiguous. lr, betas, eps, weight_decay as torch's Adam;
    exp_avg / exp_avg_sq: fp32 state like torch's. fns: (bf16, fp32) kernels, default :func:`kernels`.
    """

    def __init__(self, weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
                 low: Sequence[torch.Tensor | None], lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float, decoupled: bool, fns: tuple[Callable, Callable] | None = None) -> None:
        found = fns if fns is not None else kernels()
        if found is None:
            raise RuntimeError("fused Adam kernel not available (numba missing or failed to compile)")
        self.fn, self.fp32_fn = found
        self.weights, self.grads, self.low = list(weights), list(grads), list(low)
        self.exp_avg = [torch.zeros_like(w) for w in self.weights]
        self.exp_avg_sq = [torch.zeros_like(w) for w in self.weights]
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.weight_decay, self.decoupled, self.steps = float(weight_decay), decoupled, 0
        self._arrays = []
        for w, g, lo, m, v in zip(self.weights, self.grads, self.low, self.exp_avg, self.exp_avg_sq, strict=True):
            plain = w.dtype == torch.float32 and w.shape == g.shape and w.is_contiguous() and g.is_contiguous()
            if lo is None and plain and g.dtype == torch.float32:
                self._arrays.append((self.fp32_fn, (w.view(-1).numpy(), m.view(-1).numpy(), v.view(-1).numpy(),
                                                    g.view(-1).numpy())))
                continue
            if not (plain and lo is not None and g.dtype == lo.dtype == torch.bfloat16 and w.shape == lo.shape
                    and lo.is_contiguous()):
                raise ValueError("Bf16Adam: fp32 weights with same-shaped contiguous bf16 grads and bf16 low "
                                 "copies, or fp32 grads and no low copy")
            lo.copy_(w)
            self._arrays.append((self.fn, (w.view(-1).numpy(), m.view(-1).numpy(), v.view(-1).numpy(),
                                           bf16_bits(g), bf16_bits(lo))))

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
        for fn, arrays in self._arrays:
            fn(*arrays, *scalars)
