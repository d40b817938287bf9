"""Datasets by name: ``load_dataset("fashion-mnist")`` or a path, and what is available where."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from miaudit.data.builtin import load_sklearn_dataset
from miaudit.data.datadir import check_data_dir
from miaudit.data.dataset import Dataset
from miaudit.data.idx import IMAGE_SETS, load_image_set, locate_image_set
from miaudit.data.tabular import FILE_TYPES, load_location, load_table_file, locate_location
from miaudit.errors import InputError

DataDir = str | Path | None


@dataclass(frozen=True)
class DatasetInfo:
    """What ``miaudit datasets`` shows: records and classes as published, where it was found or why not."""

    name: str
    description: str
    records: int
    classes: int
    available: bool
    location: str


@dataclass(frozen=True)
class _Entry:
    description: str
    records: int
    classes: int
    load: Callable[[DataDir], Dataset]
    locate: Callable[[DataDir], str]


def _sklearn(name: str, description: str, records: int, classes: int) -> _Entry:
    return _Entry(description, records, classes, lambda _: load_sklearn_dataset(name),
                  lambda _: "bundled with scikit-learn")


def _images(name: str, description: str, records: int, classes: int) -> _Entry:
    spec = IMAGE_SETS[name]
    return _Entry(description, records, classes, lambda d: load_image_set(spec, d),
                  lambda d: str(locate_image_set(spec, d)))


_REGISTRY: dict[str, _Entry] = {
    "digits": _sklearn("digits", "8x8 handwritten digits (scikit-learn, the embedded default)", 1797, 10),
    "breast-cancer": _sklearn("breast-cancer", "Wisconsin breast cancer, 30 features (scikit-learn)", 569, 2),
    "wine": _sklearn("wine", "wine cultivars, 13 features (scikit-learn)", 178, 3),
    "iris": _sklearn("iris", "iris flowers, 4 features (scikit-learn)", 150, 3),
    "mnist": _images("mnist", "MNIST handwritten digits 28x28, train+test", 70_000, 10),
    "fashion-mnist": _images("fashion-mnist", "Fashion-MNIST clothing 28x28, train+test", 70_000, 10),
    "emnist-digits": _images("emnist-digits", "EMNIST digits 28x28, train+test", 280_000, 10),
    "emnist-letters": _images("emnist-letters", "EMNIST letters 28x28, train+test", 145_600, 26),
    "location": _Entry("Foursquare check-ins in Bangkok, 446 binary features (Shokri et al. 2017)",
                       5010, 30, load_location, lambda d: str(locate_location(d))),
}
DATASET_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def load_dataset(name_or_path: str | Path, data_dir: DataDir = None, label_column: str = "label") -> Dataset:
    """A dataset by canonical name (DATASET_NAMES) or a path to a .csv / .parquet / .npz file.

    data_dir: searched first for the image and Location files (then MIAUDIT_DATA, ../shared/data, ...);
    when given it must be an existing directory, whatever the dataset.
    label_column: the label column of a CSV / Parquet file; for an NPZ file, the label array's name
    when set to anything other than "label" (default array names ``x`` and ``y``).
    """
    check_data_dir(data_dir)
    text = str(name_or_path)
    path = Path(text).expanduser()
    if not path.is_file() and _canonical(text) in _REGISTRY:
        return _REGISTRY[_canonical(text)].load(data_dir)
    if path.is_file() or path.suffix.lower() in FILE_TYPES:
        if path.suffix.lower() == ".npz" and label_column != "label":
            return load_table_file(path, y_key=label_column)
        return load_table_file(path, label_column=label_column)
    raise InputError(f"--dataset: unknown dataset {text!r} (known: {', '.join(DATASET_NAMES)}; "
                     f"or a path to a {' / '.join(FILE_TYPES)} file)")


def list_datasets(data_dir: DataDir = None) -> list[DatasetInfo]:
    """Every named dataset, whether its files are on this machine and where (or why not). Reads no data."""
    check_data_dir(data_dir)
    infos = []
    for name, entry in _REGISTRY.items():
        try:
            location, available = entry.locate(data_dir), True
        except InputError as err:
            location, available = str(err), False
        infos.append(DatasetInfo(name, entry.description, entry.records, entry.classes, available, location))
    return infos
