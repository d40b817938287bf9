"""A model file's contract with the data: input shape, output shape, and output kind.

Checked once at load on probe records, so that a mismatch is a one-line error naming it rather
than a failure deep inside an attack. Output kinds: "logits" (any real scores whose softmax is the
prediction, log-probabilities included) or "probabilities" (rows non-negative, summing to 1),
which become log-probabilities, floored at 1e-12 like scikit-learn targets'.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

import numpy as np

from miaudit.errors import InputError

OUTPUT_KINDS = ("auto", "logits", "probabilities")
PROBABILITY_TOLERANCE = 1e-3
PROBABILITY_FLOOR = 1e-12
Dim = int | str | None
# metadata_props of an ONNX file that say one record's shape ("1,28,28") and the class count ("10")
FEATURE_SHAPE_KEY, N_CLASSES_KEY = "miaudit.feature_shape", "miaudit.n_classes"


def one_line(err: BaseException, limit: int = 240) -> str:
    """The first line of an exception's message, at most ``limit`` characters."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_output_option(output: str) -> str:
    if output not in OUTPUT_KINDS:
        raise InputError(f"output: {output!r} is not one of {', '.join(OUTPUT_KINDS)}")
    return output


def probe_records(feature_shape: Sequence[int], n: int = 8) -> np.ndarray:
    """float32 [n, *feature_shape]: a record of zeros, then seeded standard-normal records."""
    x = np.random.default_rng(0).standard_normal((n, *feature_shape)).astype(np.float32)
    x[0] = 0.0
    return x


def _shape_text(dims: Sequence[Dim]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else "?" for d in dims) + ")"


def match_input_shape(declared: Sequence[Dim], feature_shape: Sequence[int], field: str) -> tuple[bool, int | None]:
    """(flatten records?, fixed batch size or None) for a model input declared as ``declared``
    ([batch, *record dims]; str or None = any size) fed records of ``feature_shape``.

    Records are fed as they are when every declared record dim matches, flattened to [n, d] when the
    input is [batch, d] with d their number of values; anything else is an InputError.
    """
    feature_shape, record = tuple(int(d) for d in feature_shape), tuple(declared[1:])
    fixed_batch = declared[0] if declared and isinstance(declared[0], int) and declared[0] > 0 else None

    def fits(dims: Sequence[Dim], shape: Sequence[int]) -> bool:
        return len(dims) == len(shape) and all(not isinstance(d, int) or d == s for d, s in zip(dims, shape))

    if fits(record, feature_shape):
        return False, fixed_batch
    if len(feature_shape) > 1 and fits(record, (prod(feature_shape),)):
        return True, fixed_batch
    if len(record) == 1 and len(feature_shape) == 1:
        raise InputError(f"{field} takes {record[0]} features, the data has {feature_shape[0]}")
    raise InputError(f"{field} takes records of shape {_shape_text(record)}, the data has {_shape_text(feature_shape)}")


def check_output_shape(values: np.ndarray, n_rows: int, n_classes: int, field: str) -> np.ndarray:
    """values as float64 [n_rows, n_classes]; InputError naming the mismatch (or non-finite values)."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] != n_rows:
        raise InputError(f"{field} has shape {tuple(values.shape)} for {n_rows} records, expected [n, classes]")
    if values.shape[1] != n_classes:
        raise InputError(f"{field} gives {values.shape[1]} classes, the data has {n_classes}")
    if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
        raise InputError(f"{field} gives NaN, inf or non-numeric values")
    return values.astype(np.float64)


def _index_text(index: np.ndarray) -> str:
    items = [int(i) for i in index]
    return str(items[0]) if len(items) == 1 else "(" + ", ".join(map(str, items)) + ")"


def probability_problem(values: np.ndarray) -> str | None:
    """Why rows of values [..., C] are not probability vectors (within 1e-3), or None if they are."""
    values = np.asarray(values, np.float64)
    negative = np.argwhere((values < -PROBABILITY_TOLERANCE).any(axis=-1))
    if len(negative):
        return f"negative values, first in record {_index_text(negative[0])}"
    sums = values.sum(axis=-1)
    off = np.argwhere(np.abs(sums - 1) > PROBABILITY_TOLERANCE)
    if len(off):
        return f"record {_index_text(off[0])} sums to {sums[tuple(off[0])]:.4g}, not 1"
    return None


def resolve_output(values: np.ndarray, output: str, field: str) -> str:
    """"logits" or "probabilities" for probe outputs values [n, C]: as given, or, for "auto",
    probabilities when every row is non-negative and sums to 1. InputError when "probabilities" is
    claimed for values that are not."""
    check_output_option(output)
    problem = probability_problem(values)
    if output == "auto":
        return "logits" if problem else "probabilities"
    if output == "probabilities" and problem:
        raise InputError(f"{field} is not probabilities ({problem}); pass output='logits' (or auto)")
    return output


def as_logits(values: np.ndarray, kind: str) -> np.ndarray:
    """float32 [..., C] logits: values themselves, or the log of probabilities floored at 1e-12."""
    if kind == "probabilities":
        return np.log(np.clip(np.asarray(values, np.float64), PROBABILITY_FLOOR, None)).astype(np.float32)
    return np.asarray(values, np.float32)


def run_batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int = 4096,
                fixed_batch: int | None = None) -> np.ndarray:
    """fn over x [n, ...] in chunks, outputs concatenated along axis 0. With fixed_batch (a model
    that only takes batches of that size) each chunk has exactly that many rows, the last one padded
    with zero records and its outputs trimmed."""
    size = fixed_batch or batch_size
    parts = []
    for start in range(0, max(len(x), 1), size):
        chunk = x[start:start + size]
        if fixed_batch and len(chunk) < fixed_batch:
            pad = np.zeros((fixed_batch - len(chunk), *x.shape[1:]), x.dtype)
            parts.append(np.asarray(fn(np.concatenate([chunk, pad])))[: len(chunk)])
        else:
            parts.append(np.asarray(fn(chunk)))
    return np.concatenate(parts)
