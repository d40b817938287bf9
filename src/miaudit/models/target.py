"""The one interface every audited model answers, whoever trained it."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Target(Protocol):
    """A trained classifier under audit.

    ``logits(x)`` returns float32 [n, n_classes] scores whose softmax is the predicted probability
    vector. Models without logits (scikit-learn, HTTP APIs) return log-probabilities, which have the
    same softmax. ``x`` is float32 [n, *feature_shape] as in :class:`miaudit.data.dataset.Dataset`.
    """

    name: str
    n_classes: int

    def logits(self, x: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...
