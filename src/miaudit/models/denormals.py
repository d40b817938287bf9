"""Denormal floats flushed to zero while models train or infer.

Late in training, gradients and Adam moments fall below float32's smallest normal number (1.2e-38);
arithmetic on such denormals is many times slower on x86 CPUs. ``torch.set_flush_denormal`` sets the
flush-to-zero / denormals-are-zero bits (MXCSR FTZ and DAZ) of the calling thread only; numba
kernels run on the calling thread and obey its bits.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def denormals_flushed() -> bool:
    """True when this thread's float32 arithmetic flushes denormal results to zero (probe: 1e-30 * 1e-10)."""
    product = torch.tensor(1e-30, dtype=torch.float32).mul(1e-10)
    return int(product.view(torch.int32).item()) == 0


@contextlib.contextmanager
def flush_denormals() -> Iterator[bool]:
    """Within: denormals flush to zero in this thread (torch ops and numba kernels run on it).

    Yields whether the CPU supports it (nothing changes when it does not); on exit the thread gets
    back the setting it had. Nests. torch's intra-op threads keep their own setting: training runs
    one intra-op thread per worker, so its arithmetic is all in the flushed thread.
    """
    previous = denormals_flushed()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(previous)
