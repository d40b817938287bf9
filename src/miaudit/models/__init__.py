"""Target models: recipes, torch nets and trainers, scikit-learn models, Target wrappers, registry.

Names below are imported on first use, so ``import miaudit.models.recipe`` does not load torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainingRecipe": "recipe",
    "Target": "target",
    "TutorialCNN": "nets",
    "SmallCNN": "nets",
    "train_torch_model": "train",
    "torch_logits": "train",
    "make_sklearn_model": "sklearn_models",
    "TorchTarget": "wrappers",
    "SklearnTarget": "wrappers",
    "StackTarget": "wrappers",
    "ModelFamily": "family",
    "FAMILIES": "families",
    "TARGET_NAMES": "registry",
    "ModelSpec": "registry",
    "model_spec": "registry",
    "is_torch": "registry",
    "fit_single": "registry",
    "as_target": "user_models",
    "FunctionTarget": "user_models",
    "TorchModuleTarget": "user_models",
    "train_user_references": "user_references",
    "fresh_copy": "reinit",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
