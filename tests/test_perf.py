"""Speed probes (models/perf.py)."""
from __future__ import annotations

import math

import torch

from miaudit.models import perf


def test_matmul_gflops_is_a_positive_finite_rate():
    rate = perf.matmul_gflops(torch.float32, n=128, seconds=0.05)
    assert math.isfinite(rate) and rate > 0.1


def test_throughput_is_flops_per_second_in_billions():
    assert perf.Throughput(6e9, 2.0).gflops_per_s == 3.0
    assert perf.Throughput(1e9, 0.0).gflops_per_s == 0.0


def test_bf16_needs_the_cpu_flag_and_a_working_autocast(monkeypatch):
    assert isinstance(perf.bf16_available(), bool)
    assert perf.bf16_available() is perf.bf16_available()  # cached
    probe = perf.bf16_available.__wrapped__
    monkeypatch.setattr(perf, "_cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert probe() is False
    monkeypatch.setattr(perf, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert probe() is True  # autocast bf16 runs (emulated where the CPU lacks it)
    monkeypatch.setattr(perf, "_autocast_smoke_test", lambda: False)
    assert probe() is False


def test_cpu_flags_read_from_proc_cpuinfo():
    flags = perf._cpu_flags()
    assert isinstance(flags, set)
    if flags:  # Linux: every x86-64 or arm64 CPU lists at least one of these
        assert flags & {"fpu", "sse2", "fp", "asimd"}
