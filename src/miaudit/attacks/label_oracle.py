"""The audited model as a label-only attacker sees it: ``predict(x) -> labels``, every record counted.

A LabelOracle answers only predicted labels. Asking it for logits or probabilities (or any other
attribute of the model) raises LabelOnlyViolation, so a label-only attack cannot read more than its
threat model allows even by mistake. Each record sent is one query; a budget caps the total.
"""
from __future__ import annotations

import threading

import numpy as np

from miaudit.errors import InputError


class LabelOnlyViolation(PermissionError):
    """A label-only attack asked the target for something other than labels."""


class QueryBudgetExceeded(RuntimeError):
    """A label-only attack asked for more records than its query budget allows."""


class LabelOracle:
    """Predicted labels of ``model`` (anything with ``logits(x) -> [m, C]``) and nothing else.

    budget: most records that may be sent in total (None: no cap). ``queries``: records sent so far;
    ``remaining``: what the budget still allows (None without a cap). Thread-safe counting.
    """

    __slots__ = ("_model", "_budget", "_queries", "_lock")

    def __init__(self, model, budget: int | None = None) -> None:
        if model is None:
            raise InputError("label-only attack: needs the audited model itself (not only its predictions)")
        if budget is not None and (not isinstance(budget, (int, np.integer)) or budget < 0):
            raise InputError(f"query budget: must be a non-negative integer, got {budget!r}")
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_budget", None if budget is None else int(budget))
        object.__setattr__(self, "_queries", 0)
        object.__setattr__(self, "_lock", threading.Lock())

    @property
    def queries(self) -> int:
        return self._queries

    @property
    def budget(self) -> int | None:
        return self._budget

    @property
    def remaining(self) -> int | None:
        return None if self._budget is None else self._budget - self._queries

    def predict(self, x: np.ndarray) -> np.ndarray:
        """int64 [m] predicted labels of x [m, *feature_shape]; m queries. QueryBudgetExceeded (and
        nothing sent) when m exceeds what the budget still allows."""
        x = np.asarray(x, dtype=np.float32)
        m = len(x)
        with self._lock:
            if self._budget is not None and self._queries + m > self._budget:
                raise QueryBudgetExceeded(f"label-only query budget: {m} more records asked, "
                                          f"{self._budget - self._queries} of {self._budget} left")
            object.__setattr__(self, "_queries", self._queries + m)
        if m == 0:
            return np.zeros(0, np.int64)
        return np.asarray(self._model.logits(x)).argmax(axis=1).astype(np.int64)

    def __getattr__(self, name: str):
        raise LabelOnlyViolation(f"label-only target: only predict(x) -> labels is available, not {name!r}")

    def __setattr__(self, name: str, value) -> None:
        raise LabelOnlyViolation("label-only target: read-only")

    def __reduce__(self):
        raise LabelOnlyViolation("label-only target: cannot be copied or pickled")

    def __repr__(self) -> str:
        return f"LabelOracle(queries={self._queries}, budget={self._budget})"
