"""What a model trained on a user's raw table columns is fed: the audit's encoded records turned back
into table rows, and the model's class values turned into the audit's class ids.

Every record set of an audit is encoded (``data/encoding.py``: numeric columns as they are, one-hot
blocks or ordinal codes for text columns). A ``TableFeed`` inverts that layout for raw values
x float32 [n, width] (the plan's records after ``RawInputs`` undoes the scaling): numeric columns
come back in the table's own dtype (integers rounded), a one-hot block becomes its most likely
category (argmax), an ordinal code the nearest category; categories are spelled as the model knows
them (``spellings``, e.g. " Private" where the table holds "Private"). Class values of the model
(``classes_`` such as " >50K") are matched to the table's label mapping after stripping.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from miaudit.data.encoding import TableEncoding
from miaudit.errors import InputError


def _label_key(value) -> str:
    """A label value as the table's label mapping compares it: text stripped, whole numbers as ints."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


class TableFeed:
    """Encoded raw records x float32 [n, width] -> a DataFrame of the model's columns.

    encoding: the audit's table encoding; names: the columns the model takes, in its order (each a
    feature column of the table); dtypes: column -> numpy dtype text of the user's table ("int64",
    "float64", "bool", "object"); spellings: column -> {category: the model's spelling};
    model_classes: the model's class values (``classes_``), or None to take the table's own;
    positional: the model was fitted on the table's values without column names (``rows`` gives an
    object array [n, len(names)] instead of a DataFrame).
    """

    def __init__(self, encoding: TableEncoding, names: Sequence[str], dtypes: dict[str, str] | None = None,
                 spellings: dict[str, dict[str, str]] | None = None, model_classes: Sequence | None = None,
                 positional: bool = False) -> None:
        known = [c.name for c in encoding.columns]
        absent = [n for n in names if n not in known]
        if absent:
            raise InputError(f"takes column{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))} that the "
                             f"table lacks (its feature columns: {', '.join(known)})")
        self.names, self.positional = [str(n) for n in names], bool(positional)
        self.encoding_json, self.onehot = encoding.to_json(), encoding.categorical == "onehot"
        self.dtypes = {n: str((dtypes or {}).get(n, "object")) for n in self.names}
        self.spellings = {n: dict(v) for n, v in (spellings or {}).items() if n in self.names}
        self.class_ids, self.label_values = self._classes(encoding, model_classes)
        self._layout = None

    def _classes(self, encoding: TableEncoding, model_classes) -> tuple[np.ndarray, list]:
        """(class id of each model class, the value to train a model of class id c on, per c)."""
        table = {_label_key(c): i for i, c in enumerate(encoding.classes)}
        values: list = list(encoding.classes)
        if model_classes is None:
            return np.arange(len(values)), values
        model_classes = list(np.asarray(model_classes).tolist())
        ids = [table.get(_label_key(c), -1) for c in model_classes]
        integral = all(isinstance(c, int) and not isinstance(c, bool) for c in model_classes)
        if min(ids) < 0 and integral and all(0 <= c < len(values) for c in model_classes):
            return np.asarray(model_classes, np.int64), list(range(len(values)))  # trained on the class ids
        if min(ids) < 0:
            unknown = [repr(c) for c, i in zip(model_classes, ids) if i < 0]
            raise InputError(f"classes_ {', '.join(unknown)} not among the table's labels "
                             f"({', '.join(map(repr, encoding.classes))})")
        for c, i in zip(model_classes, ids):
            values[i] = c
        return np.asarray(ids, np.int64), values

    @property
    def n_classes(self) -> int:
        return len(self.label_values)

    def ids_of(self, classes: Sequence) -> np.ndarray:
        """int64 class ids of a model's class values (a clone's ``classes_``, a subset of the template's)."""
        keys = {_label_key(v): i for i, v in enumerate(self.label_values)}
        ids = [keys.get(_label_key(c), -1) for c in np.asarray(classes).tolist()]
        if min(ids, default=0) < 0:
            raise InputError(f"classes_ {list(classes)} not among the table's labels {self.label_values}")
        return np.asarray(ids, np.int64)

    @property
    def encoding(self) -> TableEncoding:
        return TableEncoding.from_json(self.encoding_json)

    def layout(self) -> dict[str, tuple[int, int, tuple[str, ...], str]]:
        """column -> (first encoded column, width, categories, kind)."""
        if self._layout is None:
            enc, start, out = self.encoding, 0, {}
            for col in enc.columns:
                width = len(col.categories) if col.kind == "categorical" and enc.categorical == "onehot" else 1
                out[col.name] = (start, width, col.categories, col.kind)
                start += width
            self._layout = out
        return self._layout

    def column(self, x: np.ndarray, name: str) -> np.ndarray:
        """One column's values [n] for raw encoded records x [n, width], in the table's dtype."""
        start, width, categories, kind = self.layout()[name]
        block = np.asarray(x, np.float64)[:, start:start + width]
        if kind == "categorical":
            code = block.argmax(1) if self.onehot else np.clip(np.rint(block[:, 0]), 0, len(categories) - 1).astype(int)
            spelled = self.spellings.get(name, {})
            return np.array([spelled.get(c, c) for c in categories], dtype=object)[code]
        values = block[:, 0]
        dtype = self.dtypes[name]
        if dtype.startswith(("int", "uint")):
            return np.rint(values).astype(dtype)
        if dtype == "bool":
            return values > 0.5
        return values if dtype.startswith("float") else values.astype(np.float64)

    def frame(self, x: np.ndarray) -> pd.DataFrame:
        """The model's columns for raw encoded records x [n, width] (or [n, *shape] flattening to it)."""
        x = np.asarray(x).reshape(len(x), -1)
        return pd.DataFrame({name: self.column(x, name) for name in self.names})

    def rows(self, x: np.ndarray):
        """What the model takes: ``frame(x)``, or its values as an object array when positional."""
        frame = self.frame(x)
        return frame.to_numpy(object) if self.positional else frame

    def labels(self, y: np.ndarray) -> np.ndarray:
        """The model's class values for class ids y int [n] (what a clone of it is trained on)."""
        return np.asarray(self.label_values, dtype=object)[np.asarray(y, np.int64)]

    def probabilities(self, proba: np.ndarray, classes: Sequence) -> np.ndarray:
        """float64 [n, n_classes] in class-id order from a model's probabilities [n, len(classes)]
        over its class values ``classes``."""
        proba = np.asarray(proba, np.float64)
        out = np.zeros((len(proba), self.n_classes))
        out[:, self.ids_of(classes)] = proba
        return out

    def digest(self) -> str:
        text = json.dumps([self.names, self.positional, self.encoding_json, self.dtypes, self.spellings,
                           [repr(v) for v in self.label_values], self.class_ids.tolist()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __getstate__(self):
        return {**self.__dict__, "_layout": None}

    def __repr__(self) -> str:  # stable: it is part of reference models' cache keys
        return f"TableFeed({len(self.names)} columns, {self.digest()})"


def table_dtypes(frame: pd.DataFrame | None, names: Sequence[str]) -> dict[str, str]:
    """column -> numpy dtype text of the user's table (object where unknown)."""
    if frame is None:
        return {}
    out = {}
    for name in names:
        if name in frame.columns:
            dtype = frame[name].dtype
            out[name] = dtype.name if isinstance(dtype, np.dtype) and dtype.kind in "biuf" else "object"
    return out


def align_spellings(encoding: TableEncoding, known: dict[str, Sequence]) -> dict[str, dict[str, str]]:
    """column -> {category: the model's spelling} where a category of the model (``known``: column ->
    its categories) equals one of the table's after stripping but is written otherwise."""
    out: dict[str, dict[str, str]] = {}
    for col in encoding.columns:
        theirs = [c for c in known.get(col.name, ()) if isinstance(c, str)]
        if not theirs:
            continue
        exact = set(theirs)
        by_key = {c.strip(): c for c in theirs}
        mapping = {c: by_key[c] for c in col.categories if c not in exact and c in by_key}
        if mapping:
            out[col.name] = mapping
    return out
