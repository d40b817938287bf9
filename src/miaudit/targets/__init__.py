"""Targets that come from outside miaudit: model files (ONNX, TorchScript, torch.export, skops,
pickle), precomputed predictions, and the export of a target miaudit trained.

``load_target`` (load.py) reads a model file (or an http(s) URL: http_target.py) into the Target
protocol; ``save_target`` (export.py) writes one; ``load_predictions`` (predictions.py) reads
signals for an audit without a model.
Names below are imported on first use, so importing this package loads neither torch nor onnxruntime.
"""
from __future__ import annotations

import importlib
from typing import Any

from miaudit.extras import require

_EXPORTS = {
    "load_target": "load",
    "MODEL_SUFFIXES": "load",
    "OnnxTarget": "onnx_file",
    "load_onnx": "onnx_file",
    "TorchFileTarget": "torch_file",
    "load_torchscript": "torch_file",
    "load_exported_program": "torch_file",
    "load_sklearn_file": "sklearn_file",
    "save_target": "export",
    "Predictions": "predictions",
    "load_predictions": "predictions",
    "save_predictions": "predictions",
    "runnable_attacks": "predictions",
    "HttpTarget": "http_target",
    "load_http_target": "http_target",
    "QueryBudgetExhausted": "http_target",
    "TargetUnreachable": "http_target",
    "is_url": "http_target",
}

__all__ = ["require", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
