"""Target models by name: validate a name, build its torch module, fit one target."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from miaudit.errors import InputError
from miaudit.models.cnn_models import CNNStack
from miaudit.models.cnn_spec import SPEC_PREFIX, Plan, build_module, is_cnn_name, parse_spec, plan_layers, preset_layers
from miaudit.models.cnn_stack import stackable, train_cnn_stack
from miaudit.models.nets import SmallCNN, TutorialCNN
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.sklearn_models import SKLEARN_NAMES, fit_sklearn_model
from miaudit.models.target import Target
from miaudit.models.train import seeded_module, train_torch_model
from miaudit.models.wrappers import SklearnTarget, StackTarget, TorchTarget

TARGET_NAMES = ("mlp", "cnn", "small-cnn", "logreg", "tree", "naive-bayes", "forest", "svm")
TORCH_NAMES = ("mlp", "cnn", "small-cnn")
CNN_NAMES = ("cnn", "small-cnn")  # also accepted: the mnist-cnn preset and cnn-spec:<layers> (cnn_spec.py)
DEFAULT_HIDDEN = (256,)


@dataclass(frozen=True)
class ModelSpec:
    """A target architecture: its name (one of TARGET_NAMES) and, for ``mlp``, the hidden layer widths."""

    name: str
    hidden: tuple[int, ...] = DEFAULT_HIDDEN


def model_spec(name: str, hidden: Sequence[int] | None = None) -> ModelSpec:
    """A validated ModelSpec; unknown names, bad cnn-spec layer lists and non-positive widths raise InputError."""
    if name.startswith(SPEC_PREFIX):
        parse_spec(name[len(SPEC_PREFIX):])
    elif name not in TARGET_NAMES and not is_cnn_name(name):
        raise InputError(f"--target: unknown model {name!r}; choose one of {', '.join(TARGET_NAMES)}, "
                         f"mnist-cnn or {SPEC_PREFIX}<layers>")
    widths = DEFAULT_HIDDEN if hidden is None else tuple(hidden)
    if not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w > 0 for w in widths):
        raise InputError(f"--hidden: layer widths must be positive integers, got {list(widths)}")
    return ModelSpec(name, tuple(int(w) for w in widths))


def is_torch(spec: ModelSpec) -> bool:
    """True for models trained with torch (mlp, CNNs), False for scikit-learn ones."""
    return is_torch_name(spec.name)


def is_torch_name(name: str) -> bool:
    """True for target names trained with torch (mlp, the CNN presets, cnn-spec:<layers>)."""
    return name in TORCH_NAMES or is_cnn_name(name)


def cnn_plan(spec: ModelSpec, feature_shape: tuple[int, ...], n_classes: int) -> Plan:
    """The layer plan of a CNN spec for images of feature_shape (channels, height, width)."""
    shape = tuple(int(s) for s in feature_shape)
    return plan_layers(preset_layers(spec.name, shape, n_classes), shape, n_classes)


def trains_stacked(spec: ModelSpec, recipe: TrainingRecipe) -> bool:
    """True when models of spec train as a stack (mlp; CNNs without dropout or early stopping)."""
    return spec.name == "mlp" or (is_cnn_name(spec.name) and stackable(recipe))


def stack_target(name: str, stack) -> Target:
    """The Target of a one-model stack: a StackTarget for an MLPStack, a TorchTarget (an
    nn.Sequential with the trained parameters) for a CNNStack."""
    if isinstance(stack, CNNStack):
        return TorchTarget(name, stack.module(0), stack.n_classes)
    return StackTarget(name, stack)


def check_image_input(spec: ModelSpec, x: np.ndarray, dataset_name: str | None = None) -> None:
    """InputError unless x is images [n, channels, height, width] when spec is a CNN."""
    if is_cnn_name(spec.name) and np.ndim(x) != 4:
        data = dataset_name or "the data"
        raise InputError(f"--target {spec.name} needs image data; {data} is tabular (features {tuple(x.shape[1:])})")


def make_cnn(spec: ModelSpec, feature_shape: tuple[int, ...], n_classes: int, dropout: float) -> nn.Module:
    """A freshly initialised CNN for images of feature_shape (channels, height, width)."""
    channels, height, width = feature_shape
    if spec.name not in ("cnn", "small-cnn"):
        return build_module(cnn_plan(spec, feature_shape, n_classes))
    net = TutorialCNN if spec.name == "cnn" else SmallCNN
    return net(channels, (height, width), n_classes, dropout)


def fit_single(spec: ModelSpec, x: np.ndarray, y: np.ndarray, n_classes: int, recipe: TrainingRecipe,
               seed: int, precision: str = "auto", dataset_name: str | None = None,
               progress: Callable[[float], None] | None = None, device: str = "cpu") -> Target:
    """Train one model of ``spec`` on x float32 [n, ...], y int64 [n] with labels in [0, n_classes).

    mlp trains as a one-model MLPStack, CNNs as a one-model CNNStack (cnn_stack.py) unless the recipe
    has dropout or early stopping: then cnn / small-cnn train with :func:`train_torch_model` (recipe.dropout
    goes into the net), other CNNs (no dropout layers) likewise. scikit-learn models on x flattened to
    [n, d]. The same seed gives the same model.
    progress(fraction) is called with the fraction of training done (torch models only). device ("cpu" or
    "cuda", resolved by perf.resolve_device): where torch models train (scikit-learn ones: the CPU).
    """
    report = progress or (lambda fraction: None)
    if len(x) != len(y):
        raise InputError(f"training data: {len(x)} feature rows but {len(y)} labels")
    check_image_input(spec, x, dataset_name)
    if spec.name == "mlp":
        from miaudit.models.stack import train_mlp_stack

        steps = recipe.epochs * -(-len(x) // recipe.batch_size)
        stack = train_mlp_stack(x, y, np.ones((1, len(x)), bool), n_classes, spec.hidden, recipe, [seed],
                                precision=precision, progress=lambda done: report(done / steps), device=device)
        return StackTarget(spec.name, stack)
    if is_cnn_name(spec.name) and stackable(recipe):
        plan = cnn_plan(spec, x.shape[1:], n_classes)
        steps = recipe.epochs * -(-len(x) // recipe.batch_size)
        stack = train_cnn_stack(plan, x, y, np.ones((1, len(x)), bool), recipe, [seed], precision,
                                progress=lambda done: report(done / steps), device=device)
        return stack_target(spec.name, stack)
    if is_cnn_name(spec.name):
        if spec.name not in ("cnn", "small-cnn") and recipe.dropout:
            raise InputError(f"--dropout: {spec.name} has no dropout layers; use --dropout 0")
        module = seeded_module(lambda: make_cnn(spec, x.shape[1:], n_classes, recipe.dropout), seed)
        trained = train_torch_model(module, x, y, recipe, seed, precision,
                                    progress=lambda epochs: report(epochs / recipe.epochs), device=device)
        return TorchTarget(spec.name, trained, n_classes)
    assert spec.name in SKLEARN_NAMES
    return SklearnTarget(spec.name, fit_sklearn_model(spec.name, x, y, seed), n_classes)
