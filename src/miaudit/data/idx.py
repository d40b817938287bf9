"""IDX files (the MNIST family's format) and the image datasets stored in them.

IDX layout: two zero bytes, a data-type code, the number of dimensions d, then d big-endian uint32
sizes, then the values big-endian in C order. Files may be gzipped.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from miaudit.data.datadir import find_dataset_dir
from miaudit.data.dataset import Dataset
from miaudit.errors import InputError

_DTYPE_BY_CODE = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
                  0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODE_BY_DTYPE = {dtype.newbyteorder("="): code for code, dtype in _DTYPE_BY_CODE.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or raw), native byte order, shape as in the header."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise InputError(f"{path}: corrupt or truncated gzip data ({err})") from None
    if len(raw) < 4:
        raise InputError(f"{path}: truncated IDX file ({len(raw)} bytes, no complete header)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPE_BY_CODE or raw[3] == 0:
        raise InputError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()})")
    dtype, ndim = _DTYPE_BY_CODE[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise InputError(f"{path}: truncated IDX header ({ndim} dimensions need {header_size} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "corrupt"
        raise InputError(f"{path}: {problem} IDX file (shape {shape} needs {expected} data bytes, found {found})")
    data = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64; 1-255 dims) as IDX; gzip if *.gz."""
    array = np.asarray(array)
    code = _CODE_BY_DTYPE.get(array.dtype.newbyteorder("="))
    if code is None:
        raise InputError(f"{path}: IDX cannot store dtype {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise InputError(f"{path}: IDX needs 1 to 255 dimensions, array has {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_DTYPE_BY_CODE[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as out:
        out.write(payload)


def read_idx_cached(path: Path) -> np.ndarray:
    """``read_idx`` with an in-process cache keyed on path, size and modification time (read-only array)."""
    stat = path.stat()
    return _read_idx_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _read_idx_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    array = read_idx(path)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class IdxImageSet:
    """One image dataset stored as four IDX files (train/test images and labels) in ``folder/``.

    transposed: images are stored column-major (EMNIST) and must be transposed.
    label_offset: subtracted from the stored labels (EMNIST letters store 1..26).
    """

    name: str
    folder: str
    prefix: str
    test_part: str
    class_names: tuple[str, ...]
    transposed: bool = False
    label_offset: int = 0

    @property
    def files(self) -> tuple[str, str, str, str]:
        """train images, train labels, test images, test labels."""
        return tuple(f"{self.prefix}{part}-{kind}-idx{dims}-ubyte.gz"  # type: ignore[return-value]
                     for part in ("train", self.test_part) for kind, dims in (("images", 3), ("labels", 1)))


_DIGITS = tuple(str(d) for d in range(10))
IMAGE_SETS = {
    "mnist": IdxImageSet("mnist", "mnist", "", "t10k", _DIGITS),
    "fashion-mnist": IdxImageSet("fashion-mnist", "fashion-mnist", "", "t10k", (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
        "Ankle boot")),
    "emnist-digits": IdxImageSet("emnist-digits", "emnist", "emnist-digits-", "test", _DIGITS, transposed=True),
    "emnist-letters": IdxImageSet("emnist-letters", "emnist", "emnist-letters-", "test",
                                  tuple(chr(ord("A") + i) for i in range(26)), transposed=True, label_offset=1),
}


def locate_image_set(spec: IdxImageSet, data_dir: str | Path | None = None) -> Path:
    """The folder holding the dataset's four files; InputError when no data directory has them."""
    return find_dataset_dir(spec.folder, spec.files, data_dir, dataset=spec.name) / spec.folder


def load_image_set(spec: IdxImageSet, data_dir: str | Path | None = None) -> Dataset:
    """Train then test records: x float32 [n, 1, H, W] in [0, 1], y int64 [n]."""
    folder = locate_image_set(spec, data_dir)
    train_images, train_labels, test_images, test_labels = spec.files
    parts = []
    for images_file, labels_file in ((train_images, train_labels), (test_images, test_labels)):
        images = read_idx_cached(folder / images_file)
        labels = read_idx_cached(folder / labels_file)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise InputError(f"{folder / images_file}: expected uint8 images [n, H, W], "
                             f"found {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise InputError(f"{folder / labels_file}: expected {len(images)} labels, found shape {labels.shape}")
        parts.append((images.transpose(0, 2, 1) if spec.transposed else images, labels))
    if parts[0][0].shape[1:] != parts[1][0].shape[1:]:
        raise InputError(f"{spec.name}: train images are {parts[0][0].shape[1:]}, test images {parts[1][0].shape[1:]}")
    n = sum(len(labels) for _, labels in parts)
    x = np.empty((n, 1, *parts[0][0].shape[1:]), np.float32)
    start = 0
    for images, _ in parts:
        np.divide(images, np.float32(255), out=x[start:start + len(images), 0])
        start += len(images)
    y = np.concatenate([labels for _, labels in parts]).astype(np.int64) - spec.label_offset
    return Dataset(spec.name, x, y, len(spec.class_names), spec.class_names)
