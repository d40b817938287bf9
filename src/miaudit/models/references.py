"""K reference (shadow) models of one family, each on its own subset of the data, cached per model:
the one reference-training loop (keys -> cache -> missing chunks -> backend -> reference models).

The family (families.py) trains a chunk of models; the backend runs the chunks. Local: stacked families
(mlp, CNNs) in chunks of ``chunk_size`` (a remainder under half of it joins the last chunk), families fitted in
worker processes (scikit-learn) in parallel with joblib, the others one model at a time. Ray
(ray_references.RayBackend): every missing chunk of ``chunk_size`` models is a Ray task. Each model is saved
to the cache as soon as it exists (stacks: when their chunk ends), so a run killed mid-training loses at most
the chunk in flight and a rerun trains only what is missing.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as metadata
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from joblib import Parallel, delayed

from miaudit.errors import InputError
from miaudit.models.cache import ModelCache, cache_key, load_entry, save_entry
from miaudit.models.families import code_modules, training_family
from miaudit.models.family import TrainingJob
from miaudit.models.perf import resolve_device_precision
from miaudit.models.ray_references import RayBackend
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.reference_models import ReferenceModels

__all__ = ["LocalBackend", "RayBackend", "ReferenceModels", "check_reference_inputs", "train_job", "train_references",
           "training_environment"]

KEY_FORMAT = "miaudit-reference-v2"


class Backend(Protocol):
    """Runs chunks of models: ``run`` yields (chunk, one state per model of it) as chunks finish.

    chunks_every_family: chunk every family by chunk_size (else only stacked families; the others one
    model per chunk); placement(chunk_size): where stacks' logits run afterwards (None: in this process).
    """

    chunks_every_family: bool

    def run(self, job: TrainingJob, chunks: list[list[int]], masks: np.ndarray, seeds: Sequence[int],
            partial: Callable[[int], None]) -> Iterator[tuple[list[int], list]]: ...

    def placement(self, chunk_size: int): ...


@dataclass
class LocalBackend:
    """Chunks in this process, one after another; a worker-fitted family's models in parallel (joblib,
    n_jobs workers). partial(models of the chunk in flight done) reports a stack's progress by steps."""

    n_jobs: int = -1
    chunks_every_family = False

    def run(self, job: TrainingJob, chunks: list[list[int]], masks: np.ndarray, seeds: Sequence[int],
            partial: Callable[[int], None]) -> Iterator[tuple[list[int], list]]:
        family = job.family
        if family.worker_fit is not None:
            # Worker processes run only the family's fit (no torch), so they start fast; the parent wraps.
            run = Parallel(n_jobs=self.n_jobs, return_as="generator_unordered")
            fitted = run(delayed(_fit_indexed)(family.worker_fit, k, job.spec.name, job.x[masks[k]],
                                               job.y[masks[k]], seeds[k]) for chunk in chunks for k in chunk)
            for k, model in fitted:
                yield [k], [family.from_worker(job, model, k)]
            return
        for chunk in chunks:
            progress = _step_progress(job.recipe, masks[chunk], partial) if family.stacked else None
            yield chunk, family.train_chunk(job, masks[chunk], [seeds[k] for k in chunk], progress, chunk)

    def placement(self, chunk_size: int):
        return None


def _step_progress(recipe: TrainingRecipe, masks: np.ndarray, partial: Callable[[int], None]) -> Callable[[int], None]:
    """A stack's progress(steps done) -> partial(models of the chunk done, by steps, at most K - 1)."""
    n = len(masks)
    total = recipe.epochs * int(np.unique(-(-masks.sum(axis=1) // recipe.batch_size)).sum())
    return lambda steps: partial(min(n - 1, steps * n // total))


def _fit_indexed(fit, k, *args):
    return k, fit(*args)


def backend_named(backend: str | Backend, n_jobs: int = -1, address: str | None = None) -> Backend:
    """The backend for ``backend`` ("local" or "ray", or a Backend passed as is)."""
    if not isinstance(backend, str):
        return backend
    if backend == "local":
        return LocalBackend(n_jobs)
    if backend == "ray":
        return RayBackend(address)
    raise InputError(f"backend: local or ray, got {backend!r}")


def train_references(spec, x: np.ndarray, y: np.ndarray, masks: np.ndarray, n_classes: int,
                     recipe: TrainingRecipe, seeds: Sequence[int], precision: str = "auto",
                     cache: ModelCache | None = None, key_parts: dict | None = None, chunk_size: int = 16,
                     n_jobs: int = -1, progress: Callable[[int], None] | None = None,
                     names: Sequence[int | str] | None = None, device: str = "cpu",
                     backend: str | Backend = "local", address: str | None = None) -> ReferenceModels:
    """Train (or load from ``cache``) K models of ``spec``; model k on x[masks[k]], y[masks[k]] with seeds[k].

    x float32 [n, ...], y int [n], masks bool [K, n]. The cache key of model k covers key_parts, k,
    masks[k], seeds[k], spec, recipe, n_classes, the resolved precision, a hash of (x, y), the key
    format and the training environment (``training_environment``: library versions, training code).
    progress(n_done_models) reports cached and trained models together. names[k] (default k) stands
    for the model index in its cache key, e.g. "target" for a target trained along with the references.
    device ("cpu" or "cuda", resolved by perf.resolve_device): where torch models train and stacks
    infer (scikit-learn models stay on the CPU).
    backend: "local" (n_jobs joblib workers for scikit-learn), "ray" (the missing chunks train as Ray
    tasks on the cluster at ``address`` or a local Ray instance; the same seeds give the same models as
    "local"), or a Backend.
    """
    masks, names = check_reference_inputs(x, y, masks, seeds, names)
    if chunk_size < 1:
        raise InputError(f"chunk_size: must be at least 1, got {chunk_size}")
    runner = backend_named(backend, n_jobs, address)
    family = training_family(spec.name, recipe)
    resolved = resolve_device_precision(precision, device) if family.is_torch else "n/a"
    keys = model_keys(spec, x, y, masks, n_classes, recipe, seeds, resolved, cache, key_parts, names)
    family.check_input(spec, x)
    job = TrainingJob(family, spec, np.asarray(x), np.asarray(y), int(n_classes), recipe, resolved, device)
    return train_job(job, masks, seeds, cache, keys, chunk_size, runner, progress)


def train_job(job: TrainingJob, masks: np.ndarray, seeds: Sequence[int], cache: ModelCache | None,
              keys: Sequence[str | None], chunk_size: int, backend: Backend,
              progress: Callable[[int], None] | None = None) -> ReferenceModels:
    """The loop: each model's state from the cache under keys[k] (checked by the family), the missing
    ones trained in chunks by the backend and cached as they arrive, then the family's collection.
    masks bool [K, n], seeds [K]; progress(n_done_models) counts cached and trained models."""
    family, report = job.family, progress or (lambda done: None)
    valid = family.state_check(job)
    states = [load_entry(cache, key, valid) for key in keys]
    missing = [k for k, s in enumerate(states) if s is None]
    done = len(masks) - len(missing)
    report(done)
    if backend.chunks_every_family or family.stacked:
        chunks = _chunks(missing, chunk_size)
    else:
        chunks = [[k] for k in missing]
    model_flops = np.zeros(len(masks))
    seconds = 0.0
    finished = backend.run(job, chunks, masks, seeds, lambda in_flight: report(done + in_flight))
    while True:
        started = time.perf_counter()
        chunk_states = next(finished, None)
        seconds += time.perf_counter() - started
        if chunk_states is None:
            break
        for k, state in zip(*chunk_states, strict=True):
            states[k] = state
            save_entry(cache, keys[k], state)
            model_flops[k] = family.train_flops(job, int(masks[k].sum()) * job.recipe.epochs)
        done += len(chunk_states[0])
        report(done)
    models = family.collection(job, states)
    if not family.stacked:
        return ReferenceModels(job.spec, models, len(missing), seconds, 0.0)
    return ReferenceModels(job.spec, models, len(missing), seconds, float(model_flops.sum()), job.precision,
                           model_flops, job.device, backend.placement(chunk_size))


def check_reference_inputs(x, y, masks, seeds: Sequence[int], names: Sequence | None) -> tuple[np.ndarray, list]:
    """(masks bool [K, n], names [K]) checked against x [n, ...], y [n] and K seeds: InputError
    naming the first mismatch."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[1] != len(x) or len(y) != len(x):
        raise InputError(f"masks: expected shape (K, {len(x)}) matching x and y, got {masks.shape}")
    if len(seeds) != len(masks):
        raise InputError(f"seeds: {len(seeds)} seeds for {len(masks)} reference models")
    names = list(range(len(masks))) if names is None else list(names)
    if len(names) != len(masks) or len(set(names)) != len(names):
        raise InputError(f"names: {len(masks)} distinct names needed, got {names}")
    return masks, names


def training_environment(kind: str) -> dict[str, str]:
    """What besides the inputs decides a trained model of ``kind`` ("torch" or "sklearn"): the
    versions of miaudit (miaudit.__version__) and of the libraries that train it, and a sha256 of
    miaudit's training code."""
    libraries = ("torch", "numba") if kind == "torch" else ("scikit-learn", "scipy", "joblib")
    env = {"miaudit": _version("miaudit", "0.0.0"), "numpy": np.__version__}
    for name in libraries:
        env[name] = _version(name, "absent")
    env["training_code"] = _code_digest(kind)
    return env


def _version(package: str, missing: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return missing


@lru_cache(maxsize=2)
def _code_digest(kind: str) -> str:
    code = hashlib.sha256()
    for module in code_modules(torch=kind == "torch"):
        code.update(Path(importlib.import_module(module).__file__).read_bytes())
    return code.hexdigest()


def model_keys(spec, x, y, masks, n_classes, recipe, seeds, precision, cache, key_parts,
               names) -> list[str | None]:
    """The cache key of each model (None without a cache); see train_references."""
    if cache is None:
        return [None] * len(masks)
    kind = "torch" if training_family(spec.name, recipe).is_torch else "sklearn"
    shared = {**(key_parts or {}), "format": KEY_FORMAT, "data": cache_key(x=np.asarray(x), y=np.asarray(y)),
              "spec": spec, "recipe": recipe, "n_classes": int(n_classes), "precision": precision,
              "environment": training_environment(kind)}
    return [cache_key(**shared, model_index=name, mask=masks[k], seed=int(seeds[k])) for k, name in enumerate(names)]


def _chunks(items: list[int], size: int) -> list[list[int]]:
    """items in consecutive chunks of ``size``; a remainder under size / 2 joins the chunk before it
    (a stack of one or two models pays the per-step Python cost of a full one)."""
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    if len(chunks) > 1 and 2 * len(chunks[-1]) < size:
        chunks[-2:] = [chunks[-2] + chunks[-1]]
    return chunks
