"""train_references on Ray: the same chunks as the local backend, each a Ray task, each saved on arrival.

Every chunk trains with the same trainer and the same per-model seeds as locally (train_mlp_stack,
train_cnn_stack, fit_single / fit_sklearn_model), so the models and every number derived from them match
the local backend. A task receives the shared data by object-store reference and its own chunk's masks
(chunk_size x n bools), and returns float32 states (stacks) or fitted models.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from miaudit.models.cnn_models import CNNStack, state_fits
from miaudit.models.cnn_stack import cnn_train_flops, train_cnn_stack
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.ray_backend import run_chunks, torch_threads
from miaudit.models.ray_signals import RayPlacement
from miaudit.models.references import ReferenceModels, _chunks, _load, _mlp_state_checker, _registry, _save
from miaudit.models.stack import mlp_train_flops, train_mlp_stack


def train_on_ray(spec, x, y, masks, n_classes, recipe, seeds, precision, cache, keys, chunk_size,
                 report: Callable[[int], None], device: str, torch_spec: bool, stacked_cnn: bool,
                 address: str | None) -> ReferenceModels:
    """train_references' work with every missing chunk a Ray task; arguments as there (precision resolved)."""
    # a stack's models depend (in float rounding) on how its chunk is split over worker threads and on the
    # intra-op threads of a one-thread split, so every task trains with this process's torch threads
    # (stack.py: min(chunk, torch threads) workers), whatever Ray gives it
    shared = {"x": np.asarray(x), "y": np.asarray(y), "n_classes": int(n_classes), "recipe": recipe,
              "precision": precision, "spec": spec, "device": device, "torch_spec": torch_spec,
              "threads": torch.get_num_threads()}
    if spec.name == "mlp":
        widths = (int(np.prod(np.shape(x)[1:])), *spec.hidden, n_classes)
        valid, train = _mlp_state_checker(widths), _mlp_chunk
        flops = lambda k: mlp_train_flops(widths[0], spec.hidden, n_classes, int(masks[k].sum()) * recipe.epochs)  # noqa: E731
    elif stacked_cnn:
        _registry().check_image_input(spec, x)
        plan = _registry().cnn_plan(spec, np.shape(x)[1:], n_classes)
        shared["plan"] = plan
        valid, train = (lambda s: state_fits(plan, s)), _cnn_chunk
        flops = lambda k: cnn_train_flops(plan, int(masks[k].sum()) * recipe.epochs)  # noqa: E731
    else:
        valid, train, flops = (lambda m: hasattr(m, "logits")), _single_chunk, (lambda k: 0.0)
    loaded = [_load(cache, key, valid) for key in keys]
    missing = [k for k, m in enumerate(loaded) if m is None]
    done = len(masks) - len(missing)
    report(done)
    model_flops = np.zeros(len(masks))
    started = time.perf_counter()
    chunk_args = lambda chunk: {"masks": masks[chunk], "seeds": [int(seeds[k]) for k in chunk]}  # noqa: E731
    for chunk, models in run_chunks(train, shared, _chunks(missing, chunk_size), chunk_args, address):
        for k, model in zip(chunk, models, strict=True):
            loaded[k] = model
            _save(cache, keys[k], model)
            model_flops[k] = flops(k)
        done += len(chunk)
        report(done)
    seconds = time.perf_counter() - started
    placement = RayPlacement(address, chunk_size)  # the stacks' logits run on Ray too
    if spec.name == "mlp":
        return ReferenceModels(spec, MLPStack.from_states(loaded), len(missing), seconds, float(model_flops.sum()),
                               precision, model_flops, device, placement)
    if stacked_cnn:
        return ReferenceModels(spec, CNNStack.from_states(shared["plan"], loaded), len(missing), seconds,
                               float(model_flops.sum()), precision, model_flops, device, placement)
    return ReferenceModels(spec, loaded, len(missing), seconds, 0.0)


def _float32(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.asarray(a, np.float32) for name, a in state.items()}


def _mlp_chunk(shared: dict, masks: np.ndarray, seeds: list[int]) -> list[dict[str, np.ndarray]]:
    with torch_threads(shared["threads"]):
        stack = train_mlp_stack(shared["x"], shared["y"], masks, shared["n_classes"], shared["spec"].hidden,
                                shared["recipe"], seeds, shared["precision"], None, device=shared["device"])
    return [_float32(stack.state(j)) for j in range(len(seeds))]


def _cnn_chunk(shared: dict, masks: np.ndarray, seeds: list[int]) -> list[dict[str, np.ndarray]]:
    with torch_threads(shared["threads"]):
        stack = train_cnn_stack(shared["plan"], shared["x"], shared["y"], masks, shared["recipe"], seeds,
                                shared["precision"], None, shared["device"])
    return [_float32(stack.state(j)) for j in range(len(seeds))]


def _single_chunk(shared: dict, masks: np.ndarray, seeds: list[int]) -> list:
    x, y, spec, n_classes = shared["x"], shared["y"], shared["spec"], shared["n_classes"]
    if shared["torch_spec"]:
        fit = _registry().fit_single
        with torch_threads(shared["threads"]):
            return [fit(spec, x[m], y[m], n_classes, shared["recipe"], seed, shared["precision"],
                        device=shared["device"])
                    for m, seed in zip(masks, seeds, strict=True)]
    from miaudit.models.sklearn_models import fit_sklearn_model
    from miaudit.models.wrappers import SklearnTarget

    return [SklearnTarget(spec.name, fit_sklearn_model(spec.name, x[m], y[m], seed), n_classes)
            for m, seed in zip(masks, seeds, strict=True)]
