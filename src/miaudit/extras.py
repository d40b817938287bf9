"""Optional dependencies: imported on demand, with the pip extra that provides them when missing."""
from __future__ import annotations

import importlib
from types import ModuleType

from miaudit.errors import InputError


def require(module: str, extra: str, field: str = "model file") -> ModuleType:
    """The imported ``module``; InputError "field: needs onnxruntime: pip install miaudit[onnx]" when
    it (or its package) is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise InputError(f"{field}: needs {package}: pip install miaudit[{extra}]") from None
