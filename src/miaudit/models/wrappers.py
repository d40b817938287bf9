"""Trained torch modules, scikit-learn estimators and MLP stacks behind the Target protocol.

Every wrapper gives logits float32 [n, C], predict_proba float64 [n, C] (softmax of the logits),
predict int64 [n] and accuracy in [0, 1], for x float32 [n, *feature_shape]. All are picklable.
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from torch import nn

from miaudit.models.mlp_stack import MLPStack
from miaudit.models.sklearn_models import flatten
from miaudit.models.train import torch_logits

PROBABILITY_FLOOR = 1e-12


class TargetOutputs:
    """predict_proba / predict / accuracy derived from ``logits``; subclasses set name, n_classes."""

    name: str
    n_classes: int
    export_suffix: str | None = None  # the file --save-target writes (its family's: models/families.py)

    def logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, C] softmax of the logits; rows sum to 1."""
        return np.exp(log_softmax(np.asarray(self.logits(x), np.float64), axis=-1))  # = signals.functions.probabilities

    def predict(self, x: np.ndarray) -> np.ndarray:
        """int64 [n] most likely class."""
        return self.logits(x).argmax(axis=1).astype(np.int64)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Fraction of records whose predicted class equals y int [n]."""
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_classes={self.n_classes})"


class TorchTarget(TargetOutputs):
    """A torch module whose forward pass returns logits [n, n_classes]; ``module`` is exposed for
    white-box attacks."""

    export_suffix = ".onnx"

    def __init__(self, name: str, module: nn.Module, n_classes: int) -> None:
        self.name, self.module, self.n_classes = name, module.eval(), int(n_classes)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return torch_logits(self.module, x)


class SklearnTarget(TargetOutputs):
    """A fitted scikit-learn classifier with predict_proba; logits are log-probabilities.

    Probabilities are clipped at 1e-12 before the log, and classes absent from the estimator's
    training labels get probability 1e-12, so logits always have n_classes columns.
    """

    export_suffix = ".skops"

    def __init__(self, name: str, estimator, n_classes: int) -> None:
        self.name, self.estimator, self.n_classes = name, estimator, int(n_classes)

    def logits(self, x: np.ndarray) -> np.ndarray:
        proba = self.estimator.predict_proba(flatten(x))
        out = np.full((len(proba), self.n_classes), np.log(PROBABILITY_FLOOR), dtype=np.float32)
        columns = np.asarray(self.estimator.classes_, dtype=np.int64)
        out[:, columns] = np.log(np.clip(proba, PROBABILITY_FLOOR, None))
        return out


class StackTarget(TargetOutputs):
    """One MLP from :mod:`miaudit.models.mlp_stack` (an MLPStack holding a single model)."""

    export_suffix = ".onnx"

    def __init__(self, name: str, stack: MLPStack) -> None:
        if stack.n_models != 1:
            raise ValueError(f"StackTarget needs a 1-model stack, got {stack.n_models} models; use stack.select(k)")
        self.name, self.stack, self.n_classes = name, stack, int(stack.n_classes)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.stack.logits(x)[0], dtype=np.float32)


def mlp_stack_of(model) -> MLPStack | None:
    """The one-model MLPStack behind a model (a StackTarget, or a wrapper passing ``stack`` through), else
    None: white-box attacks compute an MLP's per-example gradient norms in closed form from it."""
    stack = getattr(model, "stack", None)
    return stack if isinstance(stack, MLPStack) else None


def white_box_available(model) -> bool:
    """True when ``model`` opens its parameters: a TorchTarget (``module``) or a StackTarget (``stack``)."""
    return isinstance(getattr(model, "module", None), nn.Module) or mlp_stack_of(model) is not None
