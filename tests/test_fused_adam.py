"""fused_adam.Bf16Adam (numba): bf16 rounding, Adam / AdamW math against torch, the fallbacks."""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch

from miaudit.models import fused_adam
from miaudit.models import stack as stack_module
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import train_mlp_stack

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_numba = pytest.mark.skipif(fused_adam.njit is None, reason="numba is not installed")


@pytest.fixture
def fresh_kernel():
    """Forget the cached kernel choice before and after the test (it is decided once per process)."""
    fused_adam.kernels.cache_clear()
    yield
    fused_adam.kernels.cache_clear()


def _bits(t: torch.Tensor) -> np.ndarray:
    return fused_adam.bf16_bits(t.contiguous()).copy()


def _random_float_bits(n: int, rng: np.random.Generator) -> np.ndarray:
    """float32 [n]: random bit patterns, a third of them ties (low 16 bits 0x8000), a sixth subnormal;
    no inf / nan."""
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    bits[: n // 3] = (bits[: n // 3] & 0xFFFF0000) | 0x8000
    bits[n // 3 : n // 2] &= 0x807FFFFF  # exponent 0: subnormal (ties among them too)
    bits[n // 2 : n // 2 + 64] = [0, 0x80000000, 0x7F7FFFFF, 0xFF7FFFFF] * 16  # +-0 and +-max: rounds to inf
    exponent = (bits >> 23) & 0xFF
    bits[exponent == 0xFF] &= 0xBFFFFFFF  # inf / nan -> finite
    return bits.view(np.float32)


@needs_numba
@pytest.mark.parametrize("n", [4096, 1021])
def test_bf16_copy_is_torchs_round_to_nearest_even_bit_for_bit(n):
    rng = np.random.default_rng(n)
    weights = torch.from_numpy(_random_float_bits(n, rng))
    grads = torch.zeros(n, dtype=torch.bfloat16)
    low = torch.empty(n, dtype=torch.bfloat16)
    opt = fused_adam.Bf16Adam([weights], [grads], [low], lr=0.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                              decoupled=False)
    assert np.array_equal(_bits(low), _bits(weights.to(torch.bfloat16)))  # the initial copy: torch's cast
    before = weights.clone()
    opt.step()  # lr 0: the weights keep their values, the kernel writes their bf16 copies
    assert torch.equal(weights, before)
    expected = _bits(weights.to(torch.bfloat16))
    assert np.array_equal(_bits(low), expected), f"{(_bits(low) != expected).sum()} values rounded differently"
    assert (expected == 0x7F80).any() and ((expected & 0x7F80) == 0).sum() > n // 8  # overflow, subnormals seen


@needs_numba
def test_bf16_nan_becomes_torchs_quiet_nan():
    weights = torch.tensor([float("nan"), -float("nan"), 1.0] * 16)
    weights.view(torch.int32)[3] = 0x7FFFFFFF  # a NaN whose plain rounding would carry into the sign bit
    low = torch.empty(48, dtype=torch.bfloat16)
    fused_adam.Bf16Adam([weights], [torch.zeros_like(low)], [low], 0.0, (0.9, 0.999), 1e-8, 0.0, False).step()
    assert torch.isnan(low[[0, 1, 3]]).all() and low[2] == 1.0


def _torch_and_fused(n: int, optimizer: str, weight_decay: float, steps: int, seed: int = 0,
                     grad_dtype: torch.dtype = torch.bfloat16):
    """Run torch's fused Adam / AdamW and Bf16Adam side by side on the same gradients (bf16 ones with a
    bf16 operand copy, or fp32 ones without, as for the biases)."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(n, generator=gen)
    reference = start.clone()
    kind = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    torch_opt = kind([reference], lr=3e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, fused=True)
    weights, grads = start.clone(), torch.empty(n, dtype=grad_dtype)
    low = torch.empty(n, dtype=torch.bfloat16) if grad_dtype == torch.bfloat16 else None
    opt = fused_adam.Bf16Adam([weights], [grads], [low], lr=3e-3, betas=(0.9, 0.999), eps=1e-8,
                              weight_decay=weight_decay, decoupled=optimizer == "adamw")
    scales = torch.tensor([1e-7, 1e-3, 1.0, 30.0])
    for _ in range(steps):  # gradients over 9 orders of magnitude, some exactly 0
        g = torch.randn(n, generator=gen) * scales[torch.randint(0, 4, (n,), generator=gen)]
        g[torch.rand(n, generator=gen) < 0.05] = 0.0
        grads.copy_(g)
        reference.grad = grads.float()
        torch_opt.step()
        opt.step()
    state = torch_opt.state[reference]
    return (weights, opt.exp_avg[0], opt.exp_avg_sq[0], low), (reference, state["exp_avg"], state["exp_avg_sq"])


@needs_numba
@pytest.mark.parametrize("optimizer, weight_decay", [("adam", 0.0), ("adam", 1e-2), ("adamw", 1e-2)])
@pytest.mark.parametrize("n", [4096, 1021])  # 1021: torch's scalar tail (1021 % 16 = 13) included
def test_adam_step_matches_torchs_fused_adam_over_50_steps(optimizer, weight_decay, n):
    (w, m, v, low), (w_ref, m_ref, v_ref) = _torch_and_fused(n, optimizer, weight_decay, 50)
    for ours, theirs in ((w, w_ref), (m, m_ref), (v, v_ref)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-30)
    assert torch.equal(low, w.to(torch.bfloat16))  # the operand copy is the new weights' bf16 cast
    vector = n - n % 16  # torch's vectorized part: the same operations, fmas included, so the same bits
    assert torch.equal(w[:vector], w_ref[:vector]) and torch.equal(m[:vector], m_ref[:vector])
    assert torch.equal(v[:vector], v_ref[:vector])
    assert not torch.equal(w, _torch_and_fused(n, optimizer, weight_decay, 49)[0][0])  # steps really applied


@needs_numba
@needs_numba
@pytest.mark.parametrize("optimizer, weight_decay", [("adam", 0.0), ("adamw", 1e-2)])
def test_fp32_gradient_kernel_matches_torchs_fused_adam(optimizer, weight_decay):
    (w, m, v, low), (w_ref, m_ref, v_ref) = _torch_and_fused(1021, optimizer, weight_decay, 50,
                                                              grad_dtype=torch.float32)
    assert low is None
    for ours, theirs in ((w, w_ref), (m, m_ref), (v, v_ref)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-30)
    assert torch.equal(w[:1008], w_ref[:1008])


@needs_numba
def test_with_numba_the_kernel_compiles_and_agrees_with_torch():
    assert fused_adam.available()  # else train_mlp_stack silently runs the slower torch path


def test_numba_missing_falls_back_to_torchs_adam(monkeypatch, fresh_kernel):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    try:
        importlib.reload(fused_adam)
        assert fused_adam.njit is None and not fused_adam.available()
        assert not stack_module._fused_adam_available()
        x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64)
        stack = train_mlp_stack(x, y, np.ones((2, 64), bool), 2, (8,), TrainingRecipe(epochs=1, batch_size=16),
                                [1, 2], precision="bfloat16")
        assert np.isfinite(stack.logits(x)).all()
        with pytest.raises(RuntimeError, match="not available"):
            fused_adam.Bf16Adam([torch.zeros(4)], [torch.zeros(4, dtype=torch.bfloat16)] * 2, [], 1e-3,
                                (0.9, 0.999), 1e-8, 0.0, False)
    finally:
        monkeypatch.undo()
        importlib.reload(fused_adam)


@needs_numba
def test_a_kernel_that_does_not_compile_or_check_out_is_not_used(monkeypatch, fresh_kernel):
    monkeypatch.setattr(fused_adam, "_adam_bf16_kernel", lambda *args: object())  # numba cannot type it
    assert fused_adam.kernels() is None and not fused_adam.available()
    monkeypatch.undo()
    fused_adam.kernels.cache_clear()
    monkeypatch.setattr(fused_adam, "_checks_out", lambda *fns: False)  # compiles, gives wrong numbers
    assert not fused_adam.available()


@needs_numba
def test_no_writable_cache_directory_compiles_without_the_cache(monkeypatch, fresh_kernel):
    from numba.core import caching

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])  # as with no writable directory
    with pytest.raises(RuntimeError, match="no locator"):
        fused_adam.njit(cache=True)(lambda a: a)
    assert fused_adam.available()  # compiled, checked, nothing written to disk
    assert isinstance(fused_adam.kernels()[0]._cache, caching.NullCache)


@pytest.fixture(params=["fused", "torch"])
def bf16_adam(request, monkeypatch):
    """Run a test with the fused kernel and with torch's Adam (kernel switched off)."""
    if request.param == "fused" and fused_adam.njit is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(fused_adam, "available", lambda: request.param == "fused")
    return request.param


def test_both_paths_run_what_they_say(bf16_adam, monkeypatch):
    fused_adam.kernels()  # decided before counting: the kernel's first-use check takes steps too
    calls: list[int] = []
    real_step = fused_adam.Bf16Adam.step
    monkeypatch.setattr(fused_adam.Bf16Adam, "step", lambda self: calls.append(1) or real_step(self))
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    for optimizer, precision, fused in (("adam", "bfloat16", True), ("adamw", "bfloat16", True),
                                        ("sgd", "bfloat16", False), ("adam", "float32", False)):
        calls.clear()
        recipe = TrainingRecipe(epochs=1, batch_size=16, optimizer=optimizer)
        train_mlp_stack(x, y, np.ones((2, 64), bool), 2, (8,), recipe, [1, 2], precision)
        assert len(calls) == (4 if fused and bf16_adam == "fused" else 0), (optimizer, precision)


@needs_numba
@pytest.mark.parametrize("optimizer, weight_decay, hidden", [("adam", 0.0, (16,)), ("adam", 1e-3, (16, 8)),
                                                             ("adamw", 1e-2, (7,))])
def test_fused_and_torch_paths_train_the_same_models(monkeypatch, optimizer, weight_decay, hidden):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    masks = rng.random((4, 300)) < np.array([0.9, 0.5, 0.2, 0.5])[:, None]
    recipe = TrainingRecipe(epochs=3, batch_size=32, lr=3e-3, dropout=0.2, optimizer=optimizer,
                            weight_decay=weight_decay)
    fused = train_mlp_stack(x, y, masks, 3, hidden, recipe, [5, 6, 7, 8], "bfloat16", workers=2)
    monkeypatch.setattr(fused_adam, "available", lambda: False)
    plain = train_mlp_stack(x, y, masks, 3, hidden, recipe, [5, 6, 7, 8], "bfloat16", workers=2)
    np.testing.assert_allclose(fused.logits(x), plain.logits(x), rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(fused.weights + fused.biases, plain.weights + plain.biases, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
