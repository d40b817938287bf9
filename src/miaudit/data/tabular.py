"""Tabular datasets: Location (Shokri et al. 2017) and the user's own CSV / Parquet / NPZ files.

User files: CSV and Parquet hold one label column (default "label") and numeric feature columns;
NPZ holds arrays ``x`` [n, ...] and ``y`` [n]. String labels map to their sorted unique values
0..C-1 (class names = the originals); integer labels must be >= 0 and C = max + 1.
"""
from __future__ import annotations

import io
import tarfile
import warnings
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from miaudit.data.datadir import find_dataset_dir
from miaudit.data.dataset import Dataset
from miaudit.errors import InputError

LOCATION_FOLDER = "location"
LOCATION_ARCHIVE = "dataset_location.tgz"
LOCATION_MEMBER = "bangkok"
LOCATION_CLASSES = 30
FILE_TYPES = (".csv", ".parquet", ".npz")


def locate_location(data_dir: str | Path | None = None) -> Path:
    """The Location archive's path; InputError when no data directory has it."""
    found = find_dataset_dir(LOCATION_FOLDER, [LOCATION_ARCHIVE], data_dir, dataset="location")
    return found / LOCATION_FOLDER / LOCATION_ARCHIVE


def load_location(data_dir: str | Path | None = None) -> Dataset:
    """Location: x float32 [5010, 446] binary features, y int64 [5010] in 0..29 (stored labels 1..30)."""
    archive = locate_location(data_dir)
    stat = archive.stat()
    x, y = _read_location(str(archive), stat.st_size, stat.st_mtime_ns)
    return Dataset("location", x, y, LOCATION_CLASSES, tuple(str(c) for c in range(1, LOCATION_CLASSES + 1)))


@lru_cache(maxsize=2)
def _read_location(archive: str, size: int, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Untar the CSV in memory: (features float32 [n, d], labels int64 [n] in 0..29), read-only."""
    import pandas as pd

    try:
        with tarfile.open(archive, "r:*") as tar:
            files = [m for m in tar.getmembers() if m.isfile()]
            member = next((m for m in files if Path(m.name).name == LOCATION_MEMBER), None)
            if member is None and len(files) == 1:
                member = files[0]
            if member is None:
                raise InputError(f"{archive}: no file named {LOCATION_MEMBER!r} in the archive")
            text = tar.extractfile(member).read()  # type: ignore[union-attr]
        table = pd.read_csv(io.BytesIO(text), header=None)
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{archive}: corrupt Location archive ({err})") from None
    if table.shape[1] < 2 or not all(pd.api.types.is_numeric_dtype(t) for t in table.dtypes):
        raise InputError(f"{archive}: expected numeric rows 'label,f1,...,fd'")
    labels = table.iloc[:, 0].to_numpy()
    if not np.all((labels >= 1) & (labels <= LOCATION_CLASSES) & (labels == np.round(labels))):
        raise InputError(f"{archive}: Location labels must be integers 1..{LOCATION_CLASSES}")
    x = table.iloc[:, 1:].to_numpy(np.float32)
    y = labels.astype(np.int64) - 1
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_table_file(path: str | Path, label_column: str = "label", x_key: str = "x",
                    y_key: str = "y") -> Dataset:
    """A user file (.csv, .parquet, .npz) as a Dataset named after the file.

    CSV / Parquet: ``label_column`` holds labels, every other column is a numeric feature -> x float32
    [n, d]. NPZ: arrays ``x_key`` (float [n, d], or images [n, c, h, w]; [n, h, w] gains a channel
    axis; uint8 images are divided by 255) and ``y_key`` [n].
    """
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise InputError(f"{source}: unknown file type {suffix or '(none)'!r} (use {', '.join(FILE_TYPES)})")
    if not path.is_file():
        raise InputError(f"{source}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{source}: empty file")
    if suffix == ".npz":
        x, labels = _read_npz(path, source, x_key, y_key)
    else:
        x, labels = _read_frame(path, source, suffix, label_column)
    y, class_names = encode_labels(labels, source)
    return Dataset(path.name, x, y, len(class_names), class_names)


def encode_labels(labels: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """int64 labels [n] in 0..C-1 and C class names from raw labels [n] (strings, ints, whole floats)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"{source}: labels must be one value per record, found shape {labels.shape}")
    kind = labels.dtype.kind
    if kind in "OUS":
        missing = [i for i, v in enumerate(labels) if v is None or (isinstance(v, float) and np.isnan(v))]
        if missing:
            raise InputError(f"{source}: missing label in record {missing[0]}")
        names, y = np.unique(labels.astype(str), return_inverse=True)
        return y.astype(np.int64), tuple(str(n) for n in names)
    if kind == "b":
        return labels.astype(np.int64), ("False", "True")
    if kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad.size:
            raise InputError(f"{source}: labels must be integers or strings, record {bad[0]} "
                             f"has label {labels[bad[0]]}")
    elif kind not in "iu":
        raise InputError(f"{source}: unsupported label type {labels.dtype}")
    y = labels.astype(np.int64)
    if y.min() < 0:
        raise InputError(f"{source}: integer labels must be >= 0, record {int(np.argmin(y))} has label {y.min()}")
    return y, tuple(str(c) for c in range(int(y.max()) + 1))


def _read_frame(path: Path, source: str, suffix: str, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [n, d], raw labels [n]) from a CSV or Parquet table."""
    import pandas as pd

    try:
        if suffix == ".csv":
            with warnings.catch_warnings():  # mixed-type columns: rejected below as non-numeric
                warnings.simplefilter("ignore")
                header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
                _reject_duplicates([str(c) for c in header.iloc[0] if str(c)] if len(header) else [], source)
                table = pd.read_csv(path)
        else:
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise InputError(f"{source}: reading Parquet needs pyarrow: pip install pyarrow") from None
            table = pd.read_parquet(path, engine="pyarrow")
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(f"{source}: empty file") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InputError(f"{source}: cannot read {suffix[1:]} file ({str(err).splitlines()[0]})") from None
    columns = [str(c) for c in table.columns]
    _reject_duplicates(columns, source)
    table.columns = columns
    if label_column not in columns:
        raise InputError(f"{source}: label column {label_column!r} not found (columns: {', '.join(columns)})")
    if len(table) == 0:
        raise InputError(f"{source}: no records")
    features = [c for c in columns if c != label_column]
    if not features:
        raise InputError(f"{source}: no feature columns besides the label column {label_column!r}")
    text = [c for c in features if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        raise InputError(f"{source}: feature columns must be numeric, not: {', '.join(text)}")
    x = _as_float32(table[features].to_numpy(np.float64, na_value=np.nan), source, features)
    return x, _label_values(table[label_column], source)


def _reject_duplicates(columns: list[str], source: str) -> None:
    """InputError naming the first column name that appears twice (pandas would rename it 'a.1')."""
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise InputError(f"{source}: column {name!r} appears more than once; give every column its own name")
        seen.add(name)


def _as_float32(x: np.ndarray, source: str, columns: list[str] | None) -> np.ndarray:
    """x [n, ...] as float32 after checking every value is finite and within float32's range."""
    flat = x.reshape(len(x), -1)
    _check_finite(flat, source, columns)
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        too_big = np.argwhere(np.abs(flat) > np.finfo(np.float32).max)
        if too_big.size:
            row, col = (int(v) for v in too_big[0])
            feature = repr(columns[col]) if columns else str(col)
            raise InputError(f"{source}: value {flat[row, col]:.3g} in feature {feature} of record {row} is "
                             f"beyond float32's range (±3.4e38)")
    return x.astype(np.float32)


def _label_values(column, source: str) -> np.ndarray:
    """A pandas label column as a numpy array (bool, int64, float64 or str) with no missing values."""
    import pandas as pd

    if column.isna().any():
        raise InputError(f"{source}: missing label in record {int(np.flatnonzero(column.isna())[0])}")
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(bool)
    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(np.int64)
    if pd.api.types.is_float_dtype(column):
        return column.to_numpy(np.float64)
    return column.astype(str).to_numpy(str)


def _read_npz(path: Path, source: str, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [n, ...], raw labels [n]) from an NPZ archive."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            for key in (x_key, y_key):
                if key not in names:
                    raise InputError(f"{source}: array {key!r} not found (arrays: {', '.join(names) or 'none'})")
            x, labels = archive[x_key], archive[y_key]
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise InputError(f"{source}: cannot read npz file ({err})") from None
    if x.dtype.kind not in "biuf":
        raise InputError(f"{source}: array {x_key!r} must be numeric, found {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise InputError(f"{source}: array {x_key!r} must be [n, features] or images [n, c, h, w], "
                         f"found shape {x.shape}")
    if len(x) == 0:
        raise InputError(f"{source}: no records")
    if len(x) != len(labels):
        raise InputError(f"{source}: {len(x)} records in {x_key!r} but {len(labels)} labels in {y_key!r}")
    scale = 255 if (x.ndim == 4 and x.dtype == np.uint8) else 1
    x = _as_float32(x, source, None)
    if scale != 1:
        x /= np.float32(scale)
    return x, labels


def _check_finite(x: np.ndarray, source: str, columns: list[str] | None) -> None:
    """InputError naming the first NaN/inf value of x [n, d] (its record and feature)."""
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        feature = repr(columns[col]) if columns else str(col)
        raise InputError(f"{source}: NaN or inf in feature {feature} of record {row} (missing or infinite value)")
