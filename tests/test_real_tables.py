"""Real-world table files as published (ProPublica COMPAS, UCI German credit), id / name / date columns,
wide tables, --drop / --keep / --sep / --max-features, and every dropped row and column accounted for."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.census import census_frame
from tests.fixtures.cli import run_cli
from tests.fixtures.compas import COLUMNS, LEAKING, write_compas_csv
from tests.fixtures.german import write_german_data

from miaudit.data.encoding import encode, fit_encoding
from miaudit.data.table_io import read_table
from miaudit.data.user_table import TableOptions, load_user_table
from miaudit.errors import InputError


@pytest.fixture(scope="module")
def compas(tmp_path_factory):
    return write_compas_csv(tmp_path_factory.mktemp("compas") / "compas-scores-two-years.csv", n=1500)


def test_compas_as_published_reads_with_ids_names_and_dates_handled(compas):
    assert len(COLUMNS) == 53
    table = load_user_table(compas, TableOptions(label_column="two_year_recid", drop=LEAKING + ("c_arrest_date",)))
    dropped = {d["column"]: d for d in table.report.dropped_columns}
    for column in ("id", "name", "first", "last", "c_case_number", "c_charge_desc"):
        assert dropped[column]["by"] == "auto" and dropped[column]["keep_with"] == f"--keep {column}"
    assert dropped["is_recid"] == {"column": "is_recid", "reason": "--drop", "by": "user"}
    assert {"decile_score.1", "priors_count.1"} <= {c.name for c in table.encoding.columns} | set(dropped)
    assert set(table.report.date_columns) == {"compas_screening_date", "dob", "c_jail_in", "c_jail_out",
                                              "c_offense_date", "screening_date", "v_screening_date"}
    assert table.dataset.x.shape[1] == table.encoding.width < 60
    notes = "\n".join(table.notes())
    assert "column 'decile_score' appears 2 times (columns 11, 39)" in notes
    assert "column 'name' not used: id-like" in notes and "--keep name" in notes
    frame = pd.read_csv(compas, dtype=str, keep_default_na=False)  # pandas names the repeat decile_score.1
    dob = pd.to_datetime(frame["dob"]).to_numpy("datetime64[D]").astype(np.int64)
    column = table.encoding.feature_names.index("dob")
    assert np.array_equal(table.dataset.x[:, column], dob[table.rows].astype(np.float32))
    x, _, rows = encode(read_table(compas), table.encoding)  # the fitted encoding applies to the file again
    assert np.array_equal(x, table.dataset.x) and np.array_equal(rows, table.rows)


def test_compas_without_drop_names_the_mostly_missing_columns_instead_of_every_row(compas):
    with pytest.raises(InputError) as error:
        load_user_table(compas, TableOptions(label_column="two_year_recid"))
    message = str(error.value)
    assert "no row is complete" in message and "--missing impute" in message
    assert "vr_offense_date 9" in message and "--drop " in message and "c_arrest_date" in message.split("--drop")[1]


def test_a_column_89_percent_missing_is_named_with_its_share_and_drop():
    rng = np.random.default_rng(0)
    n = 200
    sparse = np.where(rng.random(n) < 0.89, "?", rng.choice(["a", "b"], n))
    other = np.where(sparse != "?", "?", rng.choice(["x", "y"], n))  # missing exactly where sparse is present
    frame = pd.DataFrame({"sparse": sparse, "other": other, "v": rng.random(n), "label": rng.integers(0, 2, n)})
    share = (sparse == "?").mean()
    with pytest.raises(InputError, match=rf"^sparse: no row is complete.*sparse {share:.0%}.*--drop sparse "):
        fit_encoding(frame, "label")
    _, report = fit_encoding(frame, "label", drop=["other"])
    assert report.kept == int((sparse != "?").sum())
    assert f"column 'sparse' is missing in {(sparse == '?').sum()} of 200 rows ({share:.0%}), all dropped: " \
           "--drop sparse keeps them" in report.notes


def test_a_unique_id_column_is_left_out_unless_kept():
    frame = census_frame(3000, seed=1)
    frame.insert(0, "uid", [f"u{i:05d}" for i in np.random.default_rng(0).permutation(3000)])
    frame.insert(1, "row_id", np.arange(3000))
    encoding, report = fit_encoding(frame, "income")
    baseline, _ = fit_encoding(frame.drop(columns=["uid", "row_id"]), "income")
    assert encoding.feature_names == baseline.feature_names and encoding.dropped == ("uid", "row_id")
    assert report.dropped_columns[0]["reason"].startswith("id-like (3000 distinct values")
    sorted_measure = frame.drop(columns=["uid", "row_id"]).assign(grams=np.arange(3000) * 7 + 1000)
    assert "grams" in {c.name for c in fit_encoding(sorted_measure, "income")[0].columns}  # rising, not a counter
    kept, kept_report = fit_encoding(frame, "income", keep=["uid"])
    assert kept.width == baseline.width + kept_report.kept  # one one-hot column per kept row


def test_dates_become_days_since_1970_and_keep_one_hots_them():
    stamps = pd.date_range("2013-01-01 06:00", periods=60, freq="37h")
    frame = pd.DataFrame({"when": [str(s) for s in stamps], "day": [s.strftime("%m/%d/%Y") for s in stamps],
                          "size": np.arange(60) % 7, "label": np.arange(60) % 2})
    encoding, report = fit_encoding(frame, "label")
    assert report.date_columns == ("when", "day")
    x, _, _ = encode(frame, encoding)
    expected = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    assert np.allclose(x[:, 0], expected.to_numpy(), atol=1e-3)
    assert np.array_equal(x[:, 1], np.floor(expected.to_numpy()).astype(np.float32))
    kept, _ = fit_encoding(frame, "label", keep=["day"])
    assert kept.width == 1 + 60 + 1


def test_german_credit_data_file_reads_space_separated_without_a_header(tmp_path):
    path = write_german_data(tmp_path / "german.data")
    table = load_user_table(path, TableOptions(label_column="col20", no_header=True))
    assert table.dataset.x.shape == (1000, 7 + 4 + 5 + 10 + 5 + 5 + 4 + 3 + 4 + 3 + 3 + 4 + 2 + 2)
    assert table.encoding.classes == (1, 2)
    assert table.read_notes and "whitespace-separated" in table.read_notes[0]
    explicit = load_user_table(path, TableOptions(label_column="col20", no_header=True, sep="whitespace"))
    assert np.array_equal(explicit.dataset.x, table.dataset.x) and not explicit.read_notes
    guessed = load_user_table(path, TableOptions(label_column="col20"))  # .data: the first line is a record
    assert np.array_equal(guessed.dataset.x, table.dataset.x)
    assert "the first line holds numbers (A11, 62, A32, A40, ...): read as a record" in guessed.read_notes[1]


def test_sep_option_reads_semicolons(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b;label\n1;x;0\n2;y;1\n3;x;1\n")
    frame = read_table(path, sep=";")
    assert list(frame.columns) == ["a", "b", "label"] and frame["a"].tolist() == [1, 2, 3]


def test_columns_on_a_file_with_a_header_says_the_header_became_a_record(tmp_path):
    path = tmp_path / "adult.csv"
    census_frame(50).to_csv(path, index=False)
    names = [f"c{i}" for i in range(9)]
    with pytest.raises(InputError, match=r"the first line \('age', 'workclass', .*looks like a header.*--columns"):
        read_table(path, columns=names)
    with pytest.raises(InputError, match=r"looks like a header.*--no-header"):
        read_table(path, no_header=True)


def test_drop_and_keep_name_unknown_or_special_columns():
    frame = census_frame(100)
    with pytest.raises(InputError, match=r"^--drop: no column 'nope'"):
        fit_encoding(frame, "income", drop=["nope"])
    with pytest.raises(InputError, match=r"^--drop: 'income' is the label"):
        fit_encoding(frame, "income", drop=["income"])
    encoding, _ = fit_encoding(frame, "income", drop=["fnlwgt", "occupation"])
    assert {"fnlwgt", "occupation"}.isdisjoint(c.name for c in encoding.columns)


def test_width_cap_is_checked_from_distinct_counts_before_encoding():
    frame = census_frame(600)
    frame["city"] = [f"c{i % 150}" for i in range(600)]
    with pytest.raises(InputError, match=r"^table: the encoding would have \d+ features, more than --max-features "
                                         r"100 \(widest: city 150"):
        fit_encoding(frame, "income", keep=["city"], max_features=100)


def test_wide_csv_of_80000_columns_is_refused_in_seconds(tmp_path, monkeypatch, capsys):
    """24 rows x 80,000 columns: refused after the header line (reading it all takes pandas ~20 s)."""
    path = tmp_path / "wide.csv"
    rng = np.random.default_rng(0)
    header = ",".join([f"f{i}" for i in range(80_000)] + ["label"])
    body = "\n".join(",".join(map(str, row)) for row in np.column_stack([rng.integers(0, 3, (24, 80_000)),
                                                                          np.arange(24) % 2]))
    path.write_text(header + "\n" + body + "\n")
    started = time.perf_counter()
    code, _, err = run_cli(["audit", "--quiet", "--dataset", str(path), "--target", "logreg",
                            "--out", str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "wide.csv: 80001 columns, more than the 20003 that --max-features allows" in err
    assert time.perf_counter() - started < 15


def test_encoding_time_grows_linearly_with_the_columns():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.integers(0, 4, (40, 6000)), columns=[f"f{i}" for i in range(6000)])
    frame["label"] = np.arange(40) % 2
    started = time.perf_counter()
    encoding, _ = fit_encoding(frame, "label")
    x, _, _ = encode(frame, encoding)
    assert x.shape == (40, 6000)
    assert time.perf_counter() - started < 20  # ~2 s; one transformer per column took ~60 s


def test_cli_counts_dropped_rows_and_columns_on_the_console_and_in_results(tmp_path, monkeypatch, capsys):
    frame = census_frame(600, member_fraction=0.5)
    frame.insert(0, "name", [f"person {i}" for i in range(600)])
    path = tmp_path / "adult.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["audit", "--quiet", "--dataset", str(path), "--label-column", "income",
                                 "--member-column", "is_member", "--target", "logreg", "--reference-models", "0",
                                 "--attacks", "threshold-loss", "--drop", "fnlwgt", "--out", str(out)],
                                monkeypatch, capsys)
    assert code == 0, err
    missing = int(((frame.workclass == " ?") | (frame.occupation == " ?")).sum())
    assert f"rows: {600 - missing} of 600 used; {missing} dropped" in stdout
    assert "column 'name' not used: id-like (600 distinct values in 600 rows) (--keep name" in stdout
    assert "--drop: 1 column not used (fnlwgt)" in stdout
    data = json.loads((out / "results.json").read_text())["data"]
    assert data["dropped_rows"]["count"] == missing
    assert data["dropped_rows"]["reasons"][1] == {"reason": "missing value", "rows": missing, "columns": {
        "workclass": int((frame.workclass == " ?").sum()), "occupation": int((frame.occupation == " ?").sum())}}
    assert [(d["column"], d["by"]) for d in data["dropped_columns"]] == [("fnlwgt", "user"), ("name", "auto")]
    assert "column &#39;name&#39; not used" in (out / "report.html").read_text() or \
        "column 'name' not used" in (out / "report.html").read_text()


def test_table_options_flow_from_config_and_are_refused_for_a_named_dataset(monkeypatch, capsys, tmp_path):
    from miaudit.audit.config import make_config
    from miaudit.audit.plan import table_options

    cfg = make_config(dataset="t.csv", drop="a, b", keep="c", sep=";", max_features=50)
    options = table_options(cfg)
    assert (options.drop, options.keep, options.sep, options.max_features) == (("a", "b"), ("c",), ";", 50)
    code, _, err = run_cli(["audit", "--quiet", "--dataset", "digits", "--drop", "a", "--out", str(tmp_path / "o")],
                           monkeypatch, capsys)
    assert code == 2 and "--drop: applies to a CSV / Parquet dataset, not digits" in err
