"""A model file -> a checked Target, by the file's suffix."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from miaudit.errors import InputError
from miaudit.models.contract import check_output_option
from miaudit.models.target import Target

MODEL_SUFFIXES: dict[str, str] = {
    ".onnx": "ONNX",
    ".pt": "TorchScript",
    ".ts": "TorchScript",
    ".pt2": "torch.export",
    ".skops": "scikit-learn (skops)",
    ".pkl": "scikit-learn pickle, with --trust-pickle",
    ".pickle": "scikit-learn pickle, with --trust-pickle",
    ".joblib": "scikit-learn joblib, with --trust-pickle",
}


def load_target(path: str | Path, feature_shape: Sequence[int], n_classes: int, trust_pickle: bool = False,
                output: str = "auto", probe: np.ndarray | None = None, token_file: str | Path | None = None,
                query_budget: int | None = None) -> Target:
    """The model at ``path`` as a Target for records float32 [n, *feature_shape] and n_classes classes.

    .onnx -> OnnxTarget; .pt / .ts -> TorchScript, .pt2 -> torch.export (TorchFileTarget);
    .skops, and .pkl / .pickle / .joblib when trust_pickle -> SklearnTarget. output ("auto" |
    "logits" | "probabilities") says what an ONNX or torch model returns (auto: decided on probe
    records, float32 [m, *feature_shape], seeded noise when not given); scikit-learn estimators
    give probabilities. Every check failure is a one-line InputError naming the file.
    An http:// or https:// URL -> HttpTarget (targets/http_target.py), with the bearer token from
    token_file (or $MIAUDIT_TOKEN) and at most query_budget records sent.
    """
    output = check_output_option(output)
    if isinstance(path, str) and path.lower().startswith(("http://", "https://")):
        if output == "logits":
            raise InputError(f"{path}: output: an HTTP API gives probabilities or labels, not logits")
        from miaudit.targets.http_target import load_http_target

        return load_http_target(path, feature_shape, n_classes, token_file=token_file, query_budget=query_budget)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        known = ", ".join(f"{s} ({kind})" for s, kind in MODEL_SUFFIXES.items())
        raise InputError(f"{path.name}: unknown model file type {suffix or '(no suffix)'!r}; known: {known}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    feature_shape = tuple(int(d) for d in feature_shape)
    if suffix == ".onnx":
        from miaudit.targets.onnx_file import load_onnx

        return load_onnx(path, feature_shape, n_classes, output, probe)
    if suffix in (".pt", ".ts", ".pt2"):
        from miaudit.targets.torch_file import load_exported_program, load_torchscript

        loader = load_exported_program if suffix == ".pt2" else load_torchscript
        return loader(path, feature_shape, n_classes, output, probe)
    if output == "logits":
        raise InputError(f"{path.name}: output: a scikit-learn estimator gives probabilities, not logits")
    from miaudit.targets.sklearn_file import load_sklearn_file

    return load_sklearn_file(path, feature_shape, n_classes, trust_pickle=trust_pickle)
