"""Target models by name: validate a name, build its torch module, fit one target."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from miaudit.errors import InputError
from miaudit.models.nets import SmallCNN, TutorialCNN
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.sklearn_models import SKLEARN_NAMES, fit_sklearn_model
from miaudit.models.target import Target
from miaudit.models.train import seeded_module, train_torch_model
from miaudit.models.wrappers import SklearnTarget, StackTarget, TorchTarget

TARGET_NAMES = ("mlp", "cnn", "small-cnn", "logreg", "tree", "naive-bayes", "forest", "svm")
TORCH_NAMES = ("mlp", "cnn", "small-cnn")
CNN_NAMES = ("cnn", "small-cnn")
DEFAULT_HIDDEN = (256,)


@dataclass(frozen=True)
class ModelSpec:
    """A target architecture: its name (one of TARGET_NAMES) and, for ``mlp``, the hidden layer widths."""

    name: str
    hidden: tuple[int, ...] = DEFAULT_HIDDEN


def model_spec(name: str, hidden: Sequence[int] | None = None) -> ModelSpec:
    """A validated ModelSpec; unknown names and non-positive widths raise InputError."""
    if name not in TARGET_NAMES:
        raise InputError(f"--target: unknown model {name!r}; choose one of {', '.join(TARGET_NAMES)}")
    widths = DEFAULT_HIDDEN if hidden is None else tuple(hidden)
    if not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w > 0 for w in widths):
        raise InputError(f"--hidden: layer widths must be positive integers, got {list(widths)}")
    return ModelSpec(name, tuple(int(w) for w in widths))


def is_torch(spec: ModelSpec) -> bool:
    """True for models trained with torch (mlp, cnn, small-cnn), False for scikit-learn ones."""
    return spec.name in TORCH_NAMES


def check_image_input(spec: ModelSpec, x: np.ndarray, dataset_name: str | None = None) -> None:
    """InputError unless x is images [n, channels, height, width] when spec is a CNN."""
    if spec.name in CNN_NAMES and np.ndim(x) != 4:
        data = dataset_name or "the data"
        raise InputError(f"--target {spec.name} needs image data; {data} is tabular (features {tuple(x.shape[1:])})")


def make_cnn(spec: ModelSpec, feature_shape: tuple[int, ...], n_classes: int, dropout: float) -> nn.Module:
    """A freshly initialised CNN for images of feature_shape (channels, height, width)."""
    channels, height, width = feature_shape
    net = TutorialCNN if spec.name == "cnn" else SmallCNN
    return net(channels, (height, width), n_classes, dropout)


def fit_single(spec: ModelSpec, x: np.ndarray, y: np.ndarray, n_classes: int, recipe: TrainingRecipe,
               seed: int, precision: str = "auto", dataset_name: str | None = None,
               progress: Callable[[float], None] | None = None) -> Target:
    """Train one model of ``spec`` on x float32 [n, ...], y int64 [n] with labels in [0, n_classes).

    mlp trains as a one-model MLPStack, cnn / small-cnn with :func:`train_torch_model` (recipe.dropout
    goes into the net), scikit-learn models on x flattened to [n, d]. The same seed gives the same model.
    progress(fraction) is called with the fraction of training done (torch models only).
    """
    report = progress or (lambda fraction: None)
    if len(x) != len(y):
        raise InputError(f"training data: {len(x)} feature rows but {len(y)} labels")
    check_image_input(spec, x, dataset_name)
    if spec.name == "mlp":
        from miaudit.models.stack import train_mlp_stack

        steps = recipe.epochs * -(-len(x) // recipe.batch_size)
        stack = train_mlp_stack(x, y, np.ones((1, len(x)), bool), n_classes, spec.hidden, recipe, [seed],
                                precision=precision, progress=lambda done: report(done / steps))
        return StackTarget(spec.name, stack)
    if spec.name in CNN_NAMES:
        module = seeded_module(lambda: make_cnn(spec, x.shape[1:], n_classes, recipe.dropout), seed)
        trained = train_torch_model(module, x, y, recipe, seed, precision,
                                    progress=lambda epochs: report(epochs / recipe.epochs))
        return TorchTarget(spec.name, trained, n_classes)
    assert spec.name in SKLEARN_NAMES
    return SklearnTarget(spec.name, fit_sklearn_model(spec.name, x, y, seed), n_classes)
