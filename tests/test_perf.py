"""Speed probes (models/perf.py)."""
from __future__ import annotations

import itertools

import pytest
import torch

from miaudit.models import perf


def _fake_clock(monkeypatch, matmul_seconds):
    """perf's clock advances by the next of matmul_seconds (then 1 s forever) across each timed
    torch.mm; returns the dtypes the probe multiplied."""
    now, durations, dtypes = [0.0], iter(matmul_seconds), []
    real_mm = torch.mm

    def mm(a, b, out=None):
        dtypes.append(a.dtype)
        now[0] += next(durations, 1.0)
        return real_mm(a, b, out=out)

    monkeypatch.setattr(perf.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(perf.torch, "mm", mm)
    return dtypes


def test_matmul_rate_is_the_median_matmul_so_one_slow_sample_does_not_move_it(monkeypatch):
    n = 64
    # warm-up (not timed), then five timed matmuls, one of them hit by a neighbour's burst
    dtypes = _fake_clock(monkeypatch, [5.0, 0.01, 2.0, 0.01, 0.01, 0.01])
    rate = perf.matmul_gflops(torch.float32, n=n, seconds=2.035)
    assert rate == pytest.approx(2 * n**3 / 0.01 / 1e9)  # a mean would give 1/40 of it
    assert len(dtypes) == 6 and set(dtypes) == {torch.float32}


def test_matmul_probe_runs_in_the_requested_dtype_for_at_least_three_samples(monkeypatch):
    dtypes = _fake_clock(monkeypatch, [0.0] + [1.0] * 10)
    rate = perf.matmul_gflops(torch.bfloat16, n=32, seconds=0.0)
    assert set(dtypes) == {torch.bfloat16} and len(dtypes) == 4  # warm-up + 3 even past the deadline
    assert rate == pytest.approx(2 * 32**3 / 1e9)


def test_a_probe_of_zero_seconds_is_a_rate_of_zero_not_an_error():
    assert perf.Throughput(1e9, 0.0).gflops_per_s == 0.0


def test_bf16_needs_the_cpu_flag_and_a_working_autocast(monkeypatch):
    probe = perf.bf16_available.__wrapped__
    monkeypatch.setattr(perf, "_cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert probe() is False
    monkeypatch.setattr(perf, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert probe() is True  # autocast bf16 runs (emulated where the CPU lacks it)
    monkeypatch.setattr(perf, "_cpu_flags", lambda: set())
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512_BF16")
    assert probe() is True  # torch's own dispatch level says so where /proc/cpuinfo is missing
    monkeypatch.setattr(perf, "_autocast_smoke_test", lambda: False)
    assert probe() is False


def test_bf16_availability_is_probed_once_per_process(monkeypatch):
    calls = itertools.count()
    monkeypatch.setattr(perf, "_has_bf16_hardware", lambda: next(calls) < 0)
    perf.bf16_available.cache_clear()
    try:
        assert [perf.bf16_available() for _ in range(3)] == [False] * 3
        assert next(calls) == 1  # the hardware (and autocast) probe ran once
    finally:
        perf.bf16_available.cache_clear()


def test_cpu_flags_are_the_flags_line_of_cpuinfo(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 fma\nbugs\t: x\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx2 fma\n")
    monkeypatch.setattr(perf, "Path", lambda _: cpuinfo)
    assert perf._cpu_flags() == {"fpu", "sse2", "avx2", "fma"}
    cpuinfo.unlink()
    assert perf._cpu_flags() == set()  # no /proc (macOS, Windows): no flags, no error


def test_cpu_flags_agree_with_torchs_own_detection():
    """torch picks its kernels by the CPU's vector units: the flags must list what it uses."""
    flags, capability = perf._cpu_flags(), str(torch.backends.cpu.get_cpu_capability()).upper()
    needed = {"AVX2": {"avx2", "fma"}, "AVX512": {"avx2", "avx512f"}}.get(capability, set())
    assert needed <= flags, (capability, sorted(flags))
    assert flags & {"fpu", "sse2", "fp", "asimd"}  # every x86-64 or arm64 CPU lists one of these
