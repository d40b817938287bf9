"""Several views of each record, so an attack can query a model more than once per record.

Images: the record itself, its mirror image, then one-pixel shifts (right, left, down, up, and the
mirror shifted); pixels shifted in take the smallest value of x, the background in both [0, 1] and
standardized images. Tabular: the record, then copies with small Gaussian noise (1% of each feature's
standard deviation). The same views are shown to the target and to every reference model.
"""
from __future__ import annotations

import numpy as np

_IMAGE_VIEWS = [(False, 0, 0), (True, 0, 0), (False, 0, 1), (False, 0, -1), (False, 1, 0), (False, -1, 0),
                (True, 0, 1), (True, 0, -1), (True, 1, 0), (True, -1, 0)]
MAX_IMAGE_QUERIES = len(_IMAGE_VIEWS)


def query_views(x: np.ndarray, n_queries: int, seed: int = 0) -> list[np.ndarray]:
    """n_queries arrays shaped like x (float32 [n, ...]); the first one is x itself."""
    if n_queries < 1:
        raise ValueError("n_queries must be at least 1")
    views = [x]
    if x.ndim == 4:
        if n_queries > MAX_IMAGE_QUERIES:
            raise ValueError(f"at most {MAX_IMAGE_QUERIES} queries per image")
        background = float(x.min()) if x.size else 0.0
        for flip, dy, dx in _IMAGE_VIEWS[1:n_queries]:
            v = x[..., ::-1] if flip else x
            views.append(_shift(v, dy, dx, background))
        return views
    rng = np.random.default_rng(seed)
    scale = 0.01 * x.std(axis=0, keepdims=True)
    for _ in range(n_queries - 1):
        views.append((x + rng.standard_normal(x.shape).astype(np.float32) * scale).astype(np.float32))
    return views


def _shift(x: np.ndarray, dy: int, dx: int, fill: float = 0.0) -> np.ndarray:
    """Shift images [n, c, h, w] by (dy, dx) pixels, filling with ``fill``."""
    out = np.full_like(x, fill)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return np.ascontiguousarray(out)
