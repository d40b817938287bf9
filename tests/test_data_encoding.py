"""Encoding of real-world tables (census-style CSV / Parquet), header-less files, labels, missing
values, the user's own membership (column or ids file), and the JSON round trip of the encoding."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from miaudit.data.encoding import TableEncoding, encode, fit_encoding
from miaudit.data.scaling import fit_scaler
from miaudit.data.table_io import (
    membership_from_column,
    membership_from_ids,
    read_member_ids,
    read_table,
    record_ids,
)
from miaudit.errors import InputError

HEADER = ["age", "workclass", "education", "sex", "hours-per-week", "income"]
WORKCLASS = ["Private", "Self-emp-not-inc", "Local-gov", "State-gov"]
EDUCATION = ["Bachelors", "HS-grad", "Masters", "Some-college", "Doctorate"]
SEX = ["Male", "Female"]


def census_rows(n: int, seed: int, missing_rate: float = 0.06) -> list[list[str]]:
    """Rows as written in the UCI Adult files: text fields, '?' for missing, labels with stray spaces."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        age, hours = int(rng.integers(17, 90)), int(rng.integers(1, 99))
        education = str(rng.choice(EDUCATION))
        rich = (education in ("Masters", "Doctorate")) or (hours > 45 and age > 30) or rng.random() < 0.1
        row = [str(age), str(rng.choice(WORKCLASS)), education, str(rng.choice(SEX)), str(hours),
               rng.choice([">50K", " >50K", ">50K  "]) if rich else rng.choice(["<=50K", "<=50K ", " <=50K"])]
        for j in (0, 1, 4):
            if rng.random() < missing_rate:
                row[j] = "?"
        rows.append(row)
    return rows


def write_csv(path, rows, header=HEADER):
    lines = ([", ".join(header)] if header else []) + [", ".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def has_missing(row) -> bool:
    return "?" in (v.strip() for v in row)


@pytest.fixture
def census(tmp_path):
    rows = census_rows(400, seed=0)
    return rows, read_table(write_csv(tmp_path / "adult.csv", rows))


def test_census_csv_encodes_to_finite_float32_with_one_column_per_category(census):
    rows, frame = census
    assert {r[1] for r in rows} - {"?"} == set(WORKCLASS)  # every category occurs in the fixture
    encoding, report = fit_encoding(frame, "income")
    x, y, kept = encode(frame, encoding)

    complete = [i for i, r in enumerate(rows) if not has_missing(r)]
    assert kept.tolist() == complete and report.kept == len(complete)
    assert report.dropped_missing_feature == len(rows) - len(complete) > 0
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert x.shape == (len(complete), 2 + len(WORKCLASS) + len(EDUCATION) + len(SEX))
    assert report.label_mapping == {"<=50K": 0, ">50K": 1} == encoding.label_mapping
    assert y.dtype == np.int64
    assert y.tolist() == [int(rows[i][5].strip() == ">50K") for i in complete]
    assert report.numeric_columns == ("age", "hours-per-week")
    assert report.categorical_columns == ("workclass", "education", "sex")
    names = list(encoding.feature_names)
    assert x[:, names.index("age")].tolist() == [float(rows[i][0]) for i in complete]
    for i, row in zip(complete, x):
        assert row[names.index(f"workclass={rows[i][1]}")] == 1
    for column, values in (("workclass", WORKCLASS), ("education", EDUCATION), ("sex", SEX)):
        block = [names.index(f"{column}={v}") for v in sorted(values)]
        assert block == list(range(block[0], block[0] + len(values)))  # sorted, contiguous
        assert (x[:, block].sum(axis=1) == 1).all()


def test_numbers_written_as_text_with_stray_spaces_are_numeric():
    frame = pd.DataFrame({"age": [" 39", "50 ", " 7 "], "code": ["1", "2x", "3"], "label": [0, 1, 0]})
    encoding, report = fit_encoding(frame, "label")
    assert report.numeric_columns == ("age",) and report.categorical_columns == ("code",)
    x, _, _ = encode(frame, encoding)
    assert x[:, 0].tolist() == [39, 50, 7]


def test_encoding_fitted_once_gives_every_record_set_the_same_columns(tmp_path, census):
    _, audited = census
    encoding, _ = fit_encoding(audited, "income")
    other_rows = census_rows(50, seed=1)
    other_rows[3][1] = "Never-worked"  # a category the audited table does not have
    other_rows[3][0] = other_rows[3][4] = "40"
    other = read_table(write_csv(tmp_path / "population.csv", other_rows))
    x, y, kept = encode(other, encoding)
    refit, _ = fit_encoding(other, "income")
    assert refit.feature_names != encoding.feature_names  # fitting on another frame would differ
    assert x.shape[1] == encoding.width
    names = list(encoding.feature_names)
    row = x[list(kept).index(3)]
    assert not any(row[j] for j, n in enumerate(names) if n.startswith("workclass="))  # unknown: all zero
    assert row[names.index("age")] == 40
    strict = encoding.model_copy(update={"unknown": "error"})
    with pytest.raises(InputError, match=r"^workclass: value 'Never-worked' in row 3 is not a category"):
        encode(other, strict)
    no_labels = other.drop(columns="income")
    x_unlabelled, y_none, _ = encode(no_labels, encoding)
    assert y_none is None and np.array_equal(x_unlabelled, x)


def test_columns_of_another_schema_are_refused(census):
    _, frame = census
    encoding, _ = fit_encoding(frame, "income")
    with pytest.raises(InputError, match=r"^sex: column missing"):
        encode(frame.drop(columns="sex"), encoding)
    with pytest.raises(InputError, match=r"^zip: column not in the audited table"):
        encode(frame.assign(zip="x"), encoding)
    bad = frame.astype({"age": object})
    bad.loc[5, "age"] = "forty"
    with pytest.raises(InputError, match=r"^age: value 'forty' in row 5 is not a finite number"):
        encode(bad, encoding)


def test_ordinal_codes_follow_the_sorted_categories_and_unknowns_get_minus_one():
    frame = pd.DataFrame({"color": ["red", " blue", "green ", "red"], "size": [1.0, 2, 3, 4],
                          "y": ["a", "b", "a", "b"]})
    encoding, _ = fit_encoding(frame, "y", categorical="ordinal")
    x, _, _ = encode(frame, encoding)
    assert encoding.feature_names == ("color", "size")
    assert x[:, 0].tolist() == [2, 0, 1, 2]
    x_new, _, _ = encode(pd.DataFrame({"color": ["pink"], "size": [1], "y": ["a"]}), encoding)
    assert x_new[0, 0] == -1


def test_headerless_csv_with_and_without_column_names(tmp_path):
    rows = census_rows(30, seed=2, missing_rate=0)
    path = write_csv(tmp_path / "adult.data", rows, header=None)
    plain = read_table(path, no_header=True)
    assert list(plain.columns) == [f"col{i}" for i in range(6)] and len(plain) == 30
    named = read_table(path, columns=HEADER)
    assert list(named.columns) == HEADER and named["age"].tolist() == [int(r[0]) for r in rows]
    encoding, report = fit_encoding(plain, "col5")
    assert report.label_mapping.keys() <= {"<=50K", ">50K"} and report.kept == 30
    with pytest.raises(InputError, match=r"adult.data: --columns names 5 columns, the file has 6"):
        read_table(path, columns=HEADER[:5])
    with_header = write_csv(tmp_path / "with_header.csv", rows)
    with pytest.raises(InputError, match=r"the first line repeats --columns"):
        read_table(with_header, columns=HEADER)


def test_duplicate_column_names_in_a_file_are_made_unique_with_a_note(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("age,sex,age,label,age.1\n1,m,2,0,3\n")
    notes: list[str] = []
    frame = read_table(path, notes=notes)
    assert list(frame.columns) == ["age", "sex", "age.2", "label", "age.1"]
    assert frame["age.2"].tolist() == [2] and frame["age.1"].tolist() == [3]
    assert notes == [f"{path}: column 'age' appears 2 times (columns 0, 2): the repeats are named age.2"]
    path.write_text("1,m,2,0\n")
    with pytest.raises(InputError, match=r"--columns: duplicate column name 'x'"):
        read_table(path, columns=["x", "sex", "x", "label"])
    frame = pd.DataFrame([[1, "m", 2, 0]], columns=["age", "sex", "age", "label"])
    with pytest.raises(InputError, match=r"^age: duplicate column name"):
        fit_encoding(frame, "label")


def test_parquet_follows_the_csv_rules(tmp_path, census):
    rows, from_csv = census
    raw = pd.DataFrame(rows, columns=HEADER)  # every value text, '?' and stray spaces included
    raw.to_parquet(tmp_path / "adult.parquet")
    from_parquet = read_table(tmp_path / "adult.parquet")
    encoding, report = fit_encoding(from_csv, "income")
    encoding_pq, report_pq = fit_encoding(from_parquet, "income")
    assert encoding_pq == encoding and report_pq == report
    assert np.array_equal(encode(from_parquet, encoding)[0], encode(from_csv, encoding)[0])
    with pytest.raises(InputError, match=r"--no-header applies to CSV files"):
        read_table(tmp_path / "adult.parquet", no_header=True)


def test_labels_are_remapped_whatever_their_type():
    x = [0.1, 0.2, 0.3, 0.4]
    cases = [([2, 1, 2, 1], {"1": 0, "2": 1}), ([1.0, 3.0, 1.0, 3.0], {"1": 0, "3": 1}),
             ([" b", "a ", "b", "a"], {"a": 0, "b": 1}), ([" 7", "5 ", "7", "5"], {"5": 0, "7": 1})]
    for labels, mapping in cases:
        encoding, report = fit_encoding(pd.DataFrame({"f": x, "label": labels}), "label")
        _, y, _ = encode(pd.DataFrame({"f": x, "label": labels}), encoding)
        assert report.label_mapping == mapping
        assert y.tolist() == [mapping[str(v).strip().removesuffix(".0")] for v in labels]
    given, _ = fit_encoding(pd.DataFrame({"f": x, "label": [1, 1, 2, 2]}), "label", classes=[0, 1, 2])
    assert given.label_mapping == {0: 0, 1: 1, 2: 2}


def test_a_float_label_that_is_not_an_integer_is_an_error_naming_the_row():
    frame = pd.DataFrame({"f": np.arange(9.0), "label": [0, 1, 0, 1, 0, 1, 0, 1.5, 0]})
    with pytest.raises(InputError, match=r"^label: value 1.5 in row 7 is not a class$"):
        fit_encoding(frame, "label")
    encoding, _ = fit_encoding(frame.drop(index=7), "label")
    with pytest.raises(InputError, match=r"^label: value 1.5 in row 7 is not a class$"):
        encode(frame, encoding)
    with pytest.raises(InputError, match=r"^label: value 3 in row 0 is not one of the audited classes"):
        encode(pd.DataFrame({"f": [1.0], "label": [3]}), encoding)


def test_impute_fills_median_and_most_frequent_and_drop_counts_rows(census):
    rows, frame = census
    frame.loc[[4, 9], "income"] = np.nan  # no label: dropped under either policy
    labelled = [i for i in range(len(rows)) if i not in (4, 9)]
    dropped, drop_report = fit_encoding(frame, "income", missing="drop")
    imputed, impute_report = fit_encoding(frame, "income", missing="impute")
    incomplete = [i for i in labelled if has_missing(rows[i])]
    assert drop_report.dropped_missing_label == impute_report.dropped_missing_label == 2
    assert drop_report.dropped_missing_feature == len(incomplete)
    assert drop_report.kept == len(labelled) - len(incomplete)
    assert impute_report.dropped_missing_feature == 0 and impute_report.kept == len(labelled)
    assert impute_report.missing_values["age"] == sum(rows[i][0] == "?" for i in labelled)

    ages = [float(rows[i][0]) for i in labelled if rows[i][0] != "?"]
    work = Counter(rows[i][1] for i in labelled if rows[i][1] != "?").most_common(1)[0][0]
    by_name = {c.name: c for c in imputed.columns}
    assert by_name["age"].fill == np.median(ages) and by_name["workclass"].fill == work
    x, y, kept = encode(frame, imputed)
    assert kept.tolist() == labelled and np.isfinite(x).all()
    names = list(imputed.feature_names)
    gap = labelled.index(next(i for i in labelled if rows[i][0] == "?"))
    assert x[gap, names.index("age")] == np.median(ages)
    assert len(encode(frame, dropped)[2]) == drop_report.kept


def test_an_empty_column_is_left_out_unless_kept_then_every_row_missing_is_an_error():
    frame = pd.DataFrame({"a": ["?", "?"], "b": [1, 2], "label": [0, 1]})
    encoding, report = fit_encoding(frame, "label")
    assert [c.name for c in encoding.columns] == ["b"] and encoding.dropped == ("a",)
    assert report.dropped_columns[0]["column"] == "a" and report.dropped_columns[0]["reason"].startswith("empty")
    with pytest.raises(InputError, match=r"^a: no row is complete: every row has a missing value .*--drop a"):
        fit_encoding(frame, "label", keep=["a"])
    with pytest.raises(InputError, match=r"^a: every value is missing"):
        fit_encoding(frame, "label", missing="impute", keep=["a"])


def test_numeric_scaling_is_left_to_the_input_scaler_which_keeps_one_hot_columns_raw(census):
    _, frame = census
    encoding, _ = fit_encoding(frame, "income")
    x, _, _ = encode(frame, encoding)
    names = list(encoding.feature_names)
    numeric = [names.index("age"), names.index("hours-per-week")]
    onehot = [j for j in range(len(names)) if j not in numeric]
    z = fit_scaler(x, "auto").transform(x)
    assert np.array_equal(z[:, onehot], x[:, onehot])
    assert np.allclose(z[:, numeric].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(z[:, numeric].std(axis=0), 1, atol=1e-4)
    scaled_encoding, _ = fit_encoding(frame, "income", scale_numeric=True)
    scaled, _, _ = encode(frame, scaled_encoding)
    assert np.allclose(scaled[:, numeric], z[:, numeric], atol=1e-5)
    assert np.array_equal(scaled[:, onehot], x[:, onehot])


def test_json_round_trip_reproduces_the_encoding(census):
    _, frame = census
    for options in ({}, {"missing": "impute", "categorical": "ordinal", "scale_numeric": True}):
        encoding, report = fit_encoding(frame, "income", member_column=None, **options)
        text = json.dumps({"encoding": encoding.model_dump(mode="json"), "report": report.to_dict()})
        restored = TableEncoding.model_validate(json.loads(text)["encoding"])
        assert restored == encoding
        for got, want in zip(encode(frame, restored), encode(frame, encoding)):
            assert np.array_equal(got, want)
    tampered = json.loads(encoding.to_json())
    tampered["columns"][1]["categories"] = ["b", "a"]
    with pytest.raises(ValueError, match="sorted"):
        TableEncoding.model_validate(tampered)


def test_member_column_is_parsed_and_kept_out_of_the_features():
    frame = pd.DataFrame({"f": [1.0, 2, 3, 4, 5, 6], "is_member": [" yes", "No", 1, "0", "TRUE", False],
                          "label": [0, 1, 0, 1, 0, 1]})
    assert membership_from_column(frame, "is_member").tolist() == [True, False, True, False, True, False]
    encoding, _ = fit_encoding(frame, "label", member_column="is_member")
    assert encoding.feature_names == ("f",)
    assert encode(frame, encoding)[0].shape == (6, 1)
    for bad, shown in (("maybe", "'maybe'"), (2, "2"), (np.nan, "nan")):
        broken = frame.astype({"is_member": object})
        broken.loc[3, "is_member"] = bad
        with pytest.raises(InputError, match=rf"^is_member: value {shown} in row 3 is not 0/1, true/false or yes/no"):
            membership_from_column(broken, "is_member")


def test_members_file_of_record_ids(tmp_path):
    frame = pd.DataFrame({"id": ["u7", "u3", "u9", "u1"], "f": [1.0, 2, 3, 4], "label": [0, 1, 0, 1]})
    (tmp_path / "members.txt").write_text("u3\n\nu1 \n")
    (tmp_path / "members.csv").write_text("user\nu9\nu7\n")
    ids = record_ids(frame, "id")
    assert membership_from_ids(read_member_ids(tmp_path / "members.txt"), ids).tolist() == [False, True, False, True]
    assert membership_from_ids(read_member_ids(tmp_path / "members.csv"), ids).tolist() == [True, False, True, False]
    assert membership_from_ids({"0", "2"}, record_ids(frame)).tolist() == [True, False, True, False]
    encoding, _ = fit_encoding(frame, "label", id_column="id")
    assert encoding.feature_names == ("f",)
    with pytest.raises(InputError, match=r"^--members-file: id 'u5' is not a record id \(1 of 2 ids unknown"):
        membership_from_ids({"u5", "u1"}, ids)
    with pytest.raises(InputError, match=r"^record ids: 'u3' appears in rows 1 and 3"):
        membership_from_ids({"u1"}, ["u7", "u3", "u9", "u3"])
    (tmp_path / "two.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"two.csv: a members file holds one column of record ids, found 2"):
        read_member_ids(tmp_path / "two.csv")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InputError, match=r"empty.txt: no record ids"):
        read_member_ids(tmp_path / "empty.txt")


def test_unreadable_table_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nope.csv: file not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"t.xlsx: unknown table type '.xlsx'"):
        read_table(tmp_path / "t.xlsx")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(InputError, match=r"ragged.csv: cannot read the table .*Expected 2 fields in line 3, saw 3"):
        read_table(tmp_path / "ragged.csv")
