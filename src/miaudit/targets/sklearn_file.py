"""Fitted scikit-learn classifiers from files: skops (.skops), or pickle / joblib only when trusted.

Loading a pickle runs whatever code it names, so .pkl / .joblib files load only with
trust_pickle=True. skops files load without running code from the file; types skops does not
trust by default are refused (named) unless trust_pickle=True or listed in ``trusted``, except
scikit-learn's own tree structures (SKLEARN_TREE_TYPES), which every tree model holds.
"""
from __future__ import annotations

import pickle
from collections.abc import Sequence
from math import prod
from pathlib import Path

import numpy as np

from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.contract import check_output_shape, one_line, probability_problem, probe_records
from miaudit.models.wrappers import SklearnTarget

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
SKLEARN_TREE_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def _load_skops(path: Path, trusted: Sequence[str], trust_all: bool):
    sio = require("skops.io", "sklearn-io", field=path.name)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # zipfile / json errors for files that are not skops archives
        raise InputError(f"{path.name}: not a skops file ({one_line(err)})") from None
    refused = [t for t in untrusted if t not in (*SKLEARN_TREE_TYPES, *trusted)]
    if refused and not trust_all:
        raise InputError(f"{path.name}: holds types skops does not trust ({', '.join(refused)}); "
                         "loading them may run code: pass --trust-pickle if you trust this file")
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as err:
        raise InputError(f"{path.name}: skops cannot load it ({one_line(err)})") from None


def _load_pickle(path: Path, trust_pickle: bool):
    if not trust_pickle:
        raise InputError(f"{path.name}: loading a pickle runs code; pass --trust-pickle if you trust this file, "
                         "or save it with skops")
    try:
        if path.suffix == ".joblib":
            import joblib

            return joblib.load(path)
        with path.open("rb") as f:
            return pickle.load(f)
    except Exception as err:  # unpickling raises anything the file's code raises
        raise InputError(f"{path.name}: cannot be unpickled ({one_line(err)})") from None


def check_estimator(estimator, name: str, feature_shape: Sequence[int], n_classes: int) -> None:
    """InputError unless ``estimator`` is a fitted classifier with predict_proba taking
    prod(feature_shape) features, with classes_ integers in 0..n_classes-1, whose predict_proba on
    probe records is [n, len(classes_)] probabilities."""
    kind = type(estimator).__name__
    if not callable(getattr(estimator, "predict_proba", None)):
        raise InputError(f"{name}: {kind} has no predict_proba; an audit needs class probabilities")
    n_features = prod(int(d) for d in feature_shape)
    declared = getattr(estimator, "n_features_in_", None)
    if declared is not None and int(declared) != n_features:
        raise InputError(f"{name}: {kind} takes {int(declared)} features, the data has {n_features}")
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise InputError(f"{name}: {kind} has no classes_ (not a fitted classifier)")
    classes = np.asarray(classes)
    integral = np.issubdtype(classes.dtype, np.integer) or classes.dtype == bool or (
        np.issubdtype(classes.dtype, np.floating) and np.array_equal(classes, np.round(classes)))
    if classes.ndim != 1 or not integral or classes.min() < 0 or classes.max() >= n_classes:
        shown = ", ".join(map(str, classes.ravel()[:5])) + (", ..." if classes.size > 5 else "")
        raise InputError(f"{name}: {kind}'s classes_ ({shown}) are not labels in 0..{n_classes - 1}; "
                         "train it on the labels as miaudit encodes them")
    x = probe_records(feature_shape).reshape(-1, n_features)
    try:
        proba = estimator.predict_proba(x)
    except Exception as err:  # whatever the estimator raises on records of this width
        raise InputError(f"{name}: predict_proba fails on {n_features}-feature records ({one_line(err)})") from None
    check_output_shape(proba, len(x), len(classes), f"{name}: predict_proba")
    problem = probability_problem(proba)
    if problem:
        raise InputError(f"{name}: predict_proba does not give probabilities ({problem})")


def read_estimator(path: str | Path, trust_pickle: bool = False, trusted: Sequence[str] = ()):
    """The object in a .skops file (or a .pkl / .pickle / .joblib one when trust_pickle), unchecked."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return _load_pickle(path, trust_pickle)
    return _load_skops(path, trusted, trust_pickle)


def load_sklearn_file(path: str | Path, feature_shape: Sequence[int], n_classes: int, trust_pickle: bool = False,
                      trusted: Sequence[str] = ()) -> SklearnTarget:
    """The scikit-learn classifier in a .skops file (or a .pkl / .pickle / .joblib one when
    trust_pickle), checked by ``check_estimator``, as a SklearnTarget (logits = log-probabilities)."""
    path = Path(path)
    estimator = read_estimator(path, trust_pickle, trusted)
    check_estimator(estimator, path.name, feature_shape, n_classes)
    return SklearnTarget(path.name, estimator, n_classes)
