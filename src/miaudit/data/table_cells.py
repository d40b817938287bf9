"""Cells of a user's table: missing values, numbers written as text, labels, and how errors show values.

Rows are counted from 0 in messages (the frame's positions; a CSV's header line not counted).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from miaudit.errors import InputError

DEFAULT_NA_VALUES: tuple[str, ...] = ("", "?", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null")


def shown(value) -> str:
    """A value as an error message shows it: text quoted, numbers plain (numpy scalars as python ones)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def named_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(the frame with str column names, the names); InputError on a duplicate name."""
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"table: a pandas DataFrame expected, got {type(frame).__name__}")
    names = [str(c) for c in frame.columns]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{name}: duplicate column name")
        seen.add(name)
    return frame.set_axis(names, axis=1), names


def cell_values(column: pd.Series, na_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values [n], missing bool [n]): float64 for a numeric dtype (bool -> 0/1), else object holding
    stripped str; missing = None / NaN or a value equal to one of na_tokens."""
    missing = column.isna().to_numpy()
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(np.float64, na_value=np.nan)
        return values, missing | np.isin(values, _numeric_tokens(tuple(na_tokens)))
    values = np.full(len(column), np.nan, dtype=object)
    values[~missing] = column[~missing].astype(str).str.strip().to_numpy(object)
    missing = missing | np.isin(values, np.asarray(na_tokens, dtype=object))
    values[missing] = np.nan
    return values, missing


@lru_cache(maxsize=8)
def _numeric_tokens(na_tokens: tuple[str, ...]) -> np.ndarray:
    """The missing-value texts that are numbers, as float64 (e.g. "-999")."""
    return pd.to_numeric(pd.Series(list(na_tokens), dtype=object), errors="coerce").dropna().to_numpy(np.float64)


def as_numbers(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """float64 [n] (NaN where missing or not a number)."""
    if values.dtype == np.float64:
        return np.where(missing, np.nan, values)
    return pd.to_numeric(pd.Series(np.where(missing, None, values), dtype=object), errors="coerce").to_numpy(
        np.float64)


def all_numbers(values: np.ndarray, missing: np.ndarray) -> bool:
    """Whether values has a present value and every present one is a number (or numeric text)."""
    if values.dtype == np.float64:
        return bool((~missing).any())
    present = values[~missing]
    for sample in (present[:100], present):  # text columns rarely pass the first 100 values
        if not sample.size or np.isnan(as_numbers(sample, np.zeros(len(sample), bool))).any():
            return False
    return True


def feature_kind(values: np.ndarray, missing: np.ndarray) -> str:
    return "numeric" if values.dtype == np.float64 or all_numbers(values, missing) else "categorical"


def finite_numbers(values: np.ndarray, missing: np.ndarray, name: str, rows: np.ndarray) -> np.ndarray:
    """The present values of a numeric column as float64 (NaN where missing); InputError naming the
    row (``rows`` = frame positions) of a value that is not a finite number."""
    numbers = as_numbers(values, missing)
    bad = np.flatnonzero(~missing & ~np.isfinite(numbers))
    if bad.size:
        raise InputError(f"{name}: value {shown(values[bad[0]])} in row {rows[bad[0]]} is not a finite number")
    huge = np.flatnonzero(~missing & (np.abs(np.nan_to_num(numbers)) > np.finfo(np.float32).max))
    if huge.size:
        raise InputError(f"{name}: value {shown(values[huge[0]])} in row {rows[huge[0]]} is beyond float32's range")
    return numbers


def number_text(values: np.ndarray) -> np.ndarray:
    """Numbers as category text: whole numbers without a decimal point, NaN kept."""
    out = np.full(len(values), np.nan, dtype=object)
    for i, v in enumerate(values):
        if np.isfinite(v):
            out[i] = str(int(v)) if v == int(v) else repr(float(v))
    return out


def label_kind(column: pd.Series, values: np.ndarray, missing: np.ndarray, classes) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if classes is not None and len(classes) and all(isinstance(c, str) for c in classes):
        return "text"
    return "integer" if all_numbers(values, missing) else "text"


def label_values(values: np.ndarray, kind: str, name: str, rows: np.ndarray) -> np.ndarray:
    """Present labels [n] as python values of ``kind`` (int / str / bool); InputError naming the row of
    a number that is not an integer (or, for integer classes, of text that is not a number)."""
    if kind == "text":
        if values.dtype == np.float64:
            return number_text(values)
        return values.astype(object)
    numbers = as_numbers(values, np.zeros(len(values), bool))
    bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
    if bad.size:
        raise InputError(f"{name}: value {shown(values[bad[0]])} in row {rows[bad[0]]} is not a class")
    if kind == "bool":
        return np.array([bool(v) for v in numbers], dtype=object)
    return np.array([int(v) for v in numbers], dtype=object)
