"""One training recipe, shared by the target and every reference / shadow model."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = 2**32 - 1  # numpy's SeedSequence and torch's generators take any seed in [0, 2**32)
MAX_EPOCHS = 10_000  # far beyond any published recipe; training time grows linearly with it


class TrainingRecipe(BaseModel):
    """How a torch model is trained. scikit-learn models use only ``seed`` (and their own defaults).

    lr is the optimizer step size; weight_decay is the L2 coefficient (added to the loss for Adam,
    decoupled for AdamW); dropout is the drop probability of hidden layers; epochs count full passes
    over the model's own training subset; patience > 0 turns on early stopping on a 10% held-out split.
    Every float is finite.
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
    seed: int = Field(0, ge=0, le=MAX_SEED)
