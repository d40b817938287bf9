"""scikit-learn target models by name, and their family; they see features flattened to [n, d]."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from miaudit.errors import InputError
from miaudit.models.family import ModelFamily, TrainingJob

SKLEARN_NAMES = ("logreg", "tree", "naive-bayes", "forest", "svm")


def make_sklearn_model(name: str, seed: int) -> ClassifierMixin:
    """An unfitted estimator for ``name`` (one of SKLEARN_NAMES), its randomness seeded by ``seed``.

    logreg: L2 logistic regression (lbfgs, up to 1000 iterations); tree: fully grown decision tree;
    naive-bayes: Gaussian naive Bayes; forest: 100-tree random forest; svm: RBF SVC with Platt-scaled
    probabilities.
    """
    if name == "logreg":
        return LogisticRegression(max_iter=1000, random_state=seed)
    if name == "tree":
        return DecisionTreeClassifier(random_state=seed)
    if name == "naive-bayes":
        return GaussianNB()
    if name == "forest":
        return RandomForestClassifier(n_estimators=100, random_state=seed)
    if name == "svm":
        return SVC(probability=True, random_state=seed)
    raise InputError(f"--target: {name!r} is not a scikit-learn model; choose one of {', '.join(SKLEARN_NAMES)}")


def flatten(x: np.ndarray) -> np.ndarray:
    """float32 [n, d] view of x [n, *feature_shape]."""
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), -1)


def fit_sklearn_model(name: str, x: np.ndarray, y: np.ndarray, seed: int) -> ClassifierMixin:
    """``make_sklearn_model(name, seed)`` fitted on flattened x [n, ...] and labels y int [n]."""
    return fit_estimator(make_sklearn_model, name, x, y, seed)


def fit_estimator(make: Callable[[str, int], ClassifierMixin], name: str, x: np.ndarray, y: np.ndarray,
                  seed: int) -> ClassifierMixin:
    """``make(name, seed)`` fitted on flattened x [n, ...] and labels y int [n]."""
    if len(x) != len(y):
        raise InputError(f"training data: {len(x)} feature rows but {len(y)} labels")
    if len(np.unique(y)) < 2:
        raise InputError(f"training data: --target {name} needs at least two classes among the labels")
    with warnings.catch_warnings():
        # scikit-learn 1.9 deprecates SVC(probability=True) (removal planned for 1.11); it is still the
        # Platt-scaled SVM of the membership-inference literature and copes with rare classes.
        warnings.filterwarnings("ignore", message=".*probability.*deprecated", category=FutureWarning)
        return make(name, seed).fit(flatten(x), np.asarray(y))


class SklearnFamily(ModelFamily):
    """scikit-learn estimators made by ``make(name, seed)`` (a module-level function) for target_names.

    Not torch, not white-box, no DP-SGD; exported to skops. Models fit in joblib worker processes
    (worker_fit loads scikit-learn only) and are cached as SklearnTargets.
    """

    export_suffix = ".skops"

    def __init__(self, name: str, target_names: tuple[str, ...], make: Callable[[str, int], ClassifierMixin],
                 code_modules: tuple[str, ...]) -> None:
        self.name, self.target_names, self.make = name, tuple(target_names), make
        self.worker_fit = partial(fit_estimator, make)
        self.code_modules = ("miaudit.models.sklearn_models", "miaudit.models.wrappers", *code_modules)

    def fit(self, spec, x, y, n_classes, recipe, seed, precision="auto", progress=None, device="cpu"):
        return self.from_worker_named(spec.name, fit_estimator(self.make, spec.name, x, y, seed), n_classes)

    def from_worker(self, job: TrainingJob, fitted) -> object:
        return self.from_worker_named(job.spec.name, fitted, job.n_classes)

    @staticmethod
    def from_worker_named(name: str, fitted, n_classes: int):
        """The SklearnTarget of a fitted estimator (wrappers.py loads torch: imported here, not above)."""
        from miaudit.models.wrappers import SklearnTarget

        return SklearnTarget(name, fitted, n_classes)


SKLEARN = SklearnFamily("sklearn", SKLEARN_NAMES, make_sklearn_model, ())
