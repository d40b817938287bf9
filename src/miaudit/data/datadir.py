"""Where dataset files live: the ordered list of data directories and the lookup of one dataset folder.

Search order: the explicit setting (CLI ``--data-dir``), the environment variable ``MIAUDIT_DATA``,
``../shared/data`` relative to the current directory, ``../shared/data`` relative to the repository
root, ``/usr/share/datasets`` (where Debian's dataset packages install).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from miaudit.errors import InputError

ENV_VAR = "MIAUDIT_DATA"
REPO_ROOT = Path(__file__).resolve().parents[3]
SYSTEM_DATA_DIR = Path("/usr/share/datasets")


def check_data_dir(explicit: str | Path | None) -> None:
    """InputError unless an explicitly given data directory (``--data-dir``) is an existing directory."""
    if explicit is None:
        return
    place = Path(explicit).expanduser()
    if not str(explicit).strip() or not place.is_dir():
        what = "is a file" if place.is_file() else "does not exist"
        raise InputError(f"--data-dir: {str(explicit)!r} {what}; give a directory that holds the dataset folders")


def candidate_dirs(explicit: str | Path | None = None) -> list[Path]:
    """Every place searched, in order, whether it exists or not (duplicates removed)."""
    places: list[Path] = []
    if explicit:
        places.append(Path(explicit).expanduser())
    if os.environ.get(ENV_VAR):
        places.append(Path(os.environ[ENV_VAR]).expanduser())
    places += [Path.cwd() / ".." / "shared" / "data", REPO_ROOT / ".." / "shared" / "data", SYSTEM_DATA_DIR]
    unique: list[Path] = []
    seen: set[Path] = set()
    for place in places:
        resolved = place.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(resolved)
    return unique


def data_dirs(explicit: str | Path | None = None) -> list[Path]:
    """The existing data directories, in search order, without duplicates."""
    return [place for place in candidate_dirs(explicit) if place.is_dir()]


def find_dataset_dir(folder: str, required_files: Iterable[str], explicit: str | Path | None = None,
                     dataset: str | None = None) -> Path:
    """The first data directory that holds ``folder/`` with every one of ``required_files``.

    Returns the data directory itself (the files are at ``result / folder / name``). Raises
    InputError naming the dataset, the files, every place searched and how to point miaudit at them.
    """
    required = list(required_files)
    for place in data_dirs(explicit):
        if all((place / folder / name).is_file() for name in required):
            return place
    searched = "; ".join(
        str(place) + ("" if place.is_dir() else " (no such directory)") for place in candidate_dirs(explicit))
    raise InputError(
        f"dataset {dataset or folder}: {folder}/{{{', '.join(required)}}} not found in any data directory "
        f"(searched: {searched}); put the files there, or set {ENV_VAR} or --data-dir to the directory "
        f"that contains {folder}/")
