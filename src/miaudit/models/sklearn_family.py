"""The scikit-learn model families: estimators made by name, fitted in worker processes, cached as SklearnTargets."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from miaudit.models.family import ModelFamily, TrainingJob
from miaudit.models.sklearn_models import SKLEARN_NAMES, fit_estimator, make_sklearn_model

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

# The modules whose code decides every fitted scikit-learn model (a family adds its own).
SKLEARN_CODE = ("miaudit.models.sklearn_family", "miaudit.models.sklearn_models", "miaudit.models.wrappers")


class SklearnFamily(ModelFamily):
    """scikit-learn estimators made by ``make(name, seed)`` (a module-level function) for target_names;
    code_modules: the family's own modules (the cache key's training code).

    Not torch, not white-box, no DP-SGD; exported to skops. Models fit in joblib worker processes
    (worker_fit loads scikit-learn only) and are cached as SklearnTargets.
    """

    export_suffix = ".skops"

    def __init__(self, name: str, target_names: tuple[str, ...], make: Callable[[str, int], ClassifierMixin],
                 code_modules: tuple[str, ...]) -> None:
        self.name, self.target_names, self.make = name, tuple(target_names), make
        self.worker_fit = partial(fit_estimator, make)
        self.code_modules = (*SKLEARN_CODE, *code_modules)

    def fit(self, spec, x, y, n_classes, recipe, seed, precision="auto", progress=None, device="cpu"):
        return self.from_worker_named(spec.name, fit_estimator(self.make, spec.name, x, y, seed), n_classes)

    def from_worker(self, job: TrainingJob, fitted, index: int) -> object:
        return self.from_worker_named(job.spec.name, fitted, job.n_classes)

    @staticmethod
    def from_worker_named(name: str, fitted, n_classes: int):
        """The SklearnTarget of a fitted estimator (wrappers.py loads torch: imported here, not above)."""
        from miaudit.models.wrappers import SklearnTarget

        return SklearnTarget(name, fitted, n_classes)


SKLEARN = SklearnFamily("sklearn", SKLEARN_NAMES, make_sklearn_model, ())
