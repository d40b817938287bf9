"""K reference models that resemble the user's own model, cached per model like train_references.

Three sources: a scikit-learn estimator or Pipeline (``sklearn.base.clone``, every ``random_state``
set from the model's seed, fitted in parallel with joblib); a torch module (nn.Module, TorchScript, or
a torch.export program: the same architecture re-drawn from the seed by reinit.fresh_copy and trained
with the recipe by train_torch_model); or the user's ``train_fn(x, y, seed) -> model``. Each model is
saved to the cache as soon as it is trained, so a killed run resumes with only the missing models.
"""
from __future__ import annotations

import hashlib
import inspect
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from miaudit.errors import InputError
from miaudit.models.cache import ModelCache, cache_key, load_entry, save_entry
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.reference_models import ReferenceModels
from miaudit.models.references import check_reference_inputs, training_environment
from miaudit.models.sklearn_models import flatten
from miaudit.models.user_models import TorchModuleTarget, as_target, is_sklearn_estimator, is_torch_module
from miaudit.targets.contract import check_output_option, one_line, resolve_output

_KEY_FORMAT = "miaudit-user-reference-v1"
_TORCH_ADVICE = "pass --reference-architecture, or a TorchScript file / nn.Module that trains"
_USER_MODULES = ("user_references.py", "user_models.py", "reinit.py")


@dataclass(frozen=True)
class UserTemplate:
    """What the reference models copy: kind ("sklearn" | "torch" | "train_fn") and a display name."""

    kind: str
    name: str


def _unwrap(template):
    """The estimator or module inside a Target built from one (SklearnTarget, Torch*Target)."""
    for attribute in ("estimator", "module"):
        inner = getattr(template, attribute, None)
        if inner is not None and hasattr(template, "logits"):
            return inner
    return template


def _template_kind(template, train_fn) -> str:
    if train_fn is not None:
        if not callable(train_fn):
            raise InputError(f"train_fn: a {type(train_fn).__name__} is not callable; "
                             "pass train_fn(x, y, seed) -> model")
        return "train_fn"
    if is_sklearn_estimator(template):
        if not hasattr(template, "predict_proba"):
            raise InputError(f"reference models: {type(template).__name__} has no predict_proba; "
                             "an audit needs class probabilities")
        return "sklearn"
    if is_torch_module(template) or hasattr(template, "graph_signature"):
        return "torch"
    raise InputError(f"reference models: a {type(template).__name__} cannot be re-trained; pass "
                     "--reference-architecture, a scikit-learn estimator, a torch module or train_fn")


def _qualname(obj) -> str:
    kind = obj if isinstance(obj, type) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _source_digest(obj) -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()
    except (OSError, TypeError):
        return None


def _param_value(value):
    if is_sklearn_estimator(value):
        return _qualname(value)
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic)):
        return value
    if isinstance(value, (list, tuple)):
        return [_param_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _param_value(v) for k, v in value.items()}
    if callable(value):
        return getattr(value, "__qualname__", repr(value))
    return repr(value)


def _seed_params(estimator) -> list[str]:
    return [k for k in estimator.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")]


def describe_template(template, kind: str, train_fn=None, cache_name: str | None = None) -> dict | None:
    """What in the template decides the reference models, for their cache keys; None when a train_fn
    cannot be identified (no source and no cache_name)."""
    if kind == "train_fn":
        source = _source_digest(train_fn)
        if source is None and cache_name is None:
            return None
        return {"train_fn": getattr(train_fn, "__qualname__", _qualname(train_fn)),
                "module": getattr(train_fn, "__module__", None), "source": source, "cache_name": cache_name}
    if kind == "sklearn":
        seeded = set(_seed_params(template))
        params = {k: _param_value(v) for k, v in template.get_params(deep=True).items() if k not in seeded}
        return {"class": _qualname(template), "params": params}
    return {"architecture": _architecture_text(template), "tensors": [
        [name, list(t.shape), str(t.dtype)] for name, t in _state_dict(template).items()]}


def _state_dict(module) -> dict:
    return dict(module.state_dict) if hasattr(module, "graph_signature") else module.state_dict()


def _architecture_text(module) -> str:
    """The torch module's structure and forward code (TorchScript / export code, or the sources of
    its Python classes), so a changed forward retrains."""
    if hasattr(module, "graph_signature"):
        module = module.module()
    if isinstance(module, torch.jit.ScriptModule):
        parts = []
        for path, sub in module.named_modules():
            try:
                code = sub.code
            except (RuntimeError, AttributeError):
                code = ""
            parts.append(f"{path}:{sub.original_name}:{code}")
        return "\n".join(parts)
    if isinstance(module, torch.fx.GraphModule):
        return module.code
    classes = sorted({_qualname(sub): type(sub) for sub in module.modules()}.items())
    return repr(module) + "\n" + "\n".join(f"{name}:{_source_digest(cls)}" for name, cls in classes)


@lru_cache(maxsize=1)
def _user_code_digest() -> str:
    code = hashlib.sha256()
    for name in _USER_MODULES:
        code.update((Path(__file__).parent / name).read_bytes())
    return code.hexdigest()


def _keys(description, kind, x, y, masks, n_classes, recipe, seeds, precision, output, cache, key_parts,
          names) -> list[str | None]:
    if cache is None or description is None:
        return [None] * len(masks)
    environment = {"torch": training_environment("torch"), "sklearn": training_environment("sklearn")}
    shared = {**(key_parts or {}), "format": _KEY_FORMAT, "data": cache_key(x=np.asarray(x), y=np.asarray(y)),
              "kind": kind, "template": description, "n_classes": int(n_classes), "output": output,
              "recipe": recipe if kind == "torch" else None, "precision": precision,
              "environment": environment[kind] if kind in environment else environment,
              "user_code": _user_code_digest()}
    return [cache_key(**shared, model_index=name, mask=masks[k], seed=int(seeds[k])) for k, name in enumerate(names)]


def _sklearn_models(template, x, y, masks, seeds, missing, n_classes, name, n_jobs):
    from joblib import Parallel, delayed
    from sklearn.base import clone

    from miaudit.models.wrappers import SklearnTarget

    flat = flatten(x)
    clones = {}
    for k in missing:
        estimator = clone(template)
        estimator.set_params(**{p: int(seeds[k]) for p in _seed_params(estimator)})
        clones[k] = estimator
    # Workers get the estimators' own bound fit methods, so they import scikit-learn only (no torch);
    # results come back in order, each saved as soon as it and those before it are done.
    run = Parallel(n_jobs=n_jobs, return_as="generator")
    fitted = run(delayed(clones[k].fit)(flat[masks[k]], y[masks[k]]) for k in missing)
    return ((k, SklearnTarget(f"{name}-{k}", est, n_classes)) for k, est in zip(missing, fitted))


def _torch_output_kind(template, x: np.ndarray, output: str, name: str) -> str:
    """"logits" or "probabilities": what the template returns on the first records of x."""
    from miaudit.models.reinit import fresh_copy

    module = fresh_copy(template, 0, name).eval()
    try:
        with torch.inference_mode():
            values = module(torch.from_numpy(np.ascontiguousarray(x[:64], dtype=np.float32)))
    except Exception as err:  # the user's forward fails on these records
        shape = tuple(x.shape[1:])
        raise InputError(f"{name}: a forward pass on records of shape {shape} fails ({one_line(err)}); "
                         f"{_TORCH_ADVICE}") from None
    return resolve_output(values.detach().float().numpy(), output, f"{name}: output")


class _LogOf(nn.Module):
    """A module returning probabilities, as log-probabilities: cross-entropy on them is their NLL."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.inner(x).clamp_min(1e-12))


def _torch_model(template, x, y, recipe, seed, precision, kind_of_output, name):
    from miaudit.models.reinit import fresh_copy
    from miaudit.models.train import train_torch_model

    module = fresh_copy(template, seed, name)
    trainable = _LogOf(module) if kind_of_output == "probabilities" else module
    try:
        train_torch_model(trainable, x, y, recipe, seed, precision)
    except InputError:
        raise
    except Exception as err:  # e.g. an export with a fixed batch size, or a module that cannot train
        raise InputError(f"{name}: cannot be trained as a reference model ({one_line(err)}); "
                         f"{_TORCH_ADVICE}") from None
    return module.eval()


def _load_cached(kind: str, template, keys: list, cache: ModelCache | None, n_classes: int, label: str,
                 flat: bool) -> list:
    """The cached Target of each key, or None. Torch models are cached as {"state": state_dict,
    "output": kind} and rebuilt on a copy of the template; the others as pickled Targets."""
    if kind != "torch":
        def valid_target(obj: object) -> bool:
            return hasattr(obj, "logits") and getattr(obj, "n_classes", None) == n_classes

        return [load_entry(cache, key, valid_target) for key in keys]
    from miaudit.models.reinit import fresh_copy

    shapes = {k: tuple(v.shape) for k, v in fresh_copy(template, 0, label).state_dict().items()}

    def valid(entry: object) -> bool:
        state = entry.get("state") if isinstance(entry, dict) else None
        return (isinstance(state, dict) and entry.get("output") in ("logits", "probabilities")
                and {k: tuple(getattr(v, "shape", ())) for k, v in state.items()} == shapes)

    loaded: list = []
    for k, key in enumerate(keys):
        entry = load_entry(cache, key, valid)
        if entry is not None:
            module = fresh_copy(template, 0, label)
            module.load_state_dict(entry["state"])
            entry = TorchModuleTarget(f"{label}-{k}", module, n_classes, entry["output"], flat)
        loaded.append(entry)
    return loaded


def train_user_references(template, x: np.ndarray, y: np.ndarray, masks: np.ndarray, n_classes: int,
                          recipe: TrainingRecipe, seeds: Sequence[int], *, train_fn: Callable | None = None,
                          cache: ModelCache | None = None, key_parts: dict | None = None,
                          progress: Callable[[int], None] | None = None, n_jobs: int = -1,
                          precision: str = "auto", output: str = "auto", cache_name: str | None = None,
                          names: Sequence[int | str] | None = None) -> ReferenceModels:
    """K models resembling ``template``; model k trained on x[masks[k]], y[masks[k]] with seeds[k].

    template: a scikit-learn estimator / Pipeline (fitted or not), a torch nn.Module, TorchScript
    module, torch.export program or its module(), or a Target wrapping one (SklearnTarget,
    TorchTarget, a file target); ignored when ``train_fn(x, y, seed) -> model`` is given (its models
    go through as_target). x float32 [n, ...] (flattened for scikit-learn), y int [n], masks bool
    [K, n]. recipe and precision apply to torch templates; output says whether a torch template /
    train_fn model returns "logits" or "probabilities" ("auto": decided on records).
    The cache key of model k covers key_parts, names[k] (default k), masks[k], seeds[k], the template
    (describe_template), n_classes, output, the recipe (torch), precision, a hash of (x, y) and the
    training environment. A train_fn without readable source is cached only under ``cache_name``.
    progress(n_done_models) counts cached and trained models. Returns ReferenceModels whose
    ``models`` is a list of K Targets and whose ``spec`` is a UserTemplate.
    """
    x, y = np.asarray(x), np.asarray(y)
    masks, names = check_reference_inputs(x, y, masks, seeds, names)
    check_output_option(output)
    flat = train_fn is None and bool(getattr(template, "flatten", False))  # a model file taking flat records
    if flat:
        x = x.reshape(len(x), -1)
    if output == "auto" and train_fn is None and getattr(template, "output_kind", None) in ("logits", "probabilities"):
        output = template.output_kind  # as settled when the model file was loaded
    given_name = getattr(template, "name", None) if hasattr(template, "logits") else None
    template = _unwrap(template) if train_fn is None else template
    kind = _template_kind(template, train_fn)
    if kind == "train_fn":
        label = getattr(train_fn, "__name__", "train_fn")
    else:
        label = str(given_name or getattr(template, "original_name", None) or type(template).__name__)
    if kind == "torch":
        from miaudit.models.perf import resolve_precision
        from miaudit.models.reinit import is_exported, trainable_export

        if is_exported(template):
            trainable_export(template, label)  # refuses graphs with dropout / batch norm, before any work
        resolved = resolve_precision(precision)
        output_kind = _torch_output_kind(template, x, output, label)
    else:
        resolved, output_kind = "n/a", output
    description = describe_template(template, kind, train_fn, cache_name)
    if description is None and cache is not None:
        warnings.warn(f"train_fn: {label} has no readable source, so its models are not cached; "
                      "pass cache_name to cache them", RuntimeWarning, stacklevel=2)
    keys = _keys(description, kind, x, y, masks, n_classes, recipe, seeds, resolved, output_kind, cache,
                 key_parts, names)
    report = progress or (lambda done: None)
    loaded = _load_cached(kind, template, keys, cache, n_classes, label, flat)
    missing = [k for k, m in enumerate(loaded) if m is None]
    done = len(masks) - len(missing)
    report(done)
    started = time.perf_counter()
    if kind == "sklearn":
        results = _sklearn_models(template, x, y, masks, seeds, missing, n_classes, label, n_jobs)
    elif kind == "torch":
        results = ((k, _torch_model(template, x[masks[k]], y[masks[k]], recipe, int(seeds[k]), resolved,
                                    output_kind, label)) for k in missing)
    else:
        results = ((k, _call_train_fn(train_fn, x[masks[k]], y[masks[k]], int(seeds[k]), k, n_classes, output,
                                      label)) for k in missing)
    for k, model in results:
        if kind == "torch":
            state = {name: t.detach().cpu().clone() for name, t in model.state_dict().items()}
            save_entry(cache, keys[k], {"state": state, "output": output_kind})
            model = TorchModuleTarget(f"{label}-{k}", model, n_classes, output_kind, flat)
        else:
            save_entry(cache, keys[k], model)
        loaded[k] = model
        done += 1
        report(done)
    return ReferenceModels(UserTemplate(kind, label), loaded, len(missing), time.perf_counter() - started, 0.0,
                           resolved if kind == "torch" else "float32")


def _call_train_fn(train_fn, x, y, seed, k, n_classes, output, label):
    try:
        model = train_fn(x, y, seed)
    except InputError:
        raise
    except Exception as err:  # the user's training code failed; earlier models are already cached
        raise InputError(f"train_fn: {label} failed on reference model {k} ({type(err).__name__}: "
                         f"{one_line(err)})") from err
    return as_target(model, n_classes, name=f"{label}-{k}", output=output)
