"""Reference models' logits as Ray tasks (``--backend ray``): the signal matrix computed on the cluster.

The records and the stacked models go to the object store once per call. In memory (logits_on_ray) each
task computes one chunk of models' logits (the chunks the models trained in) and returns them as one
compact float32 array [chunk, m, C], assembled by the driver in model order. With a signal store
(write_on_ray) each task writes its own 16-model rows of the store, record block by record block, and
returns only which of its models gave non-finite outputs. Tasks run with the driver's torch threads, so
every logit equals the local backend's.
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


def write_on_ray(stack: MLPStack | CNNStack, x: np.ndarray, population_x: np.ndarray, store_path: str,
                 placement: RayPlacement, precision: str, device: str, threads: int,
                 progress=lambda done: None) -> np.ndarray:
    """Every row of 16 models of the store's reference logits (audited records x [N, ...] and the
    population [Z, ...]) written by its own Ray task; bool [K], True for models with a NaN / inf output.
    progress(models_done) as rows finish."""
    from miaudit.signals.store import MODEL_CHUNK

    k = stack.n_models
    rows = [list(range(k0, min(k0 + MODEL_CHUNK, k))) for k0 in range(0, k, MODEL_CHUNK)]
    shared = {"stack": stack, "x": np.asarray(x), "population_x": np.asarray(population_x), "path": str(store_path),
              "precision": precision, "device": device, "threads": threads}
    bad, done = np.zeros(k, bool), 0
    for row, row_bad in ray_backend.run_chunks(_write_row, shared, rows, lambda r: {"models": r}, placement.address):
        bad[row] = row_bad
        done += len(row)
        progress(done)
    return bad


def _write_row(shared: dict, models: list[int]) -> np.ndarray:
    from miaudit.signals.store import SignalStore

    store = SignalStore.open(shared["path"], writable=True)
    stack = shared["stack"].select(models)
    bad = np.zeros(len(models), bool)

    def logits(x):
        out = stack.logits(x, precision=shared["precision"], device=shared["device"])
        bad[:] |= ~np.isfinite(out.reshape(len(models), -1)).all(1)
        return out

    with ray_backend.torch_threads(shared["threads"]):
        if len(shared["population_x"]):
            store.write_models(models[0], None, logits(shared["population_x"]))
        for start, stop in store.blocks():
            store.write_models(models[0], logits(shared["x"][start:stop]), start=start)
    return bad
