"""Encoding of a user's table (pandas DataFrame) into features x float32 [n, d] and labels y int64 [n].

Fitted once on the audited table (``fit_encoding``), then applied unchanged to every record set
(``encode``: target, reference, population records); ``TableEncoding`` is JSON round-trippable, so
results.json can hold it and a repeated audit encodes the same way.

- Column kinds: numeric dtypes, and text whose every present value (whitespace stripped) parses as a
  number, are numeric; every other column is categorical (values stripped of whitespace).
- Which columns are features: every column but the label / member / id columns, less those named in
  ``drop`` and those the default screening leaves out (ids, names, free text, empty columns; dates
  become numbers: days since 1970-01-01), unless named in ``keep``; see data/column_screen.py. The
  encoded width is checked against ``max_features`` before anything is encoded.
- Categorical columns: one-hot (default; one 0/1 column per category, categories sorted) or
  ordinal (one column of codes 0..k-1 in sorted order). A category unseen at fit time is, with
  ``unknown="ignore"`` (default), an all-zero one-hot block or ordinal code -1; with
  ``unknown="error"`` an InputError naming column, row and value.
- Numeric columns: left as they are by default (``scale_numeric=False``) because data/scaling.py
  standardizes every record set with the audited dataset's statistics (``--input-scaling``; "auto"
  leaves 0/1 columns, hence one-hot blocks, raw). ``scale_numeric=True`` standardizes them here
  (population std, 1 for constants) for callers that skip data/scaling.py; means / stds are
  recorded either way.
- Missing values: None / NaN, and any text equal (after stripping) to one of ``na_values``.
  ``missing="drop"`` drops rows with a missing feature; ``"impute"`` fills the fitted median
  (numeric) or most frequent value (categorical). A row with a missing label is always dropped.
  Counts are in ``EncodingReport``; an error for "every row has a missing value" names the columns
  missing most often.
- Labels: stripped; integer-valued numbers (ints, whole floats, numeric text) or text; mapped to
  0..C-1 in sorted order (or the order of an explicit ``classes`` list). A number that is not an
  integer is an InputError.
Rows are counted from 0 in messages (the frame's positions; a CSV's header line not counted).
Parsing of cells (missing values, numeric text, labels): data/table_cells.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, model_validator
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from miaudit.data.column_screen import MAX_FEATURES, check_names, check_width, date_days, screen_columns
from miaudit.data.encoding_report import EncodingReport, all_rows_missing
from miaudit.data.table_cells import (
    DEFAULT_NA_VALUES,
    as_numbers,
    cell_values,
    feature_kind,
    finite_numbers,
    label_kind,
    label_values,
    named_columns,
    number_text,
    shown,
)
from miaudit.errors import InputError

CATEGORICAL = ("onehot", "ordinal")
MISSING = ("drop", "impute")
UNKNOWN = ("ignore", "error")
NEAR_UNIQUE = 0.5  # a categorical column with more categories than this fraction of rows gets a note
MOSTLY_MISSING = 0.5  # a column missing in more than this fraction of labelled rows gets a note (missing="drop")


class ColumnEncoding(BaseModel):
    """One feature column: numeric (mean, std), date (a number: days since 1970-01-01; mean, std) or
    categorical (sorted categories); ``fill`` is the imputed value (missing="impute") or None."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["numeric", "categorical", "date"]
    categories: tuple[str, ...] = ()
    mean: float | None = None
    std: float | None = None
    fill: float | str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnEncoding:
        if self.kind == "categorical":
            if not self.categories or list(self.categories) != sorted(set(self.categories)):
                raise ValueError(f"column {self.name!r}: categories must be unique, sorted and not empty")
        elif self.mean is None or self.std is None or not self.std > 0:
            raise ValueError(f"column {self.name!r}: a numeric column needs a mean and a std > 0")
        return self


class TableEncoding(BaseModel):
    """How a table becomes (x, y): feature columns in output order, label classes (index = class id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: tuple[ColumnEncoding, ...]
    label_column: str
    label_kind: Literal["integer", "text", "bool"]
    classes: tuple[StrictBool | StrictInt | StrictStr, ...]
    categorical: Literal["onehot", "ordinal"] = "onehot"
    unknown: Literal["ignore", "error"] = "ignore"
    missing: Literal["drop", "impute"] = "drop"
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    scale_numeric: bool = False
    member_column: str | None = None
    id_column: str | None = None
    dropped: tuple[str, ...] = ()  # columns of the table that are not features (--drop, the screening)

    @model_validator(mode="after")
    def _consistent(self) -> TableEncoding:
        names = [c.name for c in self.columns]
        if not names or len(set(names)) != len(names):
            raise ValueError("columns: feature column names must be unique and not empty")
        python_type = {"integer": int, "text": str, "bool": bool}[self.label_kind]
        if not self.classes or len(set(self.classes)) != len(self.classes) or \
                any(type(c) is not python_type for c in self.classes):
            raise ValueError(f"classes: unique {self.label_kind} values expected")
        if any((c.fill is None) != (self.missing == "drop") for c in self.columns):
            raise ValueError("columns: a fill value belongs to every column with missing='impute', none with 'drop'")
        return self

    @property
    def label_mapping(self) -> dict:
        """Original label value -> class id 0..C-1."""
        return {value: i for i, value in enumerate(self.classes)}

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.classes)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """One name per output column: "age", "workclass=Private" (one-hot), "workclass" (ordinal)."""
        names: list[str] = []
        for col in self.columns:
            if col.kind == "categorical" and self.categorical == "onehot":
                names.extend(f"{col.name}={c}" for c in col.categories)
            else:
                names.append(col.name)
        return tuple(names)

    @property
    def width(self) -> int:
        return len(self.feature_names)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> TableEncoding:
        return cls.model_validate_json(text)


def fit_encoding(frame: pd.DataFrame, label_column: str = "label", *,
                 categorical: str = "onehot", na_values: Sequence[str] = DEFAULT_NA_VALUES,
                 missing: str = "drop", unknown: str = "ignore", scale_numeric: bool = False,
                 member_column: str | None = None, id_column: str | None = None,
                 classes: Sequence[bool | int | str] | None = None, drop: Sequence[str] = (),
                 keep: Sequence[str] = (), max_features: int = MAX_FEATURES) -> tuple[TableEncoding, EncodingReport]:
    """The encoding of ``frame`` (every column but the label, member and id columns, less ``drop`` and
    the screened ones not in ``keep``, is a feature) and a report of what it found.
    classes: the label values in class-id order (default: sorted)."""
    for name, value, allowed in (("categorical", categorical, CATEGORICAL), ("missing", missing, MISSING),
                                 ("unknown", unknown, UNKNOWN)):
        if value not in allowed:
            raise InputError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    na_tokens = tuple(str(v).strip() for v in na_values)
    frame, names = named_columns(frame)
    for flag, column in (("label column", label_column), ("member column", member_column),
                         ("id column", id_column)):
        if column is not None and column not in names:
            raise InputError(f"{flag}: {column!r} not found (columns: {', '.join(names)})")
    special = {label_column, member_column, id_column} - {None}
    check_names(names, drop, "--drop", sorted(special))
    check_names(names, keep, "--keep", sorted(special))
    candidates = [c for c in names if c not in special and c not in set(drop)]
    if not candidates:
        raise InputError(f"{label_column}: no feature columns besides the label, member and id columns"
                         + (" and --drop" if drop else ""))
    if len(candidates) > max_features:  # every column is at least one feature: refuse before reading cells
        raise InputError(f"table: {len(candidates)} feature columns, more than --max-features {max_features}; "
                         "leave columns out with --drop, or raise --max-features")
    if len(frame) == 0:
        raise InputError("table: no rows")

    label_cells, label_missing = cell_values(frame[label_column], na_tokens)
    kind = label_kind(frame[label_column], label_cells, label_missing, classes)
    parsed = {c: cell_values(frame[c], na_tokens) for c in candidates}
    kinds = {c: feature_kind(*parsed[c]) for c in candidates}
    screen = screen_columns(parsed, kinds, ~label_missing, drop, keep)
    for name in screen.dates:
        parsed[name], kinds[name] = _as_dates(*parsed[name]), "date"
    features = [c for c in candidates if c not in screen.dropped]
    if not features:
        raise InputError(f"{label_column}: no feature columns left ({len(screen.dropped)} left out: "
                         f"{', '.join(screen.dropped)}); keep one with --keep")
    check_width(parsed, kinds, features, ~label_missing, categorical, max_features)
    feature_missing = np.column_stack([parsed[c][1] for c in features])
    drop_feature = feature_missing.any(axis=1) & ~label_missing if missing == "drop" else np.zeros(len(frame), bool)
    keep_rows = ~label_missing & ~drop_feature
    rows = np.flatnonzero(keep_rows)
    if not rows.size:
        raise InputError(all_rows_missing(label_column, label_missing, features, feature_missing, na_tokens))
    kept_labels = label_values(label_cells[keep_rows], kind, label_column, rows)
    for name in features:
        if kinds[name] == "numeric":
            finite_numbers(parsed[name][0][keep_rows], parsed[name][1][keep_rows], name, rows)
    class_list = _classes(kept_labels, classes, kind, label_column)
    clean = _clean_frame({c: parsed[c] for c in features}, kinds, keep_rows)
    fitted = _fit_columns(clean, kinds, missing)

    encoding = TableEncoding(columns=tuple(fitted), label_column=label_column, label_kind=kind,
                             classes=tuple(class_list), categorical=categorical, unknown=unknown, missing=missing,
                             na_values=na_tokens, scale_numeric=scale_numeric, member_column=member_column,
                             id_column=id_column, dropped=tuple(screen.dropped))
    labelled = ~label_missing
    missing_values = {c: int((parsed[c][1] & labelled).sum()) for c in features}
    notes = screen.notes() + [f"column {c.name!r}: {len(c.categories)} categories in {int(keep_rows.sum())} rows "
                              f"(an id? pass it as the id column)" for c in fitted
                              if c.kind == "categorical" and len(c.categories) > NEAR_UNIQUE * keep_rows.sum() > 1]
    if missing == "drop":
        notes += [f"column {c!r} is missing in {n} of {int(labelled.sum())} rows ({n / labelled.sum():.0%}), "
                  f"all dropped: --drop {c} keeps them" for c, n in missing_values.items()
                  if n > MOSTLY_MISSING * labelled.sum()]
    report = EncodingReport(
        rows=len(frame), kept=int(keep_rows.sum()), dropped_missing_label=int(label_missing.sum()),
        dropped_missing_feature=int(drop_feature.sum()), missing_values=missing_values, missing=missing,
        numeric_columns=tuple(c for c in features if kinds[c] == "numeric"),
        categorical_columns=tuple(c for c in features if kinds[c] == "categorical"), width=encoding.width,
        label_mapping={str(k): v for k, v in encoding.label_mapping.items()}, notes=tuple(notes),
        dropped_columns=tuple(screen.records()), date_columns=tuple(screen.dates))
    return encoding, report


def _as_dates(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(days since 1970-01-01 float64 [n], missing [n]: as given, or the value is not a date)."""
    days = np.full(len(values), np.nan)
    days[~missing] = date_days(values[~missing])
    return days, np.isnan(days)


def encode(frame: pd.DataFrame, encoding: TableEncoding) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(x float32 [n, encoding.width], y int64 [n] or None when the frame has no label column,
    kept_rows int64 [n]: the frame positions of the encoded rows, in order).

    The frame needs every feature column; its member and id columns, and the columns the encoding
    leaves out, are ignored; any other column is an error. Rows without a label are dropped, and
    with missing="drop" rows with a missing feature. Linear in the number of columns.
    """
    frame, names = named_columns(frame)
    features = [c.name for c in encoding.columns]
    present = set(names)
    absent = [c for c in features if c not in present]
    if absent:
        raise InputError(f"{absent[0]}: column missing (the audited table's features: {', '.join(features)})")
    known = set(features) | {encoding.label_column, encoding.member_column, encoding.id_column} | set(encoding.dropped)
    extra = [c for c in names if c not in known]
    if extra:
        raise InputError(f"{extra[0]}: column not in the audited table (its features: {', '.join(features)})")
    keep = np.ones(len(frame), bool)
    y = None
    if encoding.label_column in present:
        label_cells, label_missing = cell_values(frame[encoding.label_column], encoding.na_values)
        keep &= ~label_missing
    parsed = {c: cell_values(frame[c], encoding.na_values) for c in features}
    kinds = {c.name: c.kind for c in encoding.columns}
    for name in features:
        if kinds[name] == "date":
            parsed[name] = _as_dates(*parsed[name])
    if encoding.missing == "drop":
        for _, missing in parsed.values():
            keep &= ~missing
    rows = np.flatnonzero(keep)
    if encoding.label_column in present:
        raw = label_values(label_cells[keep], encoding.label_kind, encoding.label_column, rows)
        y = _label_ids(raw, encoding, rows)
    for col in encoding.columns:
        values, missing = parsed[col.name]
        if col.kind == "numeric":
            finite_numbers(values[keep], missing[keep], col.name, rows)
        elif col.kind == "categorical" and encoding.unknown == "error":
            present_values = values[keep][~missing[keep]]
            unseen = np.flatnonzero(~np.isin(present_values, np.asarray(col.categories, dtype=object)))
            if unseen.size:
                row = rows[~missing[keep]][unseen[0]]
                raise InputError(f"{col.name}: value {shown(present_values[unseen[0]])} in row {row} is not a "
                                 f"category of the audited table")
    return _matrix(parsed, encoding, keep), y, rows.astype(np.int64)


def _matrix(parsed: dict, encoding: TableEncoding, keep: np.ndarray) -> np.ndarray:
    """float32 [kept rows, encoding.width]: each column's block written in place, in output order
    (one-hot: 1 at the category's position, none for an unknown one; ordinal: the code, -1 unknown)."""
    rows = int(keep.sum())
    x = np.zeros((rows, encoding.width), np.float32)
    offset = 0
    for col in encoding.columns:
        values, missing = parsed[col.name]
        values, missing = values[keep], missing[keep]
        if col.kind != "categorical":
            numbers = as_numbers(values, missing)
            if col.fill is not None:
                numbers = np.where(missing, col.fill, numbers)
            x[:, offset] = (numbers - col.mean) / col.std if encoding.scale_numeric else numbers
            offset += 1
            continue
        text = values.astype(object) if values.dtype == object else number_text(values)
        if col.fill is not None:
            text = np.where(missing, col.fill, text)
        codes = pd.Index(list(col.categories), dtype=object).get_indexer(text)
        if encoding.categorical == "ordinal":
            x[:, offset] = codes
            offset += 1
        else:
            hit = np.flatnonzero(codes >= 0)
            x[hit, offset + codes[hit]] = 1
            offset += len(col.categories)
    return x


def _clean_frame(parsed: dict, kinds: dict, keep: np.ndarray) -> pd.DataFrame:
    """The kept rows: numeric columns float64, categorical columns object (str, NaN where missing)."""
    data = {}
    for name, (values, missing) in parsed.items():
        if kinds[name] != "categorical":
            data[name] = as_numbers(values[keep], missing[keep])
        else:
            text = values[keep].astype(object) if values.dtype == object else number_text(values[keep])
            data[name] = pd.Series(text, dtype=object)
    return pd.DataFrame(data)


def _fit_columns(clean: pd.DataFrame, kinds: dict, missing: str) -> list[ColumnEncoding]:
    """ColumnEncoding per feature (frame order) from the kept rows, fitted with sklearn."""
    numeric = [c for c in clean.columns if kinds[c] != "categorical"]
    categorical = [c for c in clean.columns if kinds[c] == "categorical"]
    for name in clean.columns:
        if clean[name].isna().all():
            raise InputError(f"{name}: every value is missing")
    impute = missing == "impute"
    fitted = {}  # each block as one array: fitting by column name would be quadratic in the columns
    if numeric:
        parts = ([SimpleImputer(strategy="median")] if impute else []) + [StandardScaler()]
        fitted["numeric"] = make_pipeline(*parts).fit(clean[numeric].to_numpy(np.float64))
    if categorical:
        parts = ([SimpleImputer(strategy="most_frequent")] if impute else []) + [OneHotEncoder()]
        fitted["categorical"] = make_pipeline(*parts).fit(clean[categorical].to_numpy(object))
    columns: dict[str, ColumnEncoding] = {}
    if numeric:
        pipe = fitted["numeric"]
        scaler = pipe[-1]
        fills = pipe[0].statistics_ if impute else [None] * len(numeric)
        for j, name in enumerate(numeric):
            fill = None if fills[j] is None else float(fills[j])
            columns[name] = ColumnEncoding(name=name, kind=kinds[name], mean=float(scaler.mean_[j]),
                                           std=float(scaler.scale_[j]), fill=fill)
    if categorical:
        pipe = fitted["categorical"]
        fills = pipe[0].statistics_ if impute else [None] * len(categorical)
        for j, name in enumerate(categorical):
            columns[name] = ColumnEncoding(name=name, kind="categorical", fill=fills[j],
                                           categories=tuple(str(c) for c in pipe[-1].categories_[j]))
    return [columns[c] for c in clean.columns]


def _classes(labels: np.ndarray, classes, kind: str, name: str) -> list:
    """The class list: ``classes`` as given (every label must be one of them) or the sorted labels."""
    found = sorted(set(labels.tolist()))
    if classes is None:
        return found
    given = [c if kind == "text" else (bool(c) if kind == "bool" else int(c)) for c in classes]
    if len(set(given)) != len(given):
        raise InputError(f"classes: {given} repeats a class")
    unlisted = [v for v in found if v not in set(given)]
    if unlisted:
        raise InputError(f"{name}: value {shown(unlisted[0])} is not one of the classes {given}")
    return given


def _label_ids(labels: np.ndarray, encoding: TableEncoding, rows: np.ndarray) -> np.ndarray:
    """int64 class ids [n] of python label values; InputError naming the row of an unknown label."""
    mapping = encoding.label_mapping
    ids = np.fromiter((mapping.get(v, -1) for v in labels), np.int64, len(labels))
    bad = np.flatnonzero(ids < 0)
    if bad.size:
        raise InputError(f"{encoding.label_column}: value {shown(labels[bad[0]])} in row {rows[bad[0]]} is not one of "
                         f"the audited classes {list(encoding.classes)}")
    return ids
