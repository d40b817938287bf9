"""The arithmetic settings of the device torch models train and infer on: the CPU or a CUDA GPU.

On the CPU, denormals flush to zero (denormals.py). On a CUDA GPU, float32 matmuls and convolutions
may use TF32 tensor cores (Ampere and later; ignored by older GPUs). Either way the caller's settings
come back on exit, so nothing leaks into the rest of the process.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from miaudit.models.denormals import flush_denormals


def on_cpu(device: str | torch.device) -> bool:
    """True when ``device`` ("cpu", "cuda", "cuda:1", a torch.device) is the CPU."""
    return torch.device(device).type == "cpu"


@contextlib.contextmanager
def tf32_allowed() -> Iterator[None]:
    """Within: CUDA float32 matmuls and cuDNN convolutions may run in TF32; the caller's flags after."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@contextlib.contextmanager
def device_arithmetic(device: str | torch.device) -> Iterator[None]:
    """Within: denormals flushed to zero in this thread on the CPU, TF32 allowed on a GPU."""
    with flush_denormals() if on_cpu(device) else tf32_allowed():
        yield
