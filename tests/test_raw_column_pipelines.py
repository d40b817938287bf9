"""A model trained on the user's raw table (a Pipeline of a ColumnTransformer and a forest on a
census table with string labels, XGBoost / LightGBM on numeric columns) is audited as it is: from a
skops file, from an ONNX export with one input per column, and as a library object. Its target
accuracies in the results equal the model's own score() on the audited rows."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.fixtures.census import write_census_csv
from tests.fixtures.cli import run_cli

import miaudit
from miaudit.errors import InputError

ATTACKS = ["threshold-loss", "lira-offline"]
SMALL = {"reference_models": 2, "progress": False, "n_jobs": 1}


@pytest.fixture(scope="module")
def census(tmp_path_factory):
    """(csv path, the frame as pandas reads the file: leading spaces kept, ' ?' cells, labels
    ' <=50K' / ' >50K'), its feature columns and string columns."""
    path = write_census_csv(tmp_path_factory.mktemp("census") / "census.csv", n=700, seed=1, member_fraction=0.5)
    frame = pd.read_csv(path)
    features = [c for c in frame.columns if c not in ("income", "is_member")]
    strings = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    return path, frame, features, strings


def fitted_pipeline(frame, features, strings, columns=None):
    columns = columns or features
    text = [c for c in strings if c in columns]
    pipe = Pipeline([("prep", ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), text)],
                                                remainder="passthrough")),
                     ("forest", RandomForestClassifier(n_estimators=25, random_state=0))])
    members = frame[(frame.is_member == 1) & ~frame[columns].isin([" ?"]).any(axis=1)]
    return pipe.fit(members[columns], members["income"])


def assert_accuracies_are_its_score(model, frame, columns, record_index, membership, target):
    rows = frame.iloc[record_index]
    assert target["train_accuracy"] == pytest.approx(model.score(rows[columns][membership],
                                                                 rows["income"][membership]), abs=1e-12)
    assert target["test_accuracy"] == pytest.approx(model.score(rows[columns][~membership],
                                                                rows["income"][~membership]), abs=1e-12)


def test_the_pipeline_from_a_skops_file_is_fed_raw_rows(census, tmp_path, monkeypatch, capsys):
    sio = pytest.importorskip("skops.io")
    path, frame, features, strings = census
    pipe = fitted_pipeline(frame, features, strings)
    assert list(pipe.classes_) == [" <=50K", " >50K"]
    sio.dump(pipe, tmp_path / "pipe.skops")
    out = tmp_path / "out"
    code, _, err = run_cli(["audit", "--quiet", "--dataset", str(path), "--label-column", "income",
                            "--member-column", "is_member", "--target", str(tmp_path / "pipe.skops"),
                            "--reference-models", "2", "--attacks", ",".join(ATTACKS), "--out", str(out)],
                           monkeypatch, capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    scores = pd.read_csv(out / "scores.csv")
    membership = scores["is_member"].to_numpy(bool)
    assert_accuracies_are_its_score(pipe, frame, features, scores["record_index"].to_numpy(), membership,
                                    results["target"])
    assert results["target"]["train_accuracy"] > results["target"]["test_accuracy"] + 0.1
    assert results["target_source"]["reference_models"].startswith("clones of the target's estimator")
    assert any("raw columns" in note for note in results["notes"])


def test_the_pipeline_exported_with_skl2onnx_is_fed_its_named_inputs(census, tmp_path):
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType

    path, frame, features, strings = census
    pipe = fitted_pipeline(frame, features, strings)
    types = [(c, StringTensorType([None, 1]) if c in strings else Int64TensorType([None, 1])) for c in features]
    (tmp_path / "pipe.onnx").write_bytes(skl2onnx.to_onnx(pipe, initial_types=types).SerializeToString())
    result = miaudit.audit(dataset=str(path), label_column="income", member_column="is_member",
                           target=str(tmp_path / "pipe.onnx"), reference_architecture="forest", attacks=ATTACKS,
                           **SMALL)
    target = result.to_dict()["target"]
    assert_accuracies_are_its_score(pipe, frame, features, result.record_index, result.membership, target)


def test_the_pipeline_object_audits_a_dataframe_with_clones_trained_on_raw_rows(census):
    _, frame, features, strings = census
    pipe = fitted_pipeline(frame, features, strings)
    result = miaudit.audit(target=pipe, data=frame, label_column="income", member_column="is_member",
                           attacks=ATTACKS, **SMALL)
    report = result.to_dict()
    assert_accuracies_are_its_score(pipe, frame, features, result.record_index, result.membership, report["target"])
    assert report["target_source"]["reference_models"].startswith("clones of the target's estimator")
    lira = result.attack("lira-offline").metrics
    assert lira.auc > 0.6  # clones of an overfit forest, trained on the raw rows, make LiRA work


def test_a_model_of_columns_the_table_lacks_is_refused_naming_them(census):
    _, frame, features, strings = census
    wider = frame.assign(race=np.where(np.arange(len(frame)) % 2, "a", "b"))
    pipe = fitted_pipeline(wider, features, strings + ["race"], columns=[*features, "race"])
    with pytest.raises(InputError, match="'race'"):
        miaudit.audit(target=pipe, data=frame, label_column="income", member_column="is_member",
                      attacks=ATTACKS, **SMALL)


def numeric_census(frame):
    numeric = ["hours-per-week", "capital-gain", "fnlwgt", "age"]  # not the table's column order
    return numeric, frame[["age", "fnlwgt", "capital-gain", "hours-per-week", "income", "is_member"]]


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosting_estimators_on_numeric_columns_are_fed_by_name(census, library):
    pytest.importorskip(library)
    _, frame, _, _ = census
    columns, table = numeric_census(frame)
    members = table[table.is_member == 1]
    if library == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=30, max_depth=6, random_state=0, n_jobs=1)
        model.fit(members[columns], (members["income"] == " >50K").astype(int))  # class ids 0 / 1
    else:
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=30, random_state=0, n_jobs=1, verbose=-1)
        model.fit(members[columns], members["income"])  # the string labels themselves
    result = miaudit.audit(target=model, data=table, label_column="income", member_column="is_member",
                           attacks=ATTACKS, **SMALL)
    rows = table.iloc[result.record_index]
    predicted = np.asarray(model.predict(rows[columns]))
    truth = rows["income"].to_numpy()
    if library == "xgboost":
        truth = (truth == " >50K").astype(int)
    correct = predicted == truth
    target = result.to_dict()["target"]
    assert target["train_accuracy"] == pytest.approx(correct[result.membership].mean(), abs=1e-12)
    assert target["test_accuracy"] == pytest.approx(correct[~result.membership].mean(), abs=1e-12)


def test_a_pipeline_fitted_on_the_tables_values_without_names_is_fed_them_by_position(census):
    _, frame, features, strings = census
    positions = [features.index(c) for c in strings]
    pipe = Pipeline([("prep", ColumnTransformer([("text", OneHotEncoder(), positions)], remainder="passthrough")),
                     ("forest", RandomForestClassifier(n_estimators=25, random_state=0))])
    clean = frame[~frame[features].isin([" ?"]).any(axis=1)]
    members = clean[clean.is_member == 1]
    pipe.fit(members[features].to_numpy(object), members["income"].to_numpy())  # categories " Private", ...
    result = miaudit.audit(target=pipe, data=frame, label_column="income", member_column="is_member",
                           attacks=ATTACKS, **SMALL)
    rows = frame.iloc[result.record_index]
    for subset, accuracy in ((result.membership, result.target.train_accuracy),
                             (~result.membership, result.target.test_accuracy)):
        assert accuracy == pytest.approx(pipe.score(rows[features][subset].to_numpy(object),
                                                    rows["income"][subset].to_numpy()), abs=1e-12)
