"""One training recipe, shared by the target and every reference / shadow model."""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    DP-SGD (torch models; :mod:`miaudit.models.dp_sgd`): on when dp_noise_multiplier (σ) or dp_epsilon
    is set: each example's gradient is clipped to L2 norm dp_max_grad_norm (C), Gaussian noise of std
    σ·C is added to the batch's sum, divided by batch_size. With dp_epsilon, σ is solved by Opacus's
    RDP accountant for (dp_epsilon, dp_delta) from each model's own training-set size and the epochs.
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
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True)  # a bool is not a seed
    dp_noise_multiplier: float | None = Field(None, ge=0)
    dp_epsilon: float | None = Field(None, gt=0)
    dp_delta: float = Field(1e-5, gt=0, lt=1)
    dp_max_grad_norm: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _one_dp_setting(self) -> TrainingRecipe:
        if self.dp_noise_multiplier is not None and self.dp_epsilon is not None:
            raise ValueError("give DP-SGD's dp_epsilon or its dp_noise_multiplier, not both")
        return self

    @property
    def dp(self) -> bool:
        """True when the recipe trains with DP-SGD."""
        return self.dp_noise_multiplier is not None or self.dp_epsilon is not None


def validation_split(n: int, recipe: TrainingRecipe, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, validation positions) among n records: a seeded ``validation_fraction``
    hold-out (at least one record) when recipe.patience > 0 and n >= 2, else everything trains."""
    if recipe.patience == 0 or n < 2:
        return np.arange(n), np.arange(0)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(recipe.validation_fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
