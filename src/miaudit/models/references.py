"""K reference (shadow) models of one architecture, each on its own subset of the data, cached per model.

MLPs train in stacks of ``chunk_size`` (a remainder under half of it joins the last stack; stack.py),
CNNs likewise (cnn_stack.py; one at a time when the recipe has dropout or early stopping);
scikit-learn models in parallel with joblib. With ``backend="ray"`` every missing chunk is a Ray task
instead (ray_references.py; scikit-learn and unstacked torch models in chunks of ``chunk_size`` too).
Each model is saved to the cache as soon as it exists (stacks: when their chunk ends), so a run killed
mid-training loses at most the chunk in flight and a rerun trains only what is missing.
"""
from __future__ import annotations

import hashlib
import pickle
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import InputError
from miaudit.models.cache import ModelCache, cache_key
from miaudit.models.cnn_models import CNNStack, state_fits
from miaudit.models.cnn_stack import cnn_train_flops, train_cnn_stack
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.perf import resolve_device_precision
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import mlp_train_flops, train_mlp_stack
from miaudit.version import __version__

_KEY_FORMAT = "miaudit-reference-v2"
# The modules whose code decides what a trained model is: a change to any of them retrains.
_TRAINING_MODULES = {
    "torch": ("miaudit.models.stack", "miaudit.models.stack_dp", "miaudit.models.stack_workers",
              "miaudit.models.stack_early_stopping", "miaudit.models.denormals", "miaudit.models.devices",
              "miaudit.models.fused_adam", "miaudit.models.mlp_stack", "miaudit.models.dp_sgd",
              "miaudit.models.train", "miaudit.models.nets", "miaudit.models.registry",
              "miaudit.models.recipe", "miaudit.models.wrappers", "miaudit.models.cnn_stack",
              "miaudit.models.cnn_models", "miaudit.models.cnn_spec"),
    "sklearn": ("miaudit.models.sklearn_models", "miaudit.models.wrappers"),
}


@dataclass
class ReferenceModels:
    """The K trained models. ``models`` is one MLPStack (mlp), one CNNStack (CNNs trained stacked) or a
    list of K Targets (other specs).

    trained: models trained by this call (the rest came from the cache); train_seconds: wall time spent
    training them; train_flops: their training FLOPs (6 x MACs x samples for mlp; 0 where not counted);
    precision: the resolved training precision, which an MLP stack's inference uses too;
    model_flops: float64 [K] training FLOPs of each model, 0 for models from the cache (stacks only).
    ray: a RayPlacement when the stack trained on Ray: its logits are computed there too (ray_signals).
    """

    spec: Any
    models: MLPStack | CNNStack | list
    trained: int
    train_seconds: float
    train_flops: float
    precision: str = "float32"
    model_flops: np.ndarray | None = None
    device: str = "cpu"
    ray: Any = None

    @property
    def n_models(self) -> int:
        return self.models.n_models if isinstance(self.models, (MLPStack, CNNStack)) else len(self.models)

    def split(self, k: int) -> tuple[ReferenceModels, ReferenceModels]:
        """(models [0, k), models [k, K)) of a stack; the training seconds are shared out in
        proportion to the training FLOPs of the models each part trained (they trained at once)."""
        if not isinstance(self.models, (MLPStack, CNNStack)) or self.model_flops is None or not 0 < k < self.n_models:
            raise InputError(f"split: needs an MLP stack of more than {k} models")
        parts = []
        for index in (range(k), range(k, self.n_models)):
            flops = self.model_flops[list(index)]
            share = flops.sum() / self.train_flops if self.train_flops else 0.0
            parts.append(ReferenceModels(self.spec, self.models.select(list(index)), int((flops > 0).sum()),
                                         self.train_seconds * share, float(flops.sum()), self.precision, flops,
                                         self.device, self.ray))
        return parts[0], parts[1]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 [K, m, C]: every model's logits (log-probabilities for sklearn) on x [m, ...]."""
        if self.ray is not None and isinstance(self.models, (MLPStack, CNNStack)):
            import torch

            from miaudit.models.ray_signals import logits_on_ray

            return logits_on_ray(self.models, x, self.ray, self.precision, self.device, torch.get_num_threads())
        if isinstance(self.models, CNNStack):
            return self.models.logits(x, precision=self.precision, device=self.device)
        if isinstance(self.models, MLPStack):
            return self.models.logits(x, precision=self.precision, device=self.device)
        return np.stack([np.asarray(m.logits(x), np.float32) for m in self.models])

def train_references(spec, x: np.ndarray, y: np.ndarray, masks: np.ndarray, n_classes: int,
                     recipe: TrainingRecipe, seeds: Sequence[int], precision: str = "auto",
                     cache: ModelCache | None = None, key_parts: dict | None = None, chunk_size: int = 16,
                     n_jobs: int = -1, progress: Callable[[int], None] | None = None,
                     names: Sequence[int | str] | None = None, device: str = "cpu", backend: str = "local",
                     address: str | None = None) -> ReferenceModels:
    """Train (or load from ``cache``) K models of ``spec``; model k on x[masks[k]], y[masks[k]] with seeds[k].

    x float32 [n, ...], y int [n], masks bool [K, n]. The cache key of model k covers key_parts, k,
    masks[k], seeds[k], spec, recipe, n_classes, the resolved precision, a hash of (x, y), the key
    format and the training environment (``training_environment``: library versions, training code).
    progress(n_done_models) reports cached and trained models together. names[k] (default k) stands
    for the model index in its cache key, e.g. "target" for a target trained along with the references.
    device ("cpu" or "cuda", resolved by perf.resolve_device): where torch models train and stacks
    infer (scikit-learn models stay on the CPU).
    backend "ray": the missing chunks train as Ray tasks (ray_backend.run_chunks) on the cluster at
    ``address`` or a local Ray instance; the same seeds give the same models as "local".
    """
    masks, names = check_reference_inputs(x, y, masks, seeds, names)
    if chunk_size < 1:
        raise InputError(f"chunk_size: must be at least 1, got {chunk_size}")
    torch_spec = spec.name == "mlp" or _registry().is_torch(spec)
    stacked_cnn = spec.name != "mlp" and _registry().trains_stacked(spec, recipe)
    resolved = resolve_device_precision(precision, device) if torch_spec else "n/a"
    keys = _model_keys(spec, x, y, masks, n_classes, recipe, seeds, resolved, cache, key_parts, names)
    report = progress or (lambda done: None)
    if backend == "ray":
        from miaudit.models.ray_references import train_on_ray

        return train_on_ray(spec, x, y, masks, n_classes, recipe, seeds, resolved, cache, keys, chunk_size, report,
                            device, torch_spec, stacked_cnn, address)
    if backend != "local":
        raise InputError(f"backend: local or ray, got {backend!r}")
    if spec.name == "mlp":
        return _train_mlps(spec, x, y, masks, n_classes, recipe, seeds, resolved, cache, keys, chunk_size, report,
                           device)
    if stacked_cnn:
        return _train_cnns(spec, x, y, masks, n_classes, recipe, seeds, resolved, cache, keys, chunk_size, report,
                           device)
    loaded = [_load(cache, key, lambda m: hasattr(m, "logits")) for key in keys]
    missing = [k for k, m in enumerate(loaded) if m is None]
    report(len(masks) - len(missing))
    started = time.perf_counter()
    fit = _registry().fit_single
    if torch_spec:
        results = ((k, fit(spec, x[masks[k]], y[masks[k]], n_classes, recipe, seeds[k], resolved, device=device))
                   for k in missing)
    else:
        from joblib import Parallel, delayed

        from miaudit.models.sklearn_models import fit_sklearn_model
        from miaudit.models.wrappers import SklearnTarget

        # Worker processes run only scikit-learn code (fit_sklearn_model imports no torch), so they
        # start fast; the parent wraps each fitted estimator.
        run = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        fitted = run(delayed(_fit_indexed)(fit_sklearn_model, k, spec.name, x[masks[k]], y[masks[k]], seeds[k])
                     for k in missing)
        results = ((k, SklearnTarget(spec.name, est, n_classes)) for k, est in fitted)
    done = len(masks) - len(missing)
    for k, model in results:
        loaded[k] = model
        _save(cache, keys[k], model)
        done += 1
        report(done)
    return ReferenceModels(spec, loaded, len(missing), time.perf_counter() - started, 0.0)


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


def _registry():
    from miaudit.models import registry  # imported late: registry imports stack.py for mlp targets

    return registry


def _fit_indexed(fit, k, *args):
    return k, fit(*args)


def training_environment(kind: str) -> dict[str, str]:
    """What besides the inputs decides a trained model of ``kind`` ("torch" or "sklearn"): the
    versions of miaudit and of the libraries that train it, and a sha256 of miaudit's training code."""
    import importlib.metadata as metadata

    libraries = ("torch", "numba") if kind == "torch" else ("scikit-learn", "scipy", "joblib")
    env = {"miaudit": __version__, "numpy": np.__version__}
    for name in libraries:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "absent"
    env["training_code"] = _code_digest(kind)
    return env


@lru_cache(maxsize=2)
def _code_digest(kind: str) -> str:
    import importlib

    code = hashlib.sha256()
    for module in _TRAINING_MODULES[kind]:
        code.update(Path(importlib.import_module(module).__file__).read_bytes())
    return code.hexdigest()


def _model_keys(spec, x, y, masks, n_classes, recipe, seeds, precision, cache, key_parts,
                names) -> list[str | None]:
    if cache is None:
        return [None] * len(masks)
    kind = "torch" if spec.name == "mlp" or _registry().is_torch(spec) else "sklearn"
    shared = {**(key_parts or {}), "format": _KEY_FORMAT, "data": cache_key(x=np.asarray(x), y=np.asarray(y)),
              "spec": spec, "recipe": recipe, "n_classes": int(n_classes), "precision": precision,
              "environment": training_environment(kind)}
    return [cache_key(**shared, model_index=name, mask=masks[k], seed=int(seeds[k])) for k, name in enumerate(names)]


def _load(cache: ModelCache | None, key: str | None, valid: Callable[[object], bool]) -> object | None:
    if cache is None or key is None:
        return None
    obj = cache.load(key)
    return obj if obj is not None and valid(obj) else None


def _save(cache: ModelCache | None, key: str | None, obj: object) -> None:
    """Save to the cache; a model that cannot be pickled is kept in memory with a warning."""
    if cache is None or key is None:
        return
    try:
        cache.save(key, obj)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, OSError) as err:
        warnings.warn(f"model cache: could not save a model ({err}); it will be retrained next time",
                      RuntimeWarning, stacklevel=3)


def _mlp_state_checker(widths: tuple[int, ...]) -> Callable[[object], bool]:
    """Does a cached object look like MLPStack.state() of an MLP with these layer widths?"""
    def valid(state: object) -> bool:
        if not isinstance(state, dict) or len(state) != 2 * (len(widths) - 1):
            return False
        for i, (a, b) in enumerate(pairwise(widths)):
            w, bias = state.get(f"w{i}"), state.get(f"b{i}")
            if not (isinstance(w, np.ndarray) and w.shape == (a, b) and isinstance(bias, np.ndarray)
                    and bias.shape == (b,)):
                return False
        return True

    return valid


def _train_mlps(spec, x, y, masks, n_classes, recipe, seeds, precision, cache, keys, chunk_size,
                report: Callable[[int], None], device: str = "cpu") -> ReferenceModels:
    n_features = int(np.prod(np.shape(x)[1:]))
    states: list[Any] = [_load(cache, key, _mlp_state_checker((n_features, *spec.hidden, n_classes))) for key in keys]

    def train(chunk: list[int], inner: Callable[[int], None]):
        return train_mlp_stack(x, y, masks[chunk], n_classes, spec.hidden, recipe, [seeds[k] for k in chunk],
                               precision, inner, device=device)

    def flops(k: int) -> float:
        return mlp_train_flops(n_features, spec.hidden, n_classes, int(masks[k].sum()) * recipe.epochs)

    trained, seconds, model_flops = _train_missing_chunks(states, masks, recipe, cache, keys, chunk_size, report,
                                                          train, flops)
    return ReferenceModels(spec, MLPStack.from_states(states), trained, seconds, float(model_flops.sum()),
                           precision, model_flops, device)


def _train_cnns(spec, x, y, masks, n_classes, recipe, seeds, precision, cache, keys, chunk_size,
                report: Callable[[int], None], device: str) -> ReferenceModels:
    """CNNs in stacks of chunk_size (cnn_stack.py), cached per model as soon as their chunk ends."""
    _registry().check_image_input(spec, x)
    plan = _registry().cnn_plan(spec, np.shape(x)[1:], n_classes)
    states: list[Any] = [_load(cache, key, lambda s: state_fits(plan, s)) for key in keys]

    def train(chunk: list[int], inner: Callable[[int], None]):
        return train_cnn_stack(plan, x, y, masks[chunk], recipe, [seeds[k] for k in chunk], precision, inner, device)

    def flops(k: int) -> float:
        return cnn_train_flops(plan, int(masks[k].sum()) * recipe.epochs)

    trained, seconds, model_flops = _train_missing_chunks(states, masks, recipe, cache, keys, chunk_size, report,
                                                          train, flops)
    return ReferenceModels(spec, CNNStack.from_states(plan, states), trained, seconds, float(model_flops.sum()),
                           precision, model_flops, device)


def _train_missing_chunks(states: list, masks: np.ndarray, recipe: TrainingRecipe, cache, keys, chunk_size: int,
                          report: Callable[[int], None], train: Callable, flops: Callable[[int], float]):
    """Train the models whose states[k] is None in stacks of chunk_size (``train(chunk, inner_progress)``
    returns a stack with ``state(j)``), filling states and caching each model as its chunk ends.

    Returns (models trained, training seconds, float64 [K] training FLOPs, 0 for models from the cache).
    """
    missing = [k for k, s in enumerate(states) if s is None]
    done = len(masks) - len(missing)
    report(done)
    seconds = 0.0
    model_flops = np.zeros(len(masks))
    for chunk in _chunks(missing, chunk_size):
        total_steps = recipe.epochs * int(np.unique(-(-masks[chunk].sum(axis=1) // recipe.batch_size)).sum())

        def inner(steps: int, base: int = done, n: int = len(chunk), total: int = total_steps) -> None:
            report(base + min(n - 1, steps * n // total))  # models of the chunk in flight, by steps done

        started = time.perf_counter()
        stack = train(chunk, inner)
        seconds += time.perf_counter() - started
        for j, k in enumerate(chunk):
            states[k] = stack.state(j)
            _save(cache, keys[k], states[k])
            model_flops[k] = flops(k)
        done += len(chunk)
        report(done)
    return len(missing), seconds, model_flops


def _chunks(items: list[int], size: int) -> list[list[int]]:
    """items in consecutive chunks of ``size``; a remainder under size / 2 joins the chunk before it
    (a stack of one or two models pays the per-step Python cost of a full one)."""
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    if len(chunks) > 1 and 2 * len(chunks[-1]) < size:
        chunks[-2:] = [chunks[-2] + chunks[-1]]
    return chunks
