"""On-disk cache of trained models: content keys, verified atomic pickle files, safe to kill at any moment."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Callable
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


_MAGIC = b"miaudit-cache-v2\n"
_HEADER = len(_MAGIC) + 2 * (64 + 1)  # magic, the key and the payload's sha256 (hex, one line each)


def check_cache_dir(root: str | Path) -> Path:
    """root as a Path; InputError unless it is (or can be created as) a writable directory."""
    root = Path(root).expanduser()
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"--cache-dir: {root} is not a directory ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"--cache-dir: {root} is not writable")
    return root


class ModelCache:
    """Verified pickles under ``root/<key[:2]>/<key>.pkl``.

    Each file holds a header (a magic line, the key it was saved under, the sha256 of the pickled
    payload) and then the payload. load() checks both before unpickling: an entry whose bytes were
    changed, that was truncated, or that was copied over another key's file is reported (one warning
    line naming the file), deleted and reported missing, so it is retrained. save() writes a
    temporary file in the same directory and renames it into place (os.replace), so a killed process
    leaves either the complete old state or the complete new file, never half a file.
    ``discarded`` lists the paths of the entries load() threw away.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = check_cache_dir(root)
        self.discarded: list[Path] = []
        remove_stale_writes(self.root)

    def path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise InputError(f"cache key: {key!r} is not a hex digest from cache_key()")
        return self.root / key[:2] / f"{key}.pkl"

    def load(self, key: str) -> object | None:
        """The object saved under key, or None if there is none or the entry fails its checks."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            return self._discard(path, f"unreadable: {err.strerror or err}")
        problem = _entry_problem(blob, key)
        if problem:
            return self._discard(path, problem)
        try:
            return pickle.loads(blob[_HEADER:])
        except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError, TypeError) as err:
            return self._discard(path, f"does not unpickle with this code ({type(err).__name__})")

    def _discard(self, path: Path, problem: str) -> None:
        warnings.warn(f"model cache: discarded {path}: {problem}; retraining it", RuntimeWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        self.discarded.append(path)
        return None

    def save(self, key: str, obj: object) -> Path:
        """Pickle obj under key atomically, with its key and content hash; returns the file path."""
        target = self.path(key)
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        header = _MAGIC + key.encode() + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:12]}.{_HOST}.{os.getpid()}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()


def load_entry(cache: ModelCache | None, key: str | None, valid: Callable[[object], bool]) -> object | None:
    """The object cached under key when there is one and ``valid(obj)``; None without a cache or key."""
    if cache is None or key is None:
        return None
    obj = cache.load(key)
    return obj if obj is not None and valid(obj) else None


def save_entry(cache: ModelCache | None, key: str | None, obj: object) -> None:
    """Save obj to the cache (nothing without one); a model that cannot be pickled is kept in memory with a
    warning."""
    if cache is None or key is None:
        return
    try:
        cache.save(key, obj)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, OSError) as err:
        warnings.warn(f"model cache: could not save a model ({err}); it will be retrained next time",
                      RuntimeWarning, stacklevel=3)


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
STALE_AFTER_S = 24 * 3600  # a temporary file this old is a dead write, whoever wrote it


def remove_stale_writes(root: Path) -> list[Path]:
    """Delete the temporary files of saves that were killed before their rename (``.<key>.<host>.<pid>.
    <random>.tmp``): those of a process of this host that no longer runs, and any older than a day
    (another host's, or one named before the pid was part of the name). Returns what was deleted."""
    removed = []
    for tmp in root.glob("??/.*.tmp"):
        parts = tmp.name.split(".")
        try:
            dead = len(parts) == 6 and parts[2] == _HOST and not _running(int(parts[3]))
            if dead or time.time() - tmp.stat().st_mtime > STALE_AFTER_S:
                tmp.unlink()
                removed.append(tmp)
        except (OSError, ValueError):  # gone meanwhile, or not ours to read: leave it
            continue
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _entry_problem(blob: bytes, key: str) -> str | None:
    """Why a cache file's bytes are not a valid entry for key, or None when they are."""
    if len(blob) <= _HEADER or not blob.startswith(_MAGIC):
        return "not a miaudit cache entry (truncated or from another version)"
    saved_key, digest = blob[len(_MAGIC):_HEADER].split(b"\n")[:2]
    if saved_key != key.encode():
        return f"saved under another key ({saved_key[:12].decode(errors='replace')}...), not {key[:12]}..."
    if hashlib.sha256(blob[_HEADER:]).hexdigest().encode() != digest:
        return "content hash mismatch (corrupt or truncated)"
    return None
