"""Models that take the user's raw table: a scikit-learn Pipeline (or XGBoost / LightGBM estimator)
fitted on a DataFrame, or an ONNX model with one named input per column.

Detected from the model itself: ``feature_names_in_`` naming table columns (scikit-learn API), or an
ONNX graph with several inputs (skl2onnx's one input per column). Such a model is fed DataFrame rows
(ONNX: its named inputs, each column as declared) rebuilt from the audit's records by a
``TableFeed``, and its ``classes_`` are matched to the table's label mapping. ``RawColumnsClassifier``
puts a scikit-learn model behind the encoded-record interface every other stage uses, so its
reference models are clones of the model trained on the raw rows.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.contract import one_line, probability_problem
from miaudit.targets.file_target import FileTarget
from miaudit.targets.table_feed import TableFeed, align_spellings, table_dtypes

_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(string)": object}


class RawColumnsClassifier(ClassifierMixin, BaseEstimator):
    """``estimator`` (fitted on the table's raw columns) taking encoded raw records x float32 [n, d]:
    it receives ``feed.frame(x)``; classes_ are the class ids 0..C-1, predict_proba [n, C] in that
    order; ``fit(x, y)`` fits it on the rows and the model's own class values of y."""

    def __init__(self, estimator=None, feed: TableFeed | None = None) -> None:
        self.estimator = estimator
        self.feed = feed

    @classmethod
    def around(cls, fitted, feed: TableFeed) -> RawColumnsClassifier:
        model = cls(fitted, feed)
        model.classes_ = np.arange(feed.n_classes)
        model.n_features_in_ = feed.encoding.width
        return model

    def fit(self, x, y):
        self.estimator.fit(self.feed.rows(x), self.feed.labels(y))
        self.classes_ = np.arange(self.feed.n_classes)
        self.n_features_in_ = np.asarray(x).reshape(len(x), -1).shape[1]
        return self

    def predict_proba(self, x) -> np.ndarray:
        proba = self.estimator.predict_proba(self.feed.rows(x))
        return self.feed.probabilities(proba, self.estimator.classes_)

    def predict(self, x) -> np.ndarray:
        return self.predict_proba(x).argmax(1)


def _parts(obj, depth: int = 0) -> Iterator:
    """obj and the fitted estimators inside it (Pipeline steps, ColumnTransformer transformers)."""
    yield obj
    if depth > 8:
        return
    for _, step in getattr(obj, "steps", None) or ():
        yield from _parts(step, depth + 1)
    for entry in getattr(obj, "transformers_", None) or ():
        yield from _parts(entry[1], depth + 1)


def sklearn_categories(estimator, columns: Sequence[str] = ()) -> dict[str, list]:
    """column -> categories, from every fitted encoder inside ``estimator``: those naming their columns,
    and those a ColumnTransformer gives columns by position (``columns``: the table's, in order)."""
    out: dict[str, list] = {}

    def add(encoder, names) -> None:
        categories = getattr(encoder, "categories_", None)
        if categories is not None and names is not None and len(categories) == len(names):
            for name, values in zip(names, categories):
                out.setdefault(str(name), []).extend(np.asarray(values).tolist())

    for part in _parts(estimator):
        add(part, getattr(part, "feature_names_in_", None))
        for entry in getattr(part, "transformers_", None) or ():
            where = np.asarray(entry[2]) if not isinstance(entry[2], (str, slice)) else np.zeros(0)
            if where.dtype.kind not in "iu" or not len(columns) or where.max(initial=-1) >= len(columns):
                continue
            for inner in _parts(entry[1]):
                if getattr(inner, "feature_names_in_", None) is None:
                    add(inner, [columns[i] for i in where])
    return out


def column_names(estimator, table) -> tuple[list[str], bool] | None:
    """(the table columns ``estimator`` takes, whether by position), or None when it takes the audit's
    encoded records. By name: its feature_names_in_ (unless they are the encoded feature names); by
    position: no names and n_features_in_ equal to the table's feature columns, not its encoded width."""
    if table is None:
        return None
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        declared, columns = getattr(estimator, "n_features_in_", None), [c.name for c in table.encoding.columns]
        if declared is not None and int(declared) == len(columns) != table.encoding.width:
            return columns, True
        return None
    names = [str(n) for n in names]
    if names == list(table.encoding.feature_names):
        known = {c.name for c in table.encoding.columns}
        if not set(names) <= known:  # e.g. "workclass=Private": trained on miaudit's own encoding
            return None
    return names, False


def raw_columns_estimator(estimator, table, name: str):
    """``estimator`` behind a RawColumnsClassifier when it takes the table's raw columns, else itself."""
    found = column_names(estimator, table)
    if found is None or isinstance(estimator, RawColumnsClassifier):
        return estimator
    if not callable(getattr(estimator, "predict_proba", None)):
        raise InputError(f"{name}: {type(estimator).__name__} has no predict_proba; an audit needs class probabilities")
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise InputError(f"{name}: {type(estimator).__name__} is not fitted (no classes_); fit it first")
    categories = sklearn_categories(estimator, found[0] if found[1] else ())
    feed = make_feed(table, found[0], categories, classes, name, positional=found[1])
    return RawColumnsClassifier.around(estimator, feed)


def make_feed(table, names: Sequence[str], categories: dict[str, Sequence], classes, name: str,
              positional: bool = False) -> TableFeed:
    """The TableFeed of a model of ``names`` columns knowing ``categories`` and ``classes`` (InputError
    prefixed with ``name``: the model)."""
    encoding = table.encoding
    try:
        return TableFeed(encoding, names, table_dtypes(getattr(table, "frame", None), names),
                         align_spellings(encoding, categories), classes, positional)
    except InputError as err:
        raise InputError(f"{name}: {err}") from None


class OnnxColumnsTarget(FileTarget):
    """An ONNX classifier with one input per table column (skl2onnx's export of a Pipeline on a
    DataFrame): encoded raw records x [n, d] are fed as those columns, each of its declared element
    type, shaped [n, 1] (or [n] when declared 1-D); probabilities come from its tensor [n, C] or
    ZipMap (list of dicts) output, in class-id order."""

    def __init__(self, name: str, session, inputs: list[tuple[str, str, str, int]], output_name: str,
                 model_classes: list | None, feed: TableFeed, **kwargs) -> None:
        super().__init__(name, feed.n_classes, output_kind="probabilities", **kwargs)
        self.session, self.inputs, self.output_name = session, inputs, output_name
        self.model_classes, self.feed = model_classes, feed

    def _run(self, x: np.ndarray) -> np.ndarray:
        frame = self.feed.frame(x)
        feed = {}
        for name, column, kind, rank in self.inputs:
            values = frame[column].to_numpy()
            values = values.astype(str).astype(object) if kind == "tensor(string)" else values.astype(
                _ONNX_TYPES[kind])
            feed[name] = values.reshape(-1, 1) if rank != 1 else values
        out = self.session.run([self.output_name], feed)[0]
        if isinstance(out, list):  # ZipMap: one {class: probability} per record
            classes = list(out[0].keys()) if out else list(self.model_classes or [])
            proba = np.array([[row[c] for c in classes] for row in out], np.float64).reshape(len(out), len(classes))
        else:
            classes = self.model_classes if self.model_classes is not None else list(range(self.n_classes))
            proba = np.asarray(out, np.float64)
        return self.feed.probabilities(proba, classes)


def _graph_attributes(path: Path) -> tuple[list | None, list[str]]:
    """(the classifier's class labels, every category string of its encoders) from the ONNX graph."""

    onnx = require("onnx", "onnx", field=path.name)
    model = onnx.load(str(path), load_external_data=False)
    classes, categories = None, []

    def nodes(graph):
        for node in graph.node:
            yield node
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    yield from nodes(attribute.g)

    for node in nodes(model.graph):
        for attribute in node.attribute:
            if attribute.name in ("classlabels_strings", "classlabels_int64s") and classes is None:
                values = onnx.helper.get_attribute_value(attribute)
                classes = [v.decode() if isinstance(v, bytes) else int(v) for v in values]
            elif attribute.name == "cats_strings":
                categories.extend(v.decode() for v in onnx.helper.get_attribute_value(attribute))
    return classes, categories


def _key(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower())


def _column_of(input_name: str, columns: Sequence[str]) -> str:
    """The table column an ONNX input feeds: same name, or the same once every character that is not
    a letter or digit is "_" (skl2onnx writes "hours_per_week" for "hours-per-week"); else the
    input's own name (reported missing by the feed)."""
    if input_name in columns:
        return input_name
    matches = [c for c in columns if _key(c) == _key(input_name)]
    return matches[0] if len(matches) == 1 else input_name


def onnx_takes_columns(session) -> bool:
    """Whether an ONNX session takes table columns: several inputs, or one that is not a float tensor."""
    inputs = session.get_inputs()
    return len(inputs) > 1 or (len(inputs) == 1 and inputs[0].type not in ("tensor(float)", "tensor(double)",
                                                                           "tensor(float16)"))


def load_onnx_columns(path: str | Path, table_or_feed, n_classes: int, output_kind: str = "probabilities",
                      probe: np.ndarray | None = None) -> OnnxColumnsTarget:
    """The ONNX model at ``path`` taking the table's columns by name, checked on probe records."""

    path = Path(path)
    ort = require("onnxruntime", "onnx", field=path.name)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception types
        raise InputError(f"{path.name}: not an ONNX model onnxruntime can load ({one_line(err)})") from None
    feed = table_or_feed if isinstance(table_or_feed, TableFeed) else None
    columns = feed.names if feed is not None else [c.name for c in table_or_feed.encoding.columns]
    inputs = []
    for inp in session.get_inputs():
        if inp.type not in _ONNX_TYPES:
            raise InputError(f"{path.name}: input {inp.name!r} is {inp.type}, not a column type miaudit can feed")
        inputs.append((inp.name, _column_of(inp.name, columns), inp.type, len(inp.shape or [None, None])))
    classes, categories = _graph_attributes(path)
    if feed is None:
        names = [i[1] for i in inputs]
        known = {c.name: categories for c in table_or_feed.encoding.columns if c.kind == "categorical"}
        feed = make_feed(table_or_feed, names, known, classes, path.name)
    outputs = session.get_outputs()
    scores = [o for o in outputs if o.type.startswith("seq(map(") or o.type in ("tensor(float)", "tensor(double)")]
    if not scores:
        raise InputError(f"{path.name}: no probability output (outputs: {', '.join(o.name for o in outputs)})")
    target = OnnxColumnsTarget(path.name, session, inputs, scores[-1].name, classes, feed,
                               reload=(load_onnx_columns, (str(path), feed, int(n_classes))))
    target.output_kind = output_kind
    if feed.n_classes != n_classes:
        raise InputError(f"{path.name}: gives {feed.n_classes} classes, the data has {n_classes}")
    if probe is not None:
        try:
            values = target.raw_outputs(np.asarray(probe, np.float32))
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"{path.name}: inference on the table's rows fails ({one_line(err)})") from None

        problem = probability_problem(values)
        if problem:
            raise InputError(f"{path.name}: output {target.output_name!r} is not probabilities ({problem})")
    return target
