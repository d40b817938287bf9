"""What the signal stage is asked for: the record sets to query the models on and the few settings
that shape the signal matrix (built by the audit from its plan; the signal stage reads no config)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DivergenceHint:
    """The words of the error for non-finite model outputs: the --target name, whether torch trains it
    (then a step size too large is the likely cause), its learning rate and weight decay, and whether the
    inputs are unscaled (--input-scaling none)."""

    target: str
    torch: bool = False
    lr: float = 0.0
    weight_decay: float = 0.0
    unscaled: bool = False


@dataclass(frozen=True, eq=False)
class SignalRequest:
    """The records and settings of one signal matrix.

    pool_x [N, ...] / pool_y int64 [N]: the audited records; record_ids int64 [N] their identities;
    population_x [Z, ...] / population_y [Z]; reference_x [R, ...] / reference_y [R] / reference_masks
    bool [K, R]: what each reference model trained on (pool mode: the audited records, R = N).
    queries: views per record (Q); seed: the views' seed; output_defense: the --output-defense text
    (None: the raw outputs, or labels for a label-only API); test_queries: records the target is asked
    about besides (its test accuracy); chunk / dtype: the on-disk store's records per chunk and dtype.
    """

    pool_x: np.ndarray
    pool_y: np.ndarray
    record_ids: np.ndarray
    population_x: np.ndarray
    population_y: np.ndarray
    reference_x: np.ndarray
    reference_y: np.ndarray
    reference_masks: np.ndarray
    pool_mode: bool
    n_classes: int
    hint: DivergenceHint
    queries: int = 1
    seed: int = 0
    output_defense: str | None = None
    test_queries: int = 0
    chunk: int = 0
    dtype: str = "float32"
