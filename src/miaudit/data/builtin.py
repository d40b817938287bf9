"""The datasets bundled with scikit-learn: digits (images), breast-cancer, wine, iris (tabular).

digits: x float32 [1797, 1, 8, 8], pixel counts 0..16 divided by 16 -> [0, 1].
breast-cancer, wine, iris: x float32 [n, d], each feature standardised to zero mean, unit variance.
"""
from __future__ import annotations

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.data.scaling import InputScaler
from miaudit.errors import InputError

SKLEARN_LOADERS = {"digits": "load_digits", "breast-cancer": "load_breast_cancer", "wine": "load_wine",
                   "iris": "load_iris"}


def load_sklearn_dataset(name: str) -> Dataset:
    """One of SKLEARN_LOADERS' datasets (read from scikit-learn's installed files, no network)."""
    if name not in SKLEARN_LOADERS:
        raise InputError(f"--dataset: {name!r} is not bundled with scikit-learn ({', '.join(SKLEARN_LOADERS)})")
    import sklearn.datasets
    from sklearn.preprocessing import StandardScaler

    bunch = getattr(sklearn.datasets, SKLEARN_LOADERS[name])()
    y = np.asarray(bunch.target, dtype=np.int64)
    class_names = tuple(str(c) for c in bunch.target_names)
    if name == "digits":
        x = (bunch.images[:, None] / 16.0).astype(np.float32)
    else:
        x = StandardScaler().fit_transform(bunch.data).astype(np.float32)
    return Dataset(name, x, y, len(class_names), class_names)


def published_units(name: str):
    """The InputScaler from the units scikit-learn publishes a bundled dataset in (what a user's own
    copy and the models trained on it take) to the units miaudit loads it in, or None for any other
    dataset: digits' pixel counts 0..16 are divided by 16, the tabular sets' features standardised.
    A model file or object audited on such a dataset is fed its records in the published units, and
    ``--save-target`` writes a model taking them."""
    if name not in SKLEARN_LOADERS:
        return None

    if name == "digits":
        return InputScaler(np.zeros((1, 1, 1), np.float32), np.full((1, 1, 1), 16.0, np.float32))
    import sklearn.datasets

    data = getattr(sklearn.datasets, SKLEARN_LOADERS[name])().data
    std = data.std(axis=0)
    return InputScaler(data.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))
