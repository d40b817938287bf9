"""IDX reading/writing and the MNIST-family loaders, on small fixtures written in the real file layout."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import idx, load_dataset
from miaudit.data.idx import IMAGE_SETS, read_idx, write_idx
from miaudit.errors import InputError

REAL_FASHION = Path("/work/shared/data/fashion-mnist")


def write_image_set(root: Path, name: str, n_train: int = 6, n_test: int = 4, labels=None, seed: int = 0):
    """Write the four IDX files of IMAGE_SETS[name] under root/<folder>/; return (images, labels) as stored."""
    spec = IMAGE_SETS[name]
    rng = np.random.default_rng(seed)
    folder = root / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    n = n_train + n_test
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    if labels is None:
        labels = (np.arange(n) % len(spec.class_names) + spec.label_offset).astype(np.uint8)
    train_images, train_labels, test_images, test_labels = spec.files
    write_idx(folder / train_images, images[:n_train])
    write_idx(folder / train_labels, labels[:n_train])
    write_idx(folder / test_images, images[n_train:])
    write_idx(folder / test_labels, labels[n_train:])
    return images, labels


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (np.random.default_rng(1).normal(size=(3, 5, 7)) * 50).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 5, 7)
    np.testing.assert_array_equal(back, array)
    assert ((tmp_path / name).read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_idx_header_is_the_standard_layout(tmp_path):
    write_idx(tmp_path / "labels.idx", np.array([7, 2, 1], np.uint8))
    assert (tmp_path / "labels.idx").read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])
    write_idx(tmp_path / "ints.idx", np.array([[1, 256]], np.int32))
    raw = (tmp_path / "ints.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 2]) and raw[12:] == bytes([0, 0, 0, 1, 0, 0, 1, 0])


def test_truncated_and_corrupt_files_raise_input_error(tmp_path):
    write_idx(tmp_path / "ok.idx", np.arange(100, dtype=np.uint8).reshape(10, 10))
    raw = (tmp_path / "ok.idx").read_bytes()
    cases = {
        "short.idx": raw[:-5],
        "long.idx": raw + b"\0",
        "header.idx": raw[:6],
        "tiny.idx": raw[:2],
        "magic.idx": b"\x08\x03" + raw[2:],
        "dtype.idx": raw[:2] + b"\x07" + raw[3:],
        "cut.idx.gz": gzip.compress(raw)[:-12],
        "garbage.idx.gz": b"\x1f\x8b" + b"not really gzip data",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=name.replace(".", r"\.")):
            read_idx(tmp_path / name)
    with pytest.raises(InputError, match="truncated"):
        read_idx(tmp_path / "short.idx")
    with pytest.raises(InputError, match="not found"):
        read_idx(tmp_path / "missing.idx.gz")
    with pytest.raises(InputError, match="dtype"):
        write_idx(tmp_path / "x.idx", np.zeros(3, np.uint16))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_family_concatenates_train_then_test(tmp_path, name):
    images, labels = write_image_set(tmp_path, name)
    ds = load_dataset(name, data_dir=tmp_path)
    assert ds.name == name and len(ds) == 10 and ds.n_classes == 10
    assert ds.x.dtype == np.float32 and ds.x.shape == (10, 1, 28, 28)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_allclose(ds.x[:, 0], images / 255.0, atol=1e-7)
    assert ds.x[0, 0, 0, 0] == 0.0 and ds.x[0, 0, 0, 1] == 1.0
    expected_first = "T-shirt/top" if name == "fashion-mnist" else "0"
    assert ds.class_names[0] == expected_first and len(ds.class_names) == 10


def test_emnist_digits_are_transposed(tmp_path):
    images, labels = write_image_set(tmp_path, "emnist-digits")
    ds = load_dataset("emnist-digits", data_dir=tmp_path)
    assert ds.x.shape == (10, 1, 28, 28)
    np.testing.assert_allclose(ds.x[:, 0], images.transpose(0, 2, 1) / 255.0, atol=1e-7)
    assert not np.allclose(ds.x[:, 0], images / 255.0)
    np.testing.assert_array_equal(ds.y, labels)


def test_emnist_letters_relabel_1_to_26_as_0_to_25(tmp_path):
    stored = np.array([1, 26, 2, 13, 26, 1, 5, 7, 9, 3], np.uint8)
    images, _ = write_image_set(tmp_path, "emnist-letters", labels=stored)
    ds = load_dataset("emnist-letters", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.y, stored.astype(np.int64) - 1)
    assert ds.n_classes == 26 and ds.class_names[0] == "A" and ds.class_names[25] == "Z"
    np.testing.assert_allclose(ds.x[3, 0], images[3].T / 255.0, atol=1e-7)


def test_emnist_letters_label_zero_is_rejected(tmp_path):
    write_image_set(tmp_path, "emnist-letters", labels=np.zeros(10, np.uint8))
    with pytest.raises(InputError, match="labels"):
        load_dataset("emnist-letters", data_dir=tmp_path)


def test_labels_count_must_match_images(tmp_path):
    write_image_set(tmp_path, "mnist")
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(InputError, match="t10k-labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_missing_emnist_names_dataset_files_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MIAUDIT_DATA", str(tmp_path))
    with pytest.raises(InputError) as err:
        load_dataset("emnist-digits", data_dir=tmp_path)
    message = str(err.value)
    assert "emnist-digits" in message and "emnist-digits-train-images-idx3-ubyte.gz" in message
    assert str(tmp_path) in message and "MIAUDIT_DATA" in message and "--data-dir" in message
    assert "\n" not in message


def test_second_load_reads_no_file(tmp_path, monkeypatch):
    write_image_set(tmp_path, "mnist", seed=3)
    calls = []
    real_read = idx.read_idx
    monkeypatch.setattr(idx, "read_idx", lambda path: calls.append(path) or real_read(path))
    first = load_dataset("mnist", data_dir=tmp_path)
    second = load_dataset("mnist", data_dir=tmp_path)
    assert len(calls) == 4
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.y, second.y)


@pytest.mark.skipif(not (REAL_FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="real data absent")
def test_real_fashion_mnist_loads():
    ds = load_dataset("fashion-mnist", data_dir=REAL_FASHION.parent)
    assert len(ds) == 70_000 and ds.x.shape == (70_000, 1, 28, 28)
    assert set(np.unique(ds.y)) == set(range(10))
    assert np.bincount(ds.y).tolist() == [7000] * 10  # 6,000 train + 1,000 test per class
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
