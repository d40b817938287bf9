"""CPU speed facts measured in this process: bf16 support and the plain matmul FLOP/s yardstick."""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from miaudit.errors import InputError
from miaudit.models.devices import on_cpu

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Throughput:
    """``flops`` floating-point operations done in ``seconds`` of wall time."""

    flops: float
    seconds: float

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds > 0 else 0.0


def _cpu_flags() -> set[str]:
    """The ``flags`` of /proc/cpuinfo (empty set where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _has_bf16_hardware() -> bool:
    if _cpu_flags() & set(_BF16_CPU_FLAGS):
        return True
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return "AMX" in capability or "BF16" in capability


def _autocast_smoke_test() -> bool:
    """A small bf16 autocast matmul runs, returns bf16 and agrees with fp32 to bf16 precision."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(32, 48, generator=gen), torch.rand(48, 16, generator=gen)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = a @ b
    except RuntimeError:
        return False
    return out.dtype == torch.bfloat16 and torch.allclose(out.float(), a @ b, rtol=3e-2, atol=3e-2)


@functools.cache
def bf16_available() -> bool:
    """True when the CPU does bf16 matmuls natively (AVX512-BF16 or AMX) and torch autocast uses it."""
    return _has_bf16_hardware() and _autocast_smoke_test()


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 0.5) -> float:
    """GFLOP/s of a square [n, n] @ [n, n] matmul in ``dtype``, timed for about ``seconds``.

    Uses torch's current thread count. The rate comes from the median time per matmul, so a
    neighbour's burst on a shared machine shifts it less than a plain mean would.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=gen).to(dtype)
    b = torch.rand(n, n, generator=gen).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: thread pool, kernel selection
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    return Throughput(2.0 * n**3, statistics.median(times)).gflops_per_s


PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(precision: str) -> str:
    """"float32" or "bfloat16" for a requested precision ("auto" = bf16 when the CPU runs it natively)."""
    if precision not in PRECISIONS:

        raise InputError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bfloat16" if bf16_available() else "float32"
    return precision


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """"cpu" or "cuda" for a requested device ("auto" = cuda when torch sees a CUDA GPU); InputError
    for cuda without one."""

    if device not in DEVICES:
        raise InputError(f"--device: {device!r} is not one of {', '.join(DEVICES)}")
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise InputError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                         "use --device cpu or auto")
    return "cuda" if device == "cuda" or (device == "auto" and available) else "cpu"


def resolve_device_precision(precision: str, device: str) -> str:
    """resolve_precision for torch models on a resolved device: on the CPU as resolve_precision; on a
    GPU, "auto" is bf16 when the GPU supports it (torch.cuda.is_bf16_supported())."""

    if precision == "auto" and not on_cpu(device):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return resolve_precision(precision)


resolve_cnn_precision = resolve_device_precision  # stacked CNNs follow the same rule (docs/cnn-stack.md)
