"""Export a target miaudit trained to a file a user (or ``load_target``) can audit: torch models
(TorchTarget, and the one MLP of a StackTarget) to ONNX, scikit-learn ones (SklearnTarget) to skops.

The exported model takes raw records: miaudit's input scaling (an InputScaler, fitted on the
audited dataset) becomes its first step: a Standardize layer for torch, scikit-learn scalers holding
the same statistics in front of the estimator (a Pipeline) for scikit-learn, both computing what
InputScaler.transform computes, (x - mean) * (1 / scale) in float32. ONNX files have one input
"x" [n, *feature_shape] (float32, any n) and one output "logits" [n, C], and say both shapes in their
metadata_props (``onnx_metadata``); a skops estimator says them in n_features_in_ and classes_.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from math import prod
from pathlib import Path

import numpy as np
import torch
from torch import nn

from miaudit.data.scaling import InputScaler
from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.contract import FEATURE_SHAPE_KEY, N_CLASSES_KEY
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.wrappers import mlp_stack_of

ONNX_OPSET = 17


class Standardize(nn.Module):
    """InputScaler.transform as a torch layer: (x - mean) * (1 / scale) in float32, statistics
    broadcast to one record's shape."""

    def __init__(self, scaler: InputScaler) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(np.asarray(scaler.mean, np.float32).copy()))
        self.register_buffer("inverse_scale", torch.from_numpy(np.float32(1.0) / scaler.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inverse_scale


def mlp_module(stack: MLPStack) -> nn.Sequential:
    """nn.Sequential of Linear / ReLU layers computing the logits of a 1-model stack's MLP on
    flattened records [n, n_features]."""
    if stack.n_models != 1:
        raise InputError(f"stack: exports one MLP, the stack holds {stack.n_models}")
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(stack.weights, stack.biases, strict=True)):
        linear = nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w[0].T)))
            linear.bias.copy_(torch.from_numpy(b[0]))
        layers += [linear] if i == len(stack.weights) - 1 else [linear, nn.ReLU()]
    return nn.Sequential(*layers).eval()


def _torch_model(target, feature_shape: Sequence[int] | None, scaler: InputScaler | None,
                 units: InputScaler | None = None):
    """(module on raw records, record shape) for a TorchTarget or StackTarget; ``units`` (the dataset's
    published units -> miaudit's) goes before the scaler."""
    stack = mlp_stack_of(target)
    if stack is not None:
        shape = tuple(feature_shape) if feature_shape is not None else (stack.n_features,)
        if prod(shape) != stack.n_features:
            raise InputError(f"feature_shape: {shape} has {prod(shape)} values, "
                             f"the MLP takes {stack.n_features}")
        body = mlp_module(stack)
        if len(shape) > 1:
            body = nn.Sequential(nn.Flatten(), body)
    else:
        if feature_shape is None:
            raise InputError("feature_shape: needed to export a torch module (one record's shape)")
        shape, body = tuple(feature_shape), target.module.eval()
    if scaler is not None and not scaler.is_identity:
        body = nn.Sequential(Standardize(scaler), body)
    if units is not None and not units.is_identity:
        body = nn.Sequential(Standardize(units), body)
    return body.eval(), tuple(int(d) for d in shape)


def _save_onnx(module: nn.Module, record_shape: tuple[int, ...], n_classes: int, path: Path) -> None:
    onnx = require("onnx", "onnx", field=path.name)
    example = torch.zeros((2, *record_shape), dtype=torch.float32)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=ONNX_OPSET)
    model = onnx.load(str(path))
    for key, value in onnx_metadata(record_shape, n_classes).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def onnx_metadata(record_shape: Sequence[int], n_classes: int) -> dict[str, str]:
    """The metadata_props an exported ONNX file carries, so that it serves with no shape flags:
    miaudit.feature_shape "1,28,28" (one record's shape) and miaudit.n_classes "10"."""
    return {FEATURE_SHAPE_KEY: ",".join(str(int(d)) for d in record_shape), N_CLASSES_KEY: str(int(n_classes))}


def _affine(scaler: InputScaler, record_shape: tuple[int, ...]):
    """(StandardScaler centring by the mean, MinMaxScaler multiplying by 1 / scale), both float32 like
    InputScaler.transform, over records of record_shape flattened."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    try:
        mean = np.broadcast_to(np.asarray(scaler.mean, np.float32), record_shape).ravel().astype(np.float64)
        inverse = np.broadcast_to(np.float32(1.0) / scaler.scale, record_shape).ravel().astype(np.float64)
    except ValueError:
        raise InputError(f"scaler: statistics of shape {scaler.mean.shape} do not fit records {record_shape}") from None
    d = len(mean)
    centre = StandardScaler(with_std=False)
    centre.mean_, centre.var_, centre.scale_ = mean, None, None
    centre.n_features_in_, centre.n_samples_seen_ = d, 1
    multiply = MinMaxScaler()
    multiply.scale_, multiply.min_ = inverse, np.zeros(d)
    multiply.data_min_, multiply.data_max_ = np.zeros(d), 1.0 / inverse
    multiply.data_range_ = multiply.data_max_.copy()
    multiply.n_features_in_, multiply.n_samples_seen_ = d, 1
    return centre, multiply


def scaled_estimator(estimator, scaler: InputScaler | None, record_shape: Sequence[int],
                     units: InputScaler | None = None):
    """``estimator`` behind ``scaler`` on records of ``record_shape`` flattened to [n, d], as a
    Pipeline of a StandardScaler that only centres (x - mean, float32) and a MinMaxScaler that only
    multiplies (by 1 / scale, float32): bit for bit InputScaler.transform, and types skops trusts.
    The estimator itself when there is no scaling."""
    from sklearn.pipeline import Pipeline

    record_shape = tuple(int(d) for d in record_shape)
    steps = []
    if units is not None and not units.is_identity:  # the dataset's published units -> miaudit's
        steps += list(zip(("units_centre", "units_scale"), _affine(units, record_shape)))
    if scaler is not None and not scaler.is_identity:
        steps += list(zip(("centre", "scale"), _affine(scaler, record_shape)))
    return Pipeline([*steps, ("model", estimator)]) if steps else estimator


def save_target(target, path: str | Path, scaler: InputScaler | None = None,
                feature_shape: Sequence[int] | None = None, units: InputScaler | None = None) -> Path:
    """Write ``target`` to ``path`` (.onnx for TorchTarget / StackTarget, .skops for SklearnTarget)
    as a model of raw records: ``scaler`` (the audit's input scaling) becomes its first step, after
    ``units`` (data.builtin.published_units: a bundled dataset's published units -> miaudit's).
    feature_shape, one record's shape, is needed for a TorchTarget (and for an MLP on images).
    Returns the path written."""
    path = Path(path)
    suffix = getattr(type(target), "export_suffix", None)  # the class's answer: a wrapper does not pass it through
    if suffix == ".onnx":
        if path.suffix.lower() != ".onnx":
            raise InputError(f"{path.name}: a torch target exports to ONNX, name the file *.onnx")
        module, record_shape = _torch_model(target, feature_shape, scaler, units)
        _save_onnx(module, record_shape, target.n_classes, path)
        return path
    if suffix == ".skops":
        if path.suffix.lower() != ".skops":
            raise InputError(f"{path.name}: a scikit-learn target exports to skops, name the file *.skops")
        sio = require("skops.io", "sklearn-io", field=path.name)
        record_shape = tuple(feature_shape) if feature_shape is not None else (
            np.broadcast_shapes(scaler.mean.shape, scaler.scale.shape) if scaler is not None else ())
        declared = getattr(target.estimator, "n_features_in_", None)
        if scaler is not None and declared is not None and prod(record_shape) != int(declared):
            raise InputError(f"feature_shape: records {tuple(record_shape)} have {prod(record_shape)} values, "
                             f"the estimator takes {int(declared)} (pass feature_shape for image data)")
        sio.dump(scaled_estimator(target.estimator, scaler, record_shape, units), path)
        return path
    raise InputError(f"target: {type(target).__name__} cannot be exported (TorchTarget, StackTarget or SklearnTarget)")
