"""Target models by name: validate a name, fit one target; thin lookups in the family registry (families.py)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from miaudit.errors import InputError
from miaudit.models.cnn_names import SPEC_PREFIX
from miaudit.models.families import family_named, target_names, training_family
from miaudit.models.families import is_torch_name as is_torch_name
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.target import Target
from miaudit.models.torch_families import cnn_plan as cnn_plan
from miaudit.models.torch_families import make_cnn as make_cnn

TARGET_NAMES = target_names()
DEFAULT_HIDDEN = (256,)


@dataclass(frozen=True)
class ModelSpec:
    """A target architecture: its name (one of TARGET_NAMES) and, for ``mlp``, the hidden layer widths."""

    name: str
    hidden: tuple[int, ...] = DEFAULT_HIDDEN


def model_spec(name: str, hidden: Sequence[int] | None = None) -> ModelSpec:
    """A validated ModelSpec; unknown names, bad cnn-spec layer lists and non-positive widths raise InputError."""
    if name.startswith(SPEC_PREFIX):
        from miaudit.models.cnn_spec import parse_spec  # loads torch

        parse_spec(name[len(SPEC_PREFIX):])
    else:
        family_named(name)
    widths = DEFAULT_HIDDEN if hidden is None else tuple(hidden)
    if not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w > 0 for w in widths):
        raise InputError(f"--hidden: layer widths must be positive integers, got {list(widths)}")
    return ModelSpec(name, tuple(int(w) for w in widths))


def is_torch(spec: ModelSpec) -> bool:
    """True for models trained with torch (mlp, CNNs), False for scikit-learn ones."""
    return is_torch_name(spec.name)


def trains_stacked(spec: ModelSpec, recipe: TrainingRecipe) -> bool:
    """True when models of spec train as a stack (mlp; CNNs without dropout or early stopping)."""
    return training_family(spec.name, recipe).stacked


def stack_target(name: str, stack) -> Target:
    """The Target of a one-model stack (MLPStack or CNNStack): model 0 of the collection."""
    from miaudit.models.reference_models import collection_model

    return collection_model(stack, 0, name)


def check_image_input(spec: ModelSpec, x: np.ndarray, dataset_name: str | None = None) -> None:
    """InputError unless x is images [n, channels, height, width] when spec is a CNN."""
    family_named(spec.name).check_input(spec, x, dataset_name)


def fit_single(spec: ModelSpec, x: np.ndarray, y: np.ndarray, n_classes: int, recipe: TrainingRecipe,
               seed: int, precision: str = "auto", dataset_name: str | None = None,
               progress: Callable[[float], None] | None = None, device: str = "cpu") -> Target:
    """Train one model of ``spec`` on x float32 [n, ...], y int64 [n] with labels in [0, n_classes).

    The family training spec under the recipe fits it (families.py): mlp as a one-model MLPStack, CNNs
    as a one-model CNNStack unless the recipe has dropout or early stopping (then one torch module,
    recipe.dropout going into the net), scikit-learn models on x flattened to [n, d]. The same seed gives
    the same model. progress(fraction) is called with the fraction of training done (torch models only).
    device ("cpu" or "cuda", resolved by perf.resolve_device): where torch models train.
    """
    if len(x) != len(y):
        raise InputError(f"training data: {len(x)} feature rows but {len(y)} labels")
    family = training_family(spec.name, recipe)
    family.check_input(spec, x, dataset_name)
    return family.fit(spec, x, y, n_classes, recipe, seed, precision, progress=progress, device=device)
