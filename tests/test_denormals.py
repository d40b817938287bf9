"""Denormals flushed to zero (models/denormals.py): this thread, torch's intra-op threads, numba kernels,
and the training / inference entry points that use it."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from miaudit.models import fused_adam
from miaudit.models.denormals import denormals_flushed, flush_denormals
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.train import torch_logits, train_torch_model

TINY = 1e-30  # TINY * 1e-10 = 1e-40: a float32 denormal (smallest normal 1.2e-38)


def _denormal_results(n: int) -> int:
    """How many of n float32 products TINY * 1e-10 come out nonzero (bit patterns: comparisons of a
    denormal with 0 would themselves be flushed). Large n: torch splits the work over its threads."""
    return int((torch.full((n,), TINY).mul_(1e-10).view(torch.int32) != 0).sum())


@pytest.fixture
def caller_setting():
    """Start with denormals kept (torch's default) and put that back after the test."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


@pytest.mark.usefixtures("caller_setting")
@pytest.mark.parametrize("before", [False, True])
def test_flushes_within_and_restores_the_callers_setting(before):
    torch.set_flush_denormal(before)
    assert denormals_flushed() is before
    with flush_denormals() as supported:
        assert supported is True  # x86-64 with SSE3, and arm64: every CPU these tests run on
        assert denormals_flushed() and _denormal_results(1) == 0
        with flush_denormals():  # nested
            assert denormals_flushed()
        assert denormals_flushed()
    assert denormals_flushed() is before
    assert _denormal_results(1) == (0 if before else 1)


def _numba_moment_bits(grad: float) -> np.ndarray:
    """exp_avg_sq bits after one fused_adam fp32-kernel step (numba) with gradient ``grad``:
    (1 - beta2) * grad^2, a denormal for grad = 1e-20."""
    weight, g = torch.ones(64), torch.full((64,), grad)
    adam = fused_adam.Bf16Adam([weight], [g], [None], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                               decoupled=False)
    adam.step()
    return adam.exp_avg_sq[0].view(torch.int32).numpy().copy()


@pytest.mark.usefixtures("caller_setting")
def test_numba_kernels_obey_the_calling_threads_setting():
    assert fused_adam.available()
    assert _numba_moment_bits(1e-20).all()  # denormal moments, as late in training
    with flush_denormals():
        assert not _numba_moment_bits(1e-20).any()
        assert _numba_moment_bits(1e-3).all()  # normal numbers are untouched
    in_thread: list[np.ndarray] = []

    def worker() -> None:
        with flush_denormals():
            in_thread.append(_numba_moment_bits(1e-20))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert not in_thread[0].any()
    assert _numba_moment_bits(1e-20).all()  # the other thread's setting did not reach this one


class _Recording(nn.Module):
    """A linear classifier whose forward notes whether denormals flush in the thread that runs it
    (a product below torch's grain size, so no other thread takes part: training and inference flush
    in the calling thread only, and a pool thread created before the flush keeps its own setting)."""

    def __init__(self, seen: list[tuple[bool, int]]) -> None:
        super().__init__()
        self.linear, self.seen = nn.Linear(6, 3), seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((denormals_flushed(), _denormal_results(1 << 10)))
        return self.linear(x)


@pytest.mark.parametrize("before", [False, True])
def test_torch_training_and_inference_flush_and_restore(before, caller_setting):
    torch.set_flush_denormal(before)
    seen: list[tuple[bool, int]] = []
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40)
    module = train_torch_model(_Recording(seen), x, y, TrainingRecipe(epochs=1, batch_size=20), seed=0,
                               precision="float32")
    assert denormals_flushed() is before
    torch_logits(module, x)
    assert denormals_flushed() is before
    assert len(seen) == 3 and seen == [(True, 0)] * 3  # two training batches, one inference batch


@pytest.mark.usefixtures("caller_setting")
def test_stack_inference_flushes_and_restores(monkeypatch):
    rng = np.random.default_rng(0)
    stack = MLPStack([rng.normal(size=(2, 5, 4)).astype(np.float32), rng.normal(size=(2, 4, 3)).astype(np.float32)],
                     [np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32)])
    seen: list[bool] = []
    matmul = torch.matmul
    monkeypatch.setattr(torch, "matmul", lambda *a: seen.append(denormals_flushed()) or matmul(*a))
    logits = stack.logits(rng.normal(size=(7, 5)).astype(np.float32))
    monkeypatch.undo()
    assert logits.shape == (2, 7, 3) and seen and all(seen)
    assert not denormals_flushed()
