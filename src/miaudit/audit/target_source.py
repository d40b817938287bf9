"""Where an audit's target comes from: trained by miaudit (a model name), a model file, a URL, or a
model object handed to ``miaudit.audit``; and what its reference models are modelled on."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from miaudit.audit.config import AuditConfig
from miaudit.data.builtin import published_units
from miaudit.data.dataset import Dataset
from miaudit.data.scaling import InputScaler, compose, value_grid
from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.registry import model_spec
from miaudit.signals.defenses import LabelRelease
from miaudit.targets.load import MODEL_SUFFIXES, load_target

TargetKind = Literal["model", "file", "url"]
# How the reference models of an outside target are trained, by the target's format.
REFERENCE_SOURCES = {
    "ONNX": None,  # inference only: the user names an architecture
    "HTTP API": None,
    "TorchScript": "the target's architecture re-initialised per seed",
    "torch.export": "the target's architecture re-initialised per seed",
    "torch": "the target's architecture re-initialised per seed",
    "scikit-learn": "clones of the target's estimator (same class and hyperparameters)",
}


def target_kind(text: str) -> TargetKind:
    """"url" for http(s):// addresses, "file" for a path with a model-file suffix, else "model" (a name)."""
    if text.startswith(("http://", "https://")):
        return "url"
    if Path(text).suffix.lower() in MODEL_SUFFIXES:
        return "file"
    return "model"


@dataclass
class OutsideTarget:
    """A target miaudit did not train.

    target: the model behind the Target protocol, taking records as the plan holds them (scaled);
    template: what reference models are cloned / re-initialised from (an estimator or a torch
    module), or None when they need a named architecture; kind: its format; source: a path, URL or
    type name; train_fn: the user's ``train_fn(x, y, seed) -> model`` for reference models, or None.
    """

    target: Any
    template: Any
    kind: str
    source: str
    train_fn: Callable | None = None

    @property
    def reference_source(self) -> str | None:
        """How reference models resembling this target are made without a named architecture, or None."""
        if self.train_fn is not None:
            return "the user's train_fn"
        if self.template is None:
            return None
        return REFERENCE_SOURCES.get(self.kind, "clones of the target")


class RawInputs:
    """A target that takes the records as in the user's data, fed the audit's scaled records:
    logits(x) = target.logits(scaler.inverse_transform(x, grid)). ``grid`` (data.scaling.value_grid
    of the raw records) makes discrete features (category codes, counts, pixel levels) exact; the
    rest are exact to float32 rounding."""

    def __init__(self, target, scaler: InputScaler, grid: list | None = None) -> None:
        self.target, self.scaler, self.grid = target, scaler, grid
        self.name, self.n_classes = target.name, target.n_classes

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The records as the user's data holds them."""
        return self.scaler.inverse_transform(x, self.grid)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.target.logits(self.raw(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.target.predict_proba(self.raw(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_proba(x)).argmax(1)

    def __getattr__(self, name: str):  # counters and settings of the wrapped target (queries, ...)
        if name == "target":
            raise AttributeError(name)
        return getattr(self.target, name)


def open_model_file(path: str, feature_shape: Sequence[int], n_classes: int, *, trust_pickle: bool,
                    output: str, probe: np.ndarray | None = None, token_file: str | None = None,
                    query_budget: int | None = None, table=None) -> OutsideTarget:
    """The model file (or prediction API) at ``path`` loaded and checked against records of
    ``feature_shape`` (on the ``probe`` records when given); with the user's ``table`` (UserTable), a
    model taking its raw columns is fed them (targets/raw_columns.py)."""

    if table is not None and target_kind(path) == "file":
        outside = _open_raw_columns_file(path, feature_shape, n_classes, trust_pickle, probe, table)
        if outside is not None:
            return outside
    target = load_target(path, feature_shape, n_classes, trust_pickle=trust_pickle, output=output, probe=probe,
                         token_file=token_file, query_budget=query_budget)
    if target_kind(path) == "url":
        return OutsideTarget(target, None, "HTTP API", path)
    kind = MODEL_SUFFIXES[Path(path).suffix.lower()].split(" ")[0]
    return OutsideTarget(target, None if kind == "ONNX" else target, kind, str(path))


def _open_raw_columns_file(path: str, feature_shape, n_classes: int, trust_pickle: bool, probe, table):
    """An OutsideTarget for a .skops / pickle / .onnx model that takes the table's raw columns, or None."""
    from miaudit.targets import raw_columns

    suffix = Path(path).suffix.lower()
    if suffix == ".onnx" and Path(path).is_file():

        ort = require("onnxruntime", "onnx", field=Path(path).name)
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception:  # load_target names the problem
            return None
        if not raw_columns.onnx_takes_columns(session):
            return None
        target = raw_columns.load_onnx_columns(path, table, n_classes, probe=probe)
        return OutsideTarget(target, None, "ONNX", str(path))
    if suffix not in (".skops", ".pkl", ".pickle", ".joblib"):
        return None
    from miaudit.models.wrappers import SklearnTarget
    from miaudit.targets.sklearn_file import check_estimator, read_estimator

    name = Path(path).name
    estimator = read_estimator(path, trust_pickle)
    wrapped = raw_columns.raw_columns_estimator(estimator, table, name)
    if wrapped is estimator:
        return None
    check_estimator(wrapped, name, feature_shape, n_classes)
    target = SklearnTarget(name, wrapped, n_classes)
    if probe is not None:
        target.logits(probe)
    return OutsideTarget(target, target, "scikit-learn", str(path))


def wrap_model_object(model: Any, n_classes: int, train_fn: Callable | None = None, *, output: str = "auto",
                      probe: np.ndarray | None = None, table=None) -> OutsideTarget:
    """A model object handed to ``miaudit.audit``: a fitted scikit-learn estimator, a torch module,
    a ``predict(x) -> probabilities or logits`` function, or anything with ``logits(x)``; checked on
    the ``probe`` records (a few real ones: noise would trip a pipeline's category encoder). With the
    user's ``table``, an estimator fitted on its raw columns is fed them (targets/raw_columns.py)."""
    from miaudit.models.user_models import as_target, is_sklearn_estimator, is_torch_module

    source = type(model).__name__
    if table is not None and is_sklearn_estimator(model):
        from miaudit.targets.raw_columns import raw_columns_estimator

        model = raw_columns_estimator(model, table, source)
    target = as_target(model, n_classes, output=output, probe=probe)
    sklearn, torch = is_sklearn_estimator(model), is_torch_module(model)
    template = model if sklearn or torch else None
    kind = "scikit-learn" if sklearn else "torch" if torch else "library"
    return OutsideTarget(target, template, kind, source, train_fn)


def raw_columns_of(target) -> list[str]:
    """The table columns a target fed raw columns takes, or [] for one fed encoded records."""
    feed = getattr(target, "feed", None) or getattr(getattr(target, "estimator", None), "feed", None)
    return list(feed.names) if feed is not None and hasattr(feed, "names") else []


def check_reference_plan(outside: OutsideTarget, reference_architecture: str | None, k: int) -> None:
    """InputError when K > 0 reference models are asked for and nothing says how to train them."""
    if k and reference_architecture is None and outside.reference_source is None:
        raise InputError(f"--reference-architecture: the {outside.kind} target {Path(outside.source).name} cannot "
                         f"be retrained; name the reference models' architecture (mlp, cnn, logreg, forest, ...) "
                         f"or use --reference-models 0")


def open_outside(cfg: AuditConfig, raw: Dataset, scaler: InputScaler, model: Any, train_fn: Callable | None,
                  notes: list[str], table=None) -> OutsideTarget | None:
    """The outside target (a model file, a URL, or ``model``) checked against the raw records, or None
    when miaudit trains the target. Fed the audit's scaled records, it sees them as ``target_input`` says."""
    if cfg.reference_architecture is not None:

        model_spec(cfg.reference_architecture, cfg.hidden)
    kind = "object" if model is not None else target_kind(cfg.target)
    if kind == "model":
        if train_fn is not None:
            raise InputError("train_fn: reference models of a target miaudit trains use its own recipe; "
                             "pass the target model too (audit(target=model, train_fn=...))")
        return None
    raw_input = cfg.target_input == "raw"
    units = published_units(raw.name) if raw_input and table is None else None
    feed = scaler if units is None else compose(units, scaler)  # scaled records <- the data as published
    first = raw.x[:8] if units is None else units.inverse_transform(raw.x[:8])
    probe = np.array(first if raw_input else scaler.transform(raw.x[:8]), np.float32)
    if model is not None:
        outside = wrap_model_object(model, raw.n_classes, train_fn, output=cfg.target_output, probe=probe,
                                    table=table if raw_input else None)
    else:
        outside = open_model_file(cfg.target, raw.feature_shape, raw.n_classes, trust_pickle=cfg.trust_pickle,
                                  output=cfg.target_output, probe=probe, token_file=cfg.token_file,
                                  query_budget=cfg.query_budget, table=table if raw_input else None)
    columns = raw_columns_of(outside.target)
    if columns:
        notes.append(f"the target takes the table's raw columns ({', '.join(columns)}): records are fed to it "
                     "as those columns, its classes mapped through the table's label mapping")
    check_reference_plan(outside, cfg.reference_architecture, cfg.reference_models)
    if getattr(outside.target, "label_only", False):

        outside.target = LabelRelease(outside.target)
        notes.append("the target answers labels only: every attack sees labels (one-hot log-probabilities), "
                     "and the reference models are queried the same way")
    if raw_input and not feed.is_identity:
        sample = raw.x[:5000] if raw.is_image else raw.x  # every pixel level; every category of a table
        if units is not None:
            sample = units.inverse_transform(sample)
            notes.append(f"the target is fed {raw.name} in the units scikit-learn publishes it in"
                         + (" (pixel counts 0..16)" if raw.name == "digits" else " (unstandardised features)"))
        outside.target = RawInputs(outside.target, feed, value_grid(sample))
    how = (f"{cfg.reference_architecture} models trained with the recipe" if cfg.reference_architecture
           else outside.reference_source)
    if cfg.reference_models:
        notes.append(f"target: the user's {outside.kind} model {outside.source}; reference models: {how}"
                     + (" (the attacker knows the architecture only as named, not the target's own)"
                        if cfg.reference_architecture else ""))
    return outside
