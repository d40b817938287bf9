"""The registry of model families: the one list of the kinds of model miaudit trains (no torch imported).

A target name belongs to the first family that accepts it; the family that trains it under a recipe is
the first that accepts it and ``trains(recipe)`` (a CNN trains stacked unless its recipe has dropout or
early stopping). Adding a family: its module and one line in FAMILIES (docs/architecture.md).
"""
from __future__ import annotations

from miaudit.errors import InputError
from miaudit.models.cnn_names import SPEC_PREFIX
from miaudit.models.family import ModelFamily
from miaudit.models.hist_gb import HIST_GB
from miaudit.models.sklearn_family import SKLEARN
from miaudit.models.torch_families import MLP, ONE_AT_A_TIME_CNN, STACKED_CNN

FAMILIES: tuple[ModelFamily, ...] = (MLP, STACKED_CNN, ONE_AT_A_TIME_CNN, SKLEARN, HIST_GB)


def target_names() -> tuple[str, ...]:
    """The target names the families list, in registry order (CNNs also take mnist-cnn and cnn-spec:...)."""
    return tuple(dict.fromkeys(name for family in FAMILIES for name in family.target_names))


def unknown_target(name: str) -> InputError:
    """The one-line error for a target name no family takes."""
    return InputError(f"--target: unknown model {name!r}; choose one of {', '.join(target_names())}, "
                      f"mnist-cnn or {SPEC_PREFIX}<layers>")


def find_family(name: str) -> ModelFamily | None:
    """The family of target ``name``, None when no family takes it (a model file, a URL, a typo)."""
    return next((family for family in FAMILIES if family.accepts(name)), None)


def family_named(name: str) -> ModelFamily:
    """The family of target ``name``; InputError naming the choices when there is none."""
    family = find_family(name)
    if family is None:
        raise unknown_target(name)
    return family


def training_family(name: str, recipe) -> ModelFamily:
    """The family that trains target ``name`` under ``recipe``."""
    for family in FAMILIES:
        if family.accepts(name) and family.trains(recipe):
            return family
    raise unknown_target(name)


def is_torch_name(name: str) -> bool:
    """True for target names trained with torch (mlp, the CNN presets, cnn-spec:<layers>)."""
    family = find_family(name)
    return family is not None and family.is_torch


def code_modules(torch: bool) -> tuple[str, ...]:
    """The modules whose code decides the trained models of the torch (or the other) families."""
    names = [m for family in FAMILIES if family.is_torch == torch for m in family.code_modules]
    return tuple(dict.fromkeys([*names, "miaudit.models.family", "miaudit.models.families"]))
