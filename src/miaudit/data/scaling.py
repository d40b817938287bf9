"""Input standardization: the preprocessing every model of an audit sees (x - mean) / std.

Statistics come from the audited (target's) dataset and the same transform is applied to every
record any model sees: target, reference and shadow models, population, out-of-domain records.
That mirrors a trainer's ``Normalize(mean, std)`` step, which is part of the model under audit.
Images get one mean / std per channel (over records and pixels); tabular data one per feature.
Constant features keep a scale of 1 (they are only shifted).

Scalings: "standard" standardizes everything; "auto" (the audit default) does the same except that
tabular features taking only the values 0 and 1 stay as they are (indicator features such as
Location's are fed raw by the trainers that use them; standardizing a rare indicator turns it into
a value of ~10 and changes the model: Location's MLP falls from 0.59 to 0.52 test accuracy);
"none" is the identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.errors import InputError

InputScaling = Literal["auto", "standard", "none"]
SCALINGS: tuple[str, ...] = get_args(InputScaling)
_CHUNK = 1 << 20
_NEAR_FLOAT32_MAX = 1e37  # x - mean may overflow float32 beyond this: transform in float64


@dataclass(frozen=True)
class InputScaler:
    """x -> (x - mean) / scale; mean and scale are float32, broadcastable to one record's shape."""

    mean: np.ndarray
    scale: np.ndarray

    @property
    def is_identity(self) -> bool:
        return not self.mean.any() and bool((self.scale == 1).all())

    def transform(self, x: np.ndarray, in_place: bool = False) -> np.ndarray:
        """float32 [n, *feature_shape]: a new array, or x itself overwritten when in_place (x must
        then be a writeable float32 array)."""
        if x.size and max(abs(float(np.min(x))), abs(float(np.max(x)))) > _NEAR_FLOAT32_MAX:
            exact = ((np.asarray(x, np.float64) - self.mean) / self.scale).astype(np.float32)
            if in_place:
                x[...] = exact
                return x
            return exact
        out = np.subtract(x, self.mean, out=x if in_place else None, dtype=np.float32)
        out *= np.float32(1.0) / self.scale
        return out

    def inverse_transform(self, x: np.ndarray, grid: list[np.ndarray | None] | None = None) -> np.ndarray:
        """float32 [n, *feature_shape]: the records before ``transform`` (x * scale + mean), to float32
        rounding; x itself for the identity. With ``grid`` (``value_grid`` of the raw records), values
        within rounding of a raw value of their feature become that value exactly, so category codes,
        counts and pixel levels come back as they were."""
        if self.is_identity:
            return np.asarray(x, np.float32)
        out = (np.asarray(x, np.float32) * self.scale + self.mean).astype(np.float32, copy=False)
        return out if grid is None else snap_to_grid(out, grid)

    def apply(self, ds: Dataset, in_place: bool = False) -> Dataset:
        """The dataset with transformed features (labels and names unchanged); ds itself if identity.
        in_place: overwrite ds.x when it is a writeable float32 array that owns its memory (a freshly
        loaded dataset: 70,000 images need no second 220 MB copy)."""
        if self.is_identity:
            return ds
        own = in_place and ds.x.dtype == np.float32 and ds.x.flags.writeable and ds.x.flags.owndata
        return Dataset(ds.name, self.transform(ds.x, in_place=own), ds.y, ds.n_classes, ds.class_names)


def compose(first: InputScaler, then: InputScaler) -> InputScaler:
    """One scaler for ``then.transform(first.transform(x))``: mean m1 + m2 * s1, scale s1 * s2
    (equal to float32 rounding; used to map scaled records back to a dataset's published units)."""
    mean = np.asarray(first.mean, np.float64) + np.asarray(then.mean, np.float64) * first.scale
    scale = np.asarray(first.scale, np.float64) * then.scale
    return InputScaler(mean.astype(np.float32), scale.astype(np.float32))


def value_grid(x: np.ndarray, max_values: int = 4096) -> list[np.ndarray | None]:
    """Per tabular feature (x [n, d]) or image channel (x [n, c, h, w]) its sorted distinct values,
    or None where there are more than ``max_values`` (a continuous feature)."""
    x = np.asarray(x, np.float32)
    columns = x.reshape(len(x), -1).T if x.ndim == 2 else np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    grid = []
    for values in columns:
        distinct = np.unique(values)
        grid.append(distinct if distinct.size <= max_values else None)
    return grid


def snap_to_grid(x: np.ndarray, grid: list[np.ndarray | None], tolerance: float = 1e-4) -> np.ndarray:
    """x with every value within ``tolerance`` (relative, at least absolute) of its feature's nearest
    grid value replaced by that value; x [n, d] or [n, c, h, w] as in ``value_grid``."""
    x = np.array(x, np.float32)
    for j, values in enumerate(grid):
        if values is None:
            continue
        column = x[:, j]
        flat = column.ravel()
        right = np.clip(np.searchsorted(values, flat), 1, max(1, values.size - 1)) if values.size > 1 else \
            np.zeros(flat.size, np.int64)
        left = np.maximum(right - 1, 0)
        nearest = np.where(np.abs(values[left] - flat) <= np.abs(values[right] - flat), values[left], values[right])
        close = np.abs(nearest - flat) <= tolerance * np.maximum(1.0, np.abs(flat))
        x[:, j] = np.where(close, nearest, flat).reshape(column.shape)
    return x


def fit_scaler(x: np.ndarray, scaling: str = "auto") -> InputScaler:
    """The scaler for features x float32 [n, *feature_shape]: [n, C, H, W] images are scaled per
    channel, anything else per feature ("auto": 0/1 features unscaled). "none" gives the identity."""
    if scaling not in SCALINGS:
        raise InputError(f"input_scaling: {scaling!r} is not one of {', '.join(SCALINGS)}")
    x = np.asarray(x, np.float32)
    record_shape = x.shape[1:]
    if scaling == "none":
        return InputScaler(np.zeros(record_shape, np.float32), np.ones(record_shape, np.float32))
    if x.ndim == 4:  # per channel: a float64 mean, then the variance as BLAS dot products of 1M-value
        means, stds = [], []  # chunks summed in float64 (numpy's float64 std is ~3x slower)
        for c in range(x.shape[1]):
            values = np.ascontiguousarray(x[:, c]).ravel()
            mean = float(values.mean(dtype=np.float64))
            square_sum = 0.0
            with np.errstate(over="ignore"):
                for start in range(0, len(values), _CHUNK):
                    centred = values[start:start + _CHUNK] - np.float32(mean)
                    square_sum += float(np.dot(centred, centred))
            if not np.isfinite(square_sum):  # values near float32's limit: square them in float64
                square_sum = float(np.square(values.astype(np.float64) - mean).sum())
            means.append(mean)
            stds.append(float(np.sqrt(square_sum / len(values))))
        mean, std = np.array(means)[:, None, None], np.array(stds)[:, None, None]
    else:
        mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        if scaling == "auto":
            binary = ((x == 0) | (x == 1)).all(axis=0)
            mean, std = np.where(binary, 0.0, mean), np.where(binary, 1.0, std)
    scale = np.where(std > 1e-12, std, 1.0)
    return InputScaler(mean.astype(np.float32), scale.astype(np.float32))
