"""The output options of a served model, as pure functions of its probabilities [n, C] (float64)."""
from __future__ import annotations

import numpy as np

from miaudit.serve.settings import OutputOption


def top_k(probabilities: np.ndarray, k: int) -> np.ndarray:
    """[n, C]: each row's k largest probabilities kept (ties: the lower class first), the rest 0;
    rows are not renormalised."""
    p = np.asarray(probabilities, np.float64)
    if k >= p.shape[1]:
        return p.copy()
    keep = np.argsort(-p, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(p)
    np.put_along_axis(out, keep, np.take_along_axis(p, keep, axis=1), axis=1)
    return out


def rounded(probabilities: np.ndarray, decimals: int) -> np.ndarray:
    """[n, C] probabilities rounded to ``decimals`` decimal places (half to even)."""
    return np.round(np.asarray(probabilities, np.float64), decimals)


def labels(probabilities: np.ndarray) -> np.ndarray:
    """int64 [n]: the most likely class (the lowest on ties)."""
    return np.asarray(probabilities).argmax(axis=1).astype(np.int64)


def apply_output(probabilities: np.ndarray, option: OutputOption) -> dict[str, list]:
    """The /v1/predict answer for probabilities [n, C]: {"probabilities": [[...]]} or {"labels": [...]}."""
    if option.kind == "label":
        return {"labels": labels(probabilities).tolist()}
    if option.kind == "top-k":
        return {"probabilities": top_k(probabilities, option.value).tolist()}
    if option.kind == "rounded":
        return {"probabilities": rounded(probabilities, option.value).tolist()}
    return {"probabilities": np.asarray(probabilities, np.float64).tolist()}
