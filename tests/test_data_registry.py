"""Dataset lookup: data directories, names, scikit-learn sets, Location, and the user's CSV/Parquet/NPZ files."""
from __future__ import annotations

import io
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit.data import DATASET_NAMES, datadir, list_datasets, load_dataset
from miaudit.data.dataset import Dataset
from miaudit.data.idx import IMAGE_SETS, write_idx
from miaudit.data.tabular import load_table_file
from miaudit.errors import InputError


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    """Every search location under tmp_path: explicit, env, cwd/../shared/data, repo/../shared/data, system."""
    places = {k: tmp_path / k for k in ("explicit", "env", "system")}
    places["cwd"] = tmp_path / "cwd" / "shared" / "data"
    places["repo"] = tmp_path / "repo" / "shared" / "data"
    for place in places.values():
        place.mkdir(parents=True)
    (tmp_path / "cwd" / "main").mkdir()
    (tmp_path / "repo" / "main").mkdir()
    monkeypatch.chdir(tmp_path / "cwd" / "main")
    monkeypatch.setenv("MIAUDIT_DATA", str(places["env"]))
    monkeypatch.setattr(datadir, "REPO_ROOT", tmp_path / "repo" / "main")
    monkeypatch.setattr(datadir, "SYSTEM_DATA_DIR", places["system"])
    return places


def test_data_dirs_search_order(isolated_dirs):
    p = isolated_dirs
    expected = [p["explicit"], p["env"], p["cwd"], p["repo"], p["system"]]
    assert datadir.data_dirs(p["explicit"]) == expected
    assert datadir.data_dirs() == expected[1:]
    assert datadir.data_dirs(p["env"]) == expected[1:]  # no duplicates
    p["repo"].rmdir()
    assert datadir.data_dirs(str(p["explicit"])) == [p["explicit"], p["env"], p["cwd"], p["system"]]


def test_find_dataset_dir_takes_the_first_complete_folder(isolated_dirs):
    p = isolated_dirs
    (p["explicit"] / "toy").mkdir()
    (p["explicit"] / "toy" / "a.bin").write_bytes(b"1")  # b.bin missing here
    for where in ("cwd", "system"):
        (p[where] / "toy").mkdir()
        for name in ("a.bin", "b.bin"):
            (p[where] / "toy" / name).write_bytes(b"1")
    assert datadir.find_dataset_dir("toy", ["a.bin", "b.bin"], p["explicit"]) == p["cwd"]
    assert datadir.find_dataset_dir("toy", ["a.bin"], p["explicit"]) == p["explicit"]
    with pytest.raises(InputError) as err:
        datadir.find_dataset_dir("toy", ["c.bin"], p["explicit"] / "nowhere", dataset="toy-set")
    message = str(err.value)
    assert "toy-set" in message and "c.bin" in message and "MIAUDIT_DATA" in message and "--data-dir" in message
    for place in [p["explicit"] / "nowhere", *p.values()]:
        assert str(place) in message


def test_list_datasets_reports_where_and_why(isolated_dirs):
    spec = IMAGE_SETS["emnist-digits"]
    (isolated_dirs["env"] / "emnist").mkdir()
    for name in spec.files:
        write_idx(isolated_dirs["env"] / "emnist" / name, np.zeros((1, 28, 28) if "images" in name else 1, np.uint8))
    infos = {info.name: info for info in list_datasets()}
    assert tuple(infos) == DATASET_NAMES
    assert infos["emnist-digits"].available and infos["emnist-digits"].location == str(isolated_dirs["env"] / "emnist")
    assert not infos["location"].available and "dataset_location.tgz" in infos["location"].location
    assert infos["digits"].available and infos["digits"].records == 1797 and infos["digits"].classes == 10


def test_every_listed_dataset_loads_as_listed_or_fails_as_listed():
    """What ``miaudit datasets`` shows (list_datasets, which reads no data) is what load_dataset delivers:
    the records and classes it lists, or, where the files are missing, the error it lists."""
    infos = list_datasets()
    assert {"digits", "breast-cancer", "wine", "iris"} <= {info.name for info in infos if info.available}
    for info in infos:
        if info.available:
            ds = load_dataset(info.name)
            assert (len(ds), ds.n_classes, len(np.unique(ds.y))) == (info.records, info.classes, info.classes), \
                info.name
        else:
            with pytest.raises(InputError) as err:
                load_dataset(info.name)
            assert str(err.value) == info.location


def write_location(folder, labels, features):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'"{label}",' + ",".join(str(v) for v in row) for label, row in zip(labels, features)]
    data = ("\n".join(lines) + "\n").encode()
    with tarfile.open(folder / "dataset_location.tgz", "w:gz") as tar:
        member = tarfile.TarInfo("bangkok")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))


def test_location_from_tgz(tmp_path):
    labels = np.array([1, 30, 7, 30, 2])
    features = np.random.default_rng(0).integers(0, 2, size=(5, 446))
    write_location(tmp_path / "location", labels, features)
    ds = load_dataset("location", data_dir=tmp_path)
    assert ds.x.dtype == np.float32 and ds.x.shape == (5, 446) and ds.n_classes == 30
    np.testing.assert_array_equal(ds.y, labels - 1)
    np.testing.assert_array_equal(ds.x, features)


def test_location_corrupt_archive(tmp_path):
    (tmp_path / "location").mkdir()
    (tmp_path / "location" / "dataset_location.tgz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(InputError, match="dataset_location.tgz"):
        load_dataset("location", data_dir=tmp_path)


def test_location_labels_outside_1_to_30(tmp_path):
    write_location(tmp_path / "location", [0, 3], np.zeros((2, 4), int))
    with pytest.raises(InputError, match="1..30"):
        load_dataset("location", data_dir=tmp_path)


def test_sklearn_sets():
    from sklearn.datasets import load_digits, load_wine

    digits = load_dataset("digits")
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.dtype == np.float32
    assert digits.x.min() == 0.0 and digits.x.max() == 1.0
    np.testing.assert_allclose(digits.x[:, 0] * 16, load_digits().images, atol=1e-5)
    for name, d, c in (("breast-cancer", 30, 2), ("wine", 13, 3), ("iris", 4, 3)):
        ds = load_dataset(name)
        assert ds.x.shape[1] == d and ds.n_classes == c and ds.x.dtype == np.float32
        np.testing.assert_allclose(ds.x.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(ds.x.std(axis=0), 1, atol=1e-4)
    np.testing.assert_array_equal(load_dataset("wine").y, load_wine().target)
    assert load_dataset("Breast_Cancer").name == "breast-cancer"


def test_unknown_name_lists_known_names():
    with pytest.raises(InputError) as err:
        load_dataset("cifar-100")
    assert "cifar-100" in str(err.value) and all(name in str(err.value) for name in DATASET_NAMES)


def frame(rows=12):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.integers(0, 5, rows), "c": rng.normal(size=rows)})


def test_csv_string_labels_map_to_sorted_classes(tmp_path):
    df = frame(6)
    df["label"] = ["cat", "dog", "ant", "dog", "cat", "ant"]
    df.to_csv(tmp_path / "pets.csv", index=False)
    ds = load_dataset(str(tmp_path / "pets.csv"))
    assert ds.class_names == ("ant", "cat", "dog") and ds.n_classes == 3
    np.testing.assert_array_equal(ds.y, [1, 2, 0, 2, 1, 0])
    assert ds.x.dtype == np.float32 and ds.x.shape == (6, 3)
    np.testing.assert_allclose(ds.x, df[["a", "b", "c"]].to_numpy(), rtol=1e-6)


def test_csv_integer_labels_and_custom_column(tmp_path):
    df = frame(4)
    df["target"] = [0, 4, 2, 4]
    df.to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(str(tmp_path / "t.csv"), label_column="target")
    assert ds.n_classes == 5 and ds.class_names == ("0", "1", "2", "3", "4")
    np.testing.assert_array_equal(ds.y, [0, 4, 2, 4])


def test_parquet_happy_path(tmp_path):
    pytest.importorskip("pyarrow")
    df = frame(5)
    df["label"] = [1.0, 0.0, 2.0, 1.0, 0.0]  # whole floats are integer labels
    df.to_parquet(tmp_path / "d.parquet")
    ds = load_dataset(str(tmp_path / "d.parquet"))
    np.testing.assert_array_equal(ds.y, [1, 0, 2, 1, 0])
    assert ds.x.shape == (5, 3)


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "d.parquet").write_bytes(b"PAR1 pretend")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match="pip install pyarrow"):
        load_dataset(str(tmp_path / "d.parquet"))


def test_npz_happy_path_with_custom_names(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(4, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", pixels=images, target=np.array([0, 2, 2, 1]))
    ds = load_table_file(tmp_path / "img.npz", x_key="pixels", y_key="target")
    assert ds.x.shape == (4, 1, 5, 5) and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x[:, 0], images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(ds.y, [0, 2, 2, 1])
    np.savez(tmp_path / "tab.npz", x=np.ones((3, 2)), y=np.array(["b", "a", "b"]))
    tab = load_dataset(str(tmp_path / "tab.npz"))
    assert tab.class_names == ("a", "b") and tab.y.tolist() == [1, 0, 1] and tab.x.shape == (3, 2)
    np.savez(tmp_path / "named.npz", x=np.ones((3, 2)), labels=np.array([3, 0, 1]))
    assert load_dataset(str(tmp_path / "named.npz"), label_column="labels").y.tolist() == [3, 0, 1]


def bad_files(tmp_path):
    """name -> (file, fragment the message must contain)."""
    cases = {}

    def csv(name, df):
        df.to_csv(tmp_path / name, index=False)
        return tmp_path / name

    df = frame()
    cases["no label column"] = (csv("nolabel.csv", df), "label column 'label' not found (columns: a, b, c)")
    df = frame().assign(label=np.arange(12) % 3)
    df.loc[3, "b"] = np.nan
    cases["NaN feature"] = (csv("nan.csv", df), "NaN")
    df = frame().assign(label=np.arange(12) % 3)
    df.loc[5, "a"] = np.inf
    cases["inf feature"] = (csv("inf.csv", df), "record 5")
    cases["float labels"] = (csv("float.csv", frame().assign(label=np.linspace(0, 1, 12))), "integers or strings")
    cases["negative labels"] = (csv("neg.csv", frame().assign(label=np.arange(12) % 3 - 1)), ">= 0")
    cases["missing label"] = (csv("nolab.csv", frame().assign(label=[1.0] * 11 + [np.nan])), "missing label")
    cases["text feature"] = (csv("text.csv", frame().assign(city=["x"] * 12, label=0)), "numeric, not: city")
    cases["header only"] = (csv("header.csv", frame(0).assign(label=[])), "no records")
    (tmp_path / "empty.csv").write_bytes(b"")
    cases["empty file"] = (tmp_path / "empty.csv", "empty")
    (tmp_path / "blank.csv").write_text("\n\n")
    cases["blank file"] = (tmp_path / "blank.csv", "empty")
    cases["no such file"] = (tmp_path / "absent.csv", "not found")
    (tmp_path / "data.txt").write_text("a,label\n1,0\n")
    cases["unknown extension"] = (tmp_path / "data.txt", "unknown file type '.txt'")
    np.savez(tmp_path / "nox.npz", features=np.ones((2, 2)), y=np.zeros(2))
    cases["npz missing array"] = (tmp_path / "nox.npz", "array 'x' not found (arrays: features, y)")
    np.savez(tmp_path / "len.npz", x=np.ones((3, 2)), y=np.zeros(2))
    cases["npz length mismatch"] = (tmp_path / "len.npz", "3 records")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 nonsense")
    cases["corrupt npz"] = (tmp_path / "broken.npz", "cannot read")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    cases["corrupt parquet"] = (tmp_path / "broken.parquet", "cannot read")
    return cases


def pytest_generate_tests(metafunc):
    """``case`` takes every name bad_files() defines (its files written once to a scratch folder)."""
    if "case" in metafunc.fixturenames:
        with tempfile.TemporaryDirectory() as scratch:
            metafunc.parametrize("case", list(bad_files(Path(scratch))))


def test_bad_user_files_raise_one_line_input_error(tmp_path, case):
    path, fragment = bad_files(tmp_path)[case]
    with pytest.raises(InputError) as err:
        load_dataset(str(path))
    message = str(err.value)
    assert fragment in message and path.name in message and "\n" not in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dataset_rejects_non_finite_features_naming_the_record(bad):
    x = np.zeros((6, 2, 3), np.float32)
    x[4, 1, 2] = bad
    with pytest.raises(InputError, match="NaN or inf feature in record 4"):
        Dataset("t", x, np.zeros(6, np.int64), 2)
    assert len(Dataset("t", np.zeros((6, 2), np.int64), np.zeros(6, np.int64), 2)) == 6
