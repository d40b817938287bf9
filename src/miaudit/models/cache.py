"""On-disk cache of trained models: content keys, atomic pickle files, safe to kill at any moment."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from miaudit.errors import InputError


def _canonical(value: Any, name: str) -> Any:
    """A JSON-able stand-in for value; arrays become their sha256 over dtype + shape + bytes."""
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(f"{value.dtype.str}|{value.shape}|".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
        return {"__ndarray__": digest.hexdigest()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, BaseModel):
        return {"__model__": type(value).__name__, **_canonical(value.model_dump(mode="json"), name)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__model__": type(value).__name__, **_canonical(fields, name)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # NamedTuple
        return {"__model__": type(value).__name__, **_canonical(value._asdict(), name)}
    if isinstance(value, dict):
        return {str(k): _canonical(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, name) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_canonical(v, name) for v in value)
    if isinstance(value, Path):
        return str(value)
    raise InputError(f"cache key {name}: cannot hash a value of type {type(value).__name__}")


def cache_key(**parts: Any) -> str:
    """sha256 hex digest of the parts as canonical JSON (sorted keys; arrays by dtype, shape, bytes)."""
    text = json.dumps({k: _canonical(v, k) for k, v in parts.items()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_dir() -> Path:
    """$MIAUDIT_CACHE if set, else ~/.cache/miaudit."""
    env = os.environ.get("MIAUDIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "miaudit"


class ModelCache:
    """Pickled objects under ``root/<key[:2]>/<key>.pkl``.

    save() writes a temporary file in the same directory and renames it into place (os.replace), so
    a killed process leaves either the complete old state or the complete new file, never half a file.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise InputError(f"cache key: {key!r} is not a hex digest from cache_key()")
        return self.root / key[:2] / f"{key}.pkl"

    def load(self, key: str) -> object | None:
        """The object saved under key, or None if there is none (or the file cannot be read)."""
        try:
            with self.path(key).open("rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
            return None  # unreadable or from an incompatible version: treat as missing, it is retrained

    def save(self, key: str, obj: object) -> Path:
        """Pickle obj under key atomically; returns the file path."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:12]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()
