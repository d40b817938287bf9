"""Disjoint index sets: target members, target non-members, attacker data; reference-model masks."""
from __future__ import annotations

import numpy as np


def balanced_masks(n_models: int, n_records: int, seed: int) -> np.ndarray:
    """bool [n_models, n_records]: every record is IN for exactly half of the models.

    Each column holds floor(K/2) or ceil(K/2) Trues (exactly K/2 for even K) and each row holds
    about half of the records, so every model trains on ~n_records/2 records.
    """
    if n_models < 1:
        raise ValueError("balanced_masks needs at least one model")
    rng = np.random.default_rng(seed)
    # Column-wise permutations of a fixed half-true pattern, then balance rows by pairing models:
    # model 2j and 2j+1 take complementary halves, so rows have exactly n/2 (±1) and columns K/2.
    masks = np.zeros((n_models, n_records), dtype=bool)
    for j in range(0, n_models - 1, 2):
        perm = rng.permutation(n_records)
        half = perm[: n_records // 2]
        masks[j, half] = True
        masks[j + 1] = ~masks[j]
    if n_models % 2:
        masks[-1, rng.permutation(n_records)[: n_records // 2]] = True
    return masks
