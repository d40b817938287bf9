"""The model a server answers with: a model file read by ``load_target`` and checked before serving.

A record's shape and the class count come from flags (--features / --classes, or --dataset), else
from what the file declares: an exported ONNX file's metadata_props (``targets.export.onnx_metadata``)
or its graph's static shapes, a torch.export program's input, a scikit-learn estimator's
n_features_in_ and classes_. TorchScript declares neither.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from miaudit.data import load_dataset
from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.contract import FEATURE_SHAPE_KEY, N_CLASSES_KEY, one_line
from miaudit.models.target import Target
from miaudit.targets.load import MODEL_SUFFIXES, load_target


@dataclass(frozen=True)
class ServedModel:
    """A checked target and the records it takes: float32 [n, *feature_shape], n_classes classes."""

    file: str
    target: Target
    feature_shape: tuple[int, ...]
    n_classes: int

    @property
    def n_features(self) -> int:
        return prod(self.feature_shape)

    def probabilities(self, records: np.ndarray) -> np.ndarray:
        """float64 [n, C] for records [n, n_features] (reshaped to the model's record shape)."""
        x = np.asarray(records, np.float32).reshape(len(records), *self.feature_shape)
        return np.asarray(self.target.predict_proba(x), np.float64)


def parse_features(text: str | None) -> tuple[int, ...] | None:
    """--features "64" or "1,28,28" (one record's shape) -> a tuple of positive ints."""
    if text is None:
        return None
    if not re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*", text) or 0 in (shape := tuple(int(d) for d in text.split(","))):
        raise InputError(f"--features: {text!r} is not a record shape such as 64 or 1,28,28")
    return shape


def _onnx_declared(path: Path) -> tuple[tuple[int, ...] | None, int | None]:

    ort = require("onnxruntime", "onnx", field=path.name)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception types for a corrupt or foreign file
        raise InputError(f"{path.name}: not an ONNX model onnxruntime can load: the file is corrupt or not "
                         f"ONNX ({one_line(err)})") from None
    meta = session.get_modelmeta().custom_metadata_map
    shape = classes = None
    if FEATURE_SHAPE_KEY in meta and N_CLASSES_KEY in meta:
        try:
            return tuple(int(d) for d in meta[FEATURE_SHAPE_KEY].split(",")), int(meta[N_CLASSES_KEY])
        except ValueError:
            pass
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) == 1 and inputs[0].shape and all(isinstance(d, int) and d > 0 for d in inputs[0].shape[1:]):
        shape = tuple(inputs[0].shape[1:]) or None
    scores = [o for o in outputs if o.shape is not None and len(o.shape) == 2 and isinstance(o.shape[1], int)]
    if len(scores) == 1:
        classes = int(scores[0].shape[1])
    return shape, classes


def _export_declared(path: Path) -> tuple[tuple[int, ...] | None, int | None]:
    import torch

    try:
        program = torch.export.load(str(path))
        inputs = list(program.graph_signature.user_inputs)
        nodes = {n.name: n for n in program.graph.nodes}
        value = nodes[inputs[0]].meta.get("val") if len(inputs) == 1 else None
        output = next(n for n in program.graph.nodes if n.op == "output").args[0]
        out_value = output[0].meta.get("val") if isinstance(output, (tuple, list)) and len(output) == 1 else None
    except Exception as err:  # torch's own exception types for a corrupt or foreign file
        raise InputError(f"{path.name}: not a torch.export program torch can load: the file is corrupt or "
                         f"not a .pt2 program ({one_line(err)})") from None
    shape = tuple(value.shape[1:]) if isinstance(value, torch.Tensor) else ()
    classes = out_value.shape[-1] if isinstance(out_value, torch.Tensor) and out_value.dim() == 2 else None
    shape = shape if shape and all(isinstance(d, int) for d in shape) else None
    return shape, (classes if isinstance(classes, int) else None)


def _sklearn_declared(path: Path, trust_pickle: bool) -> tuple[tuple[int, ...] | None, int | None]:
    from miaudit.targets.sklearn_file import read_estimator

    estimator = read_estimator(path, trust_pickle)
    if not callable(getattr(estimator, "predict_proba", None)):
        raise InputError(f"{path.name}: {type(estimator).__name__} has no predict_proba; a served model must "
                         "give class probabilities (a classifier, not a regressor)")
    n_features = getattr(estimator, "n_features_in_", None)
    classes = getattr(estimator, "classes_", None)
    shape = (int(n_features),) if n_features is not None else None
    try:
        n_classes = int(np.max(classes)) + 1 if classes is not None and len(classes) else None
    except (TypeError, ValueError):  # string class names: load_target explains
        n_classes = None
    return shape, n_classes


def declared_shape(path: str | Path, trust_pickle: bool = False) -> tuple[tuple[int, ...] | None, int | None]:
    """(one record's shape, class count) as the model file declares them; None for what it does not."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in MODEL_SUFFIXES:
        return None, None
    if suffix == ".onnx":
        return _onnx_declared(path)
    if suffix == ".pt2":
        return _export_declared(path)
    if suffix in (".pt", ".ts"):
        return None, None
    return _sklearn_declared(path, trust_pickle)


def load_served_model(path: str | Path, features: str | None = None, classes: int | None = None,
                      dataset: str | None = None, data_dir: str | None = None,
                      trust_pickle: bool = False) -> ServedModel:
    """The model file at ``path`` checked (load_target's probe records) for records of the shape
    and class count given by the flags, or --dataset's, or the file's own; InputError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"MODEL_FILE: {path} " + ("is not a file" if path.exists() else "does not exist"))
    shape, n_classes = parse_features(features), classes
    if classes is not None and classes < 2:
        raise InputError(f"--classes: at least 2, got {classes}")
    if dataset is not None and (shape is None or n_classes is None):

        ds = load_dataset(dataset, data_dir)
        shape, n_classes = shape or tuple(ds.feature_shape), n_classes or ds.n_classes
    if shape is None or n_classes is None:
        declared_features, declared_classes = declared_shape(path, trust_pickle)
        shape, n_classes = shape or declared_features, n_classes or declared_classes
    if shape is None or n_classes is None:
        missing = "record shape" if shape is None else "class count"
        raise InputError(f"{path.name}: does not declare its {missing}; pass --dataset NAME "
                         "or --features SHAPE and --classes N")
    try:
        target = load_target(path, shape, n_classes, trust_pickle=trust_pickle)
    except InputError:
        raise
    except Exception as err:  # a loader's unexpected failure still stops the server before it starts
        raise InputError(f"{path.name}: cannot be served ({type(err).__name__}: {one_line(err)})") from None
    return ServedModel(path.name, target, tuple(int(d) for d in shape), int(n_classes))
