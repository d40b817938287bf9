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
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from miaudit.errors import InputError
from miaudit.models.cache import ModelCache, cache_key
from miaudit.models.contract import check_output_option, one_line, resolve_output
from miaudit.models.family import ModelFamily, TrainingJob
from miaudit.models.perf import resolve_precision
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.reference_models import ReferenceModels
from miaudit.models.references import LocalBackend, check_reference_inputs, train_job, training_environment
from miaudit.models.reinit import fresh_copy, is_exported, trainable_export
from miaudit.models.sklearn_models import fit_seeded_clone, flatten, seed_params
from miaudit.models.train import train_torch_model
from miaudit.models.user_models import TorchModuleTarget, as_target, is_sklearn_estimator, is_torch_module
from miaudit.models.wrappers import SklearnTarget

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
        seeded = set(seed_params(template))
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


def _torch_output_kind(template, x: np.ndarray, output: str, name: str) -> str:
    """"logits" or "probabilities": what the template returns on the first records of x."""
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


class UserFamily(ModelFamily):
    """Models resembling one user's template, as a family (not in the registry: one per template).

    kind "sklearn": clones fitted in joblib workers (fit_seeded_clone: scikit-learn only), states are
    SklearnTargets; "torch": re-drawn copies trained with the recipe, states {"state": state_dict,
    "output": "logits" | "probabilities"}, rebuilt on a copy of the template; "train_fn": the user's
    models through as_target, states are the Targets.
    """

    name = "user"

    def __init__(self, kind: str, template, train_fn, label: str, output: str, output_kind: str, flat: bool):
        self.kind, self.template, self.train_fn, self.label = kind, template, train_fn, label
        self.output, self.output_kind, self.flat = output, output_kind, flat
        self.is_torch = kind == "torch"
        self.worker_fit = partial(fit_seeded_clone, template) if kind == "sklearn" else None

    def fit(self, spec, x, y, n_classes, recipe, seed, precision="auto", progress=None, device="cpu"):
        raise InputError("reference models: a user's template trains only as reference models")

    def from_worker(self, job: TrainingJob, fitted, index: int) -> object:
        return SklearnTarget(f"{self.label}-{index}", fitted, job.n_classes)

    def train_chunk(self, job: TrainingJob, masks, seeds, progress=None, indices=None) -> list:
        indices = range(len(masks)) if indices is None else indices
        states = []
        for m, seed, k in zip(masks, seeds, indices, strict=True):
            x, y = job.x[m], job.y[m]
            if self.kind == "torch":
                module = _torch_model(self.template, x, y, job.recipe, int(seed), job.precision, self.output_kind,
                                      self.label)
                states.append({"state": {name: t.detach().cpu().clone() for name, t in module.state_dict().items()},
                               "output": self.output_kind})
            else:
                states.append(_call_train_fn(self.train_fn, x, y, int(seed), k, job.n_classes, self.output,
                                             self.label))
        return states

    def state_check(self, job: TrainingJob) -> Callable[[object], bool]:
        if self.kind != "torch":
            return lambda obj: hasattr(obj, "logits") and getattr(obj, "n_classes", None) == job.n_classes
        shapes = {k: tuple(v.shape) for k, v in fresh_copy(self.template, 0, self.label).state_dict().items()}

        def valid(entry: object) -> bool:
            state = entry.get("state") if isinstance(entry, dict) else None
            return (isinstance(state, dict) and entry.get("output") in ("logits", "probabilities")
                    and {k: tuple(getattr(v, "shape", ())) for k, v in state.items()} == shapes)

        return valid

    def collection(self, job: TrainingJob, states: list) -> list:
        if self.kind != "torch":
            return list(states)
        models = []
        for k, entry in enumerate(states):
            module = fresh_copy(self.template, 0, self.label)
            module.load_state_dict(entry["state"])
            models.append(TorchModuleTarget(f"{self.label}-{k}", module, job.n_classes, entry["output"], self.flat))
        return models


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
    family = UserFamily(kind, template, train_fn, label, output, output_kind, flat)
    job = TrainingJob(family, UserTemplate(kind, label), flatten(x) if kind == "sklearn" else x, y, int(n_classes),
                      recipe, resolved)
    refs = train_job(job, masks, seeds, cache, keys, 1, LocalBackend(n_jobs), progress)
    return replace(refs, precision=resolved if kind == "torch" else "float32")


def _call_train_fn(train_fn, x, y, seed, k, n_classes, output, label):
    try:
        model = train_fn(x, y, seed)
    except InputError:
        raise
    except Exception as err:  # the user's training code failed; earlier models are already cached
        raise InputError(f"train_fn: {label} failed on reference model {k} ({type(err).__name__}: "
                         f"{one_line(err)})") from err
    return as_target(model, n_classes, name=f"{label}-{k}", output=output)
