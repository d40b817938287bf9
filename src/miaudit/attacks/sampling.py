"""Subsampling records by identity, not position: the same records are drawn whatever their order."""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele, Lea & Flood 2014), a bijection of uint64 that mixes every
    input bit into every output bit: uint64 [...] -> uint64 [...]."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def identity_keys(ids: np.ndarray, n_models: int, seed: int) -> np.ndarray:
    """uint64 [K, R] pseudo-random key of record ``ids[r]`` (int [R]) under model k and ``seed``: a
    function of (id, k, seed) alone, so sorting by it is a seeded shuffle that ignores positions."""
    base = splitmix64(np.uint64(seed % 2 ** 64))
    per_model = splitmix64(base ^ np.arange(n_models, dtype=np.uint64))[:, None]
    return splitmix64(per_model ^ splitmix64(np.asarray(ids).astype(np.uint64))[None, :])


def order_by_identity(keys: np.ndarray, ids: np.ndarray, models: np.ndarray) -> np.ndarray:
    """Indices sorting rows by (key, id, model): keys uint64 [M], ids int [M], models int [M]; a
    permutation of the rows gives the same rows in the same order."""
    return np.lexsort((models, ids, keys))


def identity_order(ids: np.ndarray | None, n: int) -> np.ndarray:
    """int [n] indices putting records in increasing identity (positions when ids is None): an
    attack that draws random numbers record by record in this order gives every record the same
    draws whatever order the records come in."""
    return np.arange(n) if ids is None else np.argsort(np.asarray(ids), kind="stable")
