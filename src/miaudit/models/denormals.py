"""Denormal floats flushed to zero while models train or infer.

Late in training, gradients and Adam moments fall below float32's smallest normal number (1.2e-38);
arithmetic on such denormals is many times slower on x86 CPUs. ``torch.set_flush_denormal`` sets the
flush-to-zero / denormals-are-zero bits (MXCSR FTZ and DAZ) of the calling thread only. numba
kernels run on the calling thread and obey its bits. torch's intra-op threads (OpenMP, also MKL's)
keep their own bits: :func:`flush_denormals` sets those through one parallel region of the same
OpenMP runtime, in which every team thread sets and later restores its own bits.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

_OPENMP_LIBRARIES = ("libgomp", "libiomp5", "libomp")
_TeamFunction = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def denormals_flushed() -> bool:
    """True when this thread's float32 arithmetic flushes denormal results to zero (probe: 1e-30 * 1e-10)."""
    product = torch.tensor(1e-30, dtype=torch.float32).mul(1e-10)
    return int(product.view(torch.int32).item()) == 0


@contextlib.contextmanager
def flush_denormals() -> Iterator[bool]:
    """Within: denormals flush to zero in this thread and in its torch intra-op threads.

    Yields whether the CPU supports it (torch.set_flush_denormal's answer; nothing changes when it
    does not). On exit each of those threads gets back the setting it had before (threads torch
    started meanwhile get this thread's previous setting). Nests; every thread sets its own.
    """
    previous = denormals_flushed()
    supported = torch.set_flush_denormal(previous)  # whether the CPU can, nothing changed yet
    # the intra-op threads first: one started for this region inherits the previous setting, its own
    team_previous = _set_in_torch_threads(True, {}) if supported else {}
    torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported:
            _set_in_torch_threads(previous, team_previous)
        torch.set_flush_denormal(previous)


def _set_in_torch_threads(flush: bool, previous: dict[int, bool]) -> dict[int, bool]:
    """Set the bits of the intra-op threads torch uses from this thread: each thread to previous[its id]
    if given, else to ``flush``. Returns {thread id: the setting it had}. Empty with one intra-op thread
    (ops then run in the calling thread) or when torch's OpenMP runtime is not found."""
    threads = torch.get_num_threads()
    parallel = _openmp_parallel()
    if threads < 2 or parallel is None:
        return {}
    had: dict[int, bool] = {}
    lock = threading.Lock()

    def set_own_bits(_: int | None) -> None:
        ident = threading.get_ident()
        with lock:
            had[ident] = denormals_flushed()
        torch.set_flush_denormal(previous.get(ident, flush))

    callback = _TeamFunction(set_own_bits)
    parallel(callback, None, threads, 0)
    return had


@functools.cache
def _openmp_parallel() -> Callable | None:
    """GOMP_parallel(fn, data, num_threads, flags) of the OpenMP runtime loaded with torch, or None
    (torch built without OpenMP, or no such library found in this process)."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    loaded = {line.split()[-1] for line in maps if any(name in line for name in _OPENMP_LIBRARIES)}
    torch_dir = str(Path(torch.__file__).resolve().parent)
    ordered = sorted(loaded, key=lambda path: (not path.startswith(torch_dir), path))
    for path in ordered:
        try:
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            parallel = library.GOMP_parallel
        except (OSError, AttributeError):
            continue
        parallel.argtypes = [_TeamFunction, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        parallel.restype = None
        return parallel
    return None
