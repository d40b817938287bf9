"""TableFeed: the audit's encoded records back to the rows of the user's table, as a model fitted on
its raw columns takes them (names, dtypes, category spellings), and the model's classes to ids."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from miaudit.data.encoding import encode, fit_encoding
from miaudit.errors import InputError
from miaudit.targets.table_feed import TableFeed, align_spellings, table_dtypes

FRAME = pd.DataFrame({"age": [25, 38, 52, 44, 31, 60], "job": ["Sales", "Tech", "Sales", "Exec", "Tech", "Exec"],
                      "hours": [40.5, 50.0, 38.25, 60.0, 20.0, 45.0],
                      "y": [" no", " yes", " no", " yes", " no", " yes"]})


@pytest.mark.parametrize("categorical", ["onehot", "ordinal"])
def test_encoded_rows_come_back_as_the_table_with_its_dtypes(categorical):
    encoding, _ = fit_encoding(FRAME, "y", categorical=categorical)
    x, y, _ = encode(FRAME, encoding)
    feed = TableFeed(encoding, ["hours", "job", "age"], table_dtypes(FRAME, ["hours", "job", "age"]))
    noisy = x + np.random.default_rng(0).normal(0, 0.01, x.shape).astype(np.float32)  # float rounding, queries
    rows = feed.frame(noisy)
    assert list(rows.columns) == ["hours", "job", "age"]
    assert rows["age"].dtype == np.int64 and rows["age"].tolist() == FRAME["age"].tolist()
    assert rows["job"].tolist() == FRAME["job"].tolist()
    np.testing.assert_allclose(rows["hours"], FRAME["hours"], atol=0.05)


def test_categories_are_spelled_as_the_model_knows_them_and_classes_map_after_stripping():
    encoding, _ = fit_encoding(FRAME.assign(job=" " + FRAME["job"]), "y")  # the table's cells are stripped
    x, y, _ = encode(FRAME, encoding)
    spellings = align_spellings(encoding, {"job": [" Exec", " Sales", " Tech"]})
    feed = TableFeed(encoding, ["job"], spellings=spellings, model_classes=[" no", " yes"])
    assert feed.frame(x)["job"].tolist() == (" " + FRAME["job"]).tolist()
    assert feed.labels(y).tolist() == FRAME["y"].tolist()  # a clone trains on the model's own class values
    np.testing.assert_array_equal(feed.probabilities(np.array([[0.2, 0.8]]), [" yes", " no"]), [[0.8, 0.2]])


def test_unknown_columns_and_classes_are_named():
    encoding, _ = fit_encoding(FRAME, "y")
    with pytest.raises(InputError, match="'race'"):
        TableFeed(encoding, ["age", "race"])
    with pytest.raises(InputError, match="'maybe'"):
        TableFeed(encoding, ["age"], model_classes=["no", "maybe"])
    ids = TableFeed(encoding, ["age"], model_classes=[0, 1])  # a model trained on the class ids
    assert ids.labels(np.array([1, 0])).tolist() == [1, 0]
