"""scikit-learn target models by name; they see features flattened to [n, d].

scikit-learn is imported when a model is made, not with this module: the family registry (and through
it the CLI's --help, which lists the target names) loads no scikit-learn (about 2 s).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from miaudit.errors import InputError

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

SKLEARN_NAMES = ("logreg", "tree", "naive-bayes", "forest", "svm")


def make_sklearn_model(name: str, seed: int) -> ClassifierMixin:
    """An unfitted estimator for ``name`` (one of SKLEARN_NAMES), its randomness seeded by ``seed``.

    logreg: L2 logistic regression (lbfgs, up to 1000 iterations); tree: fully grown decision tree;
    naive-bayes: Gaussian naive Bayes; forest: 100-tree random forest; svm: RBF SVC with Platt-scaled
    probabilities.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

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


def seed_params(estimator) -> list[str]:
    """The names of an estimator's (or Pipeline's) ``random_state`` parameters, nested ones included."""
    return [k for k in estimator.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")]


def fit_seeded_clone(template, name: str, x: np.ndarray, y: np.ndarray, seed: int):
    """An unfitted clone of the estimator ``template`` with every random_state set to seed, fitted on x [n, d],
    y [n] (``name`` is the model's display name; unused: the signature of SklearnFamily's worker fit)."""
    from sklearn.base import clone

    estimator = clone(template)
    estimator.set_params(**{p: int(seed) for p in seed_params(estimator)})
    return estimator.fit(x, y)
