"""Reference models' logits as Ray tasks (``--backend ray``): the records and the stacked models go to
the object store once per call; each task computes one chunk of models' logits (the chunks the models
trained in) and returns them as one compact float32 array [chunk, m, C], assembled by the driver in model
order. Tasks run with the driver's torch threads, so every logit equals the local backend's. (Written
straight to a signal store instead: signals/ray_store.py.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.models import ray_backend
from miaudit.models.cnn_models import INFERENCE_GROUP, CNNStack
from miaudit.models.mlp_stack import MLPStack


@dataclass(frozen=True)
class RayPlacement:
    """Where a ReferenceModels' inference runs: the cluster ``address`` (None: this process's instance
    or a new local one) and the number of models per task."""

    address: str | None = None
    chunk_size: int = 16


def logits_on_ray(stack: MLPStack | CNNStack, x: np.ndarray, placement: RayPlacement, precision: str,
                  device: str, threads: int) -> np.ndarray:
    """float32 [K, m, C]: stack.logits(x) with every chunk of ``placement.chunk_size`` models a Ray task
    (for CNNs rounded up to whole inference groups, so that each model's logits equal local ones)."""
    k, size = stack.n_models, placement.chunk_size
    if isinstance(stack, CNNStack):
        size = -(-size // INFERENCE_GROUP) * INFERENCE_GROUP
    out = np.empty((k, len(x), stack.n_classes), np.float32)
    if len(x) == 0:
        return out
    shared = {"stack": stack, "x": np.asarray(x), "precision": precision, "device": device, "threads": threads}
    chunks = [list(range(k0, min(k0 + size, k))) for k0 in range(0, k, size)]
    for chunk, logits in ray_backend.run_chunks(_logits_chunk, shared, chunks, lambda c: {"models": c},
                                                placement.address):
        out[chunk] = logits
    return out


def _logits_chunk(shared: dict, models: list[int]) -> np.ndarray:
    with ray_backend.torch_threads(shared["threads"]):
        return shared["stack"].select(models).logits(shared["x"], precision=shared["precision"],
                                                      device=shared["device"])
