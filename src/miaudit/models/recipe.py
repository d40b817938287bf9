"""One training recipe, shared by the target and every reference / shadow model."""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = 2**32 - 1  # numpy's SeedSequence and torch's generators take any seed in [0, 2**32)
MAX_EPOCHS = 10_000  # far beyond any published recipe; training time grows linearly with it


class TrainingRecipe(BaseModel):
    """How a torch model is trained. scikit-learn models use only ``seed`` (and their own defaults).

    lr is the optimizer step size; weight_decay is the L2 coefficient (added to the loss for Adam,
    decoupled for AdamW); dropout is the drop probability of hidden layers; epochs count full passes
    over the model's own training subset; patience > 0 turns on early stopping: training ends after
    ``patience`` epochs without a lower mean cross-entropy on a seeded ``validation_fraction`` of the
    model's own subset (held out from training), and the weights of the best epoch are kept;
    label_smoothing is the ε of the smoothed targets (1 - ε) one-hot + ε / C. Every float is finite.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    epochs: int = Field(30, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    patience: int = Field(0, ge=0)
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)


def validation_split(n: int, recipe: TrainingRecipe, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, validation positions) among n records: a seeded ``validation_fraction``
    hold-out (at least one record) when recipe.patience > 0 and n >= 2, else everything trains."""
    if recipe.patience == 0 or n < 2:
        return np.arange(n), np.arange(0)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(recipe.validation_fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
