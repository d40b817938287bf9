"""The reference models' rows of a SignalStore written as Ray tasks (``--backend ray`` with
``--signal-chunk``): every row of 16 models by its own task, record block by record block; each task
returns only which of its models gave non-finite outputs. Tasks run with the driver's torch threads,
so every logit equals the local backend's."""
from __future__ import annotations

import numpy as np

from miaudit.models import ray_backend
from miaudit.models.ray_signals import RayPlacement
from miaudit.signals.store import MODEL_CHUNK, SignalStore


def write_on_ray(stack, x: np.ndarray, population_x: np.ndarray, store_path: str, placement: RayPlacement,
                 precision: str, device: str, threads: int, progress=lambda done: None) -> np.ndarray:
    """Every row of 16 models of the store's reference logits (audited records x [N, ...] and the
    population [Z, ...]) written by its own Ray task; bool [K], True for models with a NaN / inf output.
    stack: an MLPStack or CNNStack; progress(models_done) as rows finish."""
    k = stack.n_models
    rows = [list(range(k0, min(k0 + MODEL_CHUNK, k))) for k0 in range(0, k, MODEL_CHUNK)]
    shared = {"stack": stack, "x": np.asarray(x), "population_x": np.asarray(population_x), "path": str(store_path),
              "precision": precision, "device": device, "threads": threads}
    bad, done = np.zeros(k, bool), 0
    for row, row_bad in ray_backend.run_chunks(write_row, shared, rows, lambda r: {"models": r}, placement.address):
        bad[row] = row_bad
        done += len(row)
        progress(done)
    return bad


def write_row(shared: dict, models: list[int]) -> np.ndarray:
    """One Ray task: the logits of ``models`` (one 16-model row) on every record block, into the store."""
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
