"""The torch model families: mlp (MLPStack), CNNs trained stacked (CNNStack), CNNs one at a time.

All three are torch, white-box, DP-able and export to ONNX. Their trainers load torch, so they are
imported inside the methods: this module (and the family registry) stays importable without torch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np

from miaudit.errors import InputError
from miaudit.models.cnn_names import DROPOUT_PRESETS, is_cnn_name
from miaudit.models.family import ModelFamily, TrainingJob

# The modules whose code decides a trained torch model (the cache key's training code).
TORCH_CODE = ("miaudit.models.stack", "miaudit.models.stack_dp", "miaudit.models.stack_workers",
              "miaudit.models.stack_early_stopping", "miaudit.models.denormals", "miaudit.models.devices",
              "miaudit.models.fused_adam", "miaudit.models.mlp_stack", "miaudit.models.dp_sgd",
              "miaudit.models.train", "miaudit.models.nets", "miaudit.models.torch_families",
              "miaudit.models.recipe", "miaudit.models.wrappers", "miaudit.models.cnn_stack",
              "miaudit.models.cnn_models", "miaudit.models.cnn_spec", "miaudit.models.cnn_names")


def _steps(n: int, recipe) -> int:
    return recipe.epochs * -(-n // recipe.batch_size)


def _quiet(fraction: float) -> None:
    return None


def cnn_plan(spec, feature_shape: tuple[int, ...], n_classes: int):
    """The layer plan (cnn_spec.Plan) of a CNN spec for images of feature_shape (channels, height, width)."""
    from miaudit.models.cnn_spec import plan_layers, preset_layers

    shape = tuple(int(s) for s in feature_shape)
    return plan_layers(preset_layers(spec.name, shape, n_classes), shape, n_classes)


def make_cnn(spec, feature_shape: tuple[int, ...], n_classes: int, dropout: float):
    """A freshly initialised CNN (nn.Module) for images of feature_shape (channels, height, width)."""
    from miaudit.models.cnn_spec import build_module
    from miaudit.models.nets import SmallCNN, TutorialCNN

    channels, height, width = feature_shape
    if spec.name not in DROPOUT_PRESETS:
        return build_module(cnn_plan(spec, feature_shape, n_classes))
    net = TutorialCNN if spec.name == "cnn" else SmallCNN
    return net(channels, (height, width), n_classes, dropout)


def mlp_state_checker(widths: tuple[int, ...]) -> Callable[[object], bool]:
    """Does a cached object look like MLPStack.state() of an MLP with these layer widths?"""
    def valid(state: object) -> bool:
        if not isinstance(state, dict) or len(state) != 2 * (len(widths) - 1):
            return False
        for i, (a, b) in enumerate(pairwise(widths)):
            w, bias = state.get(f"w{i}"), state.get(f"b{i}")
            if not (isinstance(w, np.ndarray) and w.shape == (a, b) and isinstance(bias, np.ndarray)
                    and bias.shape == (b,)):
                return False
        return True

    return valid


class TorchFamily(ModelFamily):
    """What the torch families share: torch, white-box, DP-able, exported to ONNX."""

    is_torch = True
    white_box = True
    export_suffix = ".onnx"
    dp = True
    code_modules = TORCH_CODE


class MLPFamily(TorchFamily):
    """mlp: K MLPs trained at once as one MLPStack (stack.py); a state is MLPStack.state(j)."""

    name = "mlp"
    target_names = ("mlp",)
    stacked = True

    def fit(self, spec, x, y, n_classes, recipe, seed, precision="auto", progress=None, device="cpu"):
        from miaudit.models.stack import train_mlp_stack
        from miaudit.models.wrappers import StackTarget

        report, steps = progress or _quiet, _steps(len(x), recipe)
        stack = train_mlp_stack(x, y, np.ones((1, len(x)), bool), n_classes, spec.hidden, recipe, [seed],
                                precision=precision, progress=lambda done: report(done / steps), device=device)
        return StackTarget(spec.name, stack)

    def train_chunk(self, job: TrainingJob, masks: np.ndarray, seeds: Sequence[int], progress=None,
                    indices=None) -> list:
        from miaudit.models.stack import train_mlp_stack

        stack = train_mlp_stack(job.x, job.y, masks, job.n_classes, job.spec.hidden, job.recipe, list(seeds),
                                job.precision, progress, device=job.device)
        return [stack.state(j) for j in range(len(seeds))]

    def _widths(self, job: TrainingJob) -> tuple[int, ...]:
        return (int(np.prod(job.feature_shape)), *job.spec.hidden, job.n_classes)

    def state_check(self, job: TrainingJob) -> Callable[[object], bool]:
        return mlp_state_checker(self._widths(job))

    def train_flops(self, job: TrainingJob, n_samples: int) -> float:
        from miaudit.models.stack import mlp_train_flops

        return mlp_train_flops(self._widths(job)[0], job.spec.hidden, job.n_classes, n_samples)

    def collection(self, job: TrainingJob, states: list):
        from miaudit.models.mlp_stack import MLPStack

        return MLPStack.from_states(states)


class CNNFamily(TorchFamily):
    """What the CNN families share: their names and the image-input check."""

    target_names = DROPOUT_PRESETS  # listed; also accepted: mnist-cnn and cnn-spec:<layers> (cnn_names.py)

    def accepts(self, name: str) -> bool:
        return is_cnn_name(name)

    def check_input(self, spec, x, dataset_name=None) -> None:
        if np.ndim(x) != 4:
            data = dataset_name or "the data"
            raise InputError(f"--target {spec.name} needs image data; {data} is tabular "
                             f"(features {tuple(np.shape(x)[1:])})")


class StackedCNNFamily(CNNFamily):
    """CNNs without dropout or early stopping: K at once as one CNNStack (grouped convolutions,
    cnn_stack.py); a state is CNNStack.state(j)."""

    name = "cnn-stack"
    stacked = True

    def trains(self, recipe) -> bool:
        from miaudit.models.cnn_stack import stackable

        return stackable(recipe)

    def fit(self, spec, x, y, n_classes, recipe, seed, precision="auto", progress=None, device="cpu"):
        from miaudit.models.cnn_stack import train_cnn_stack
        from miaudit.models.wrappers import TorchTarget

        report, steps = progress or _quiet, _steps(len(x), recipe)
        stack = train_cnn_stack(cnn_plan(spec, x.shape[1:], n_classes), x, y, np.ones((1, len(x)), bool), recipe,
                                [seed], precision, progress=lambda done: report(done / steps), device=device)
        return TorchTarget(spec.name, stack.module(0), stack.n_classes)

    def train_chunk(self, job: TrainingJob, masks: np.ndarray, seeds: Sequence[int], progress=None,
                    indices=None) -> list:
        from miaudit.models.cnn_stack import train_cnn_stack

        plan = cnn_plan(job.spec, job.feature_shape, job.n_classes)
        stack = train_cnn_stack(plan, job.x, job.y, masks, job.recipe, list(seeds), job.precision, progress,
                                job.device)
        return [stack.state(j) for j in range(len(seeds))]

    def state_check(self, job: TrainingJob) -> Callable[[object], bool]:
        from miaudit.models.cnn_models import state_fits

        plan = cnn_plan(job.spec, job.feature_shape, job.n_classes)
        return lambda state: state_fits(plan, state)

    def train_flops(self, job: TrainingJob, n_samples: int) -> float:
        from miaudit.models.cnn_stack import cnn_train_flops

        return cnn_train_flops(cnn_plan(job.spec, job.feature_shape, job.n_classes), n_samples)

    def collection(self, job: TrainingJob, states: list):
        from miaudit.models.cnn_models import CNNStack

        return CNNStack.from_states(cnn_plan(job.spec, job.feature_shape, job.n_classes), states)


class OneAtATimeCNNFamily(CNNFamily):
    """CNNs whose recipe has dropout or early stopping: one torch module at a time (train.py); a state
    is the TorchTarget itself."""

    name = "torch-single"

    def fit(self, spec, x, y, n_classes, recipe, seed, precision="auto", progress=None, device="cpu"):
        from miaudit.models.train import seeded_module, train_torch_model
        from miaudit.models.wrappers import TorchTarget

        if spec.name not in DROPOUT_PRESETS and recipe.dropout:
            raise InputError(f"--dropout: {spec.name} has no dropout layers; use --dropout 0")
        report = progress or _quiet
        module = seeded_module(lambda: make_cnn(spec, x.shape[1:], n_classes, recipe.dropout), seed)
        trained = train_torch_model(module, x, y, recipe, seed, precision,
                                    progress=lambda epochs: report(epochs / recipe.epochs), device=device)
        return TorchTarget(spec.name, trained, n_classes)


MLP = MLPFamily()
STACKED_CNN = StackedCNNFamily()
ONE_AT_A_TIME_CNN = OneAtATimeCNNFamily()
