"""The attacks whose modules import torch (qmia, label-only-boundary, gradient-norm), as the registry sees them:
their parameters, and entry points that import the module on first call, so that importing the
registry does not import torch. Defaults are those of the functions' keywords
(tests/test_attack_params.py checks that they agree)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.params import AttackParams
from miaudit.signals.inputs import AttackInputs

BOUNDARY_MIN_BUDGET = 27
"""label-only-boundary's fewest queries per record (``label_only_boundary.minimum_budget()``)."""


class QmiaParams(AttackParams):
    """Parameters of qmia and qmia-pinball."""

    alpha: float = Field(0.01, gt=0, lt=1, description="target false-positive rate: the regressor predicts "
                                                       "each record's (1 - alpha) margin quantile")
    regressor: Literal["gaussian-mlp", "pinball-trees"] = Field(
        "gaussian-mlp", description="gaussian-mlp: an MLP's mean and spread; pinball-trees: boosted trees, "
                                    "pinball loss")


class BoundaryParams(AttackParams):
    """Parameters of label-only-boundary."""

    budget: int | None = Field(None, ge=BOUNDARY_MIN_BUDGET, description="label queries per record "
                                                                        "(None: DEFAULT_BUDGET, 400)")


class BoundaryLiraParams(BoundaryParams):
    """Parameters of label-only-boundary-lira."""

    max_reference_models: int | None = Field(None, ge=1, description="reference models searched (None: 16)")


class GradientNormParams(AttackParams):
    """Parameters of gradient-norm and gradient-norm-lira."""

    layer: str = Field("all", description="the layer whose gradient norm scores (all: every "
                                                        "parameter)")


def qmia(inputs: AttackInputs, **settings) -> AttackScores:
    """:func:`miaudit.attacks.qmia.qmia` (torch, imported on first call)."""
    from miaudit.attacks.qmia import qmia as attack

    return attack(inputs, **settings)


def label_only_boundary(inputs: AttackInputs, **settings) -> AttackScores:
    """:func:`miaudit.attacks.label_only_boundary.label_only_boundary` (torch, imported on first call)."""
    from miaudit.attacks.label_only_boundary import label_only_boundary as attack

    return attack(inputs, **settings)


def label_only_boundary_lira(inputs: AttackInputs, **settings) -> AttackScores:
    """:func:`miaudit.attacks.label_only_boundary.label_only_boundary_lira` (torch, imported on first call)."""
    from miaudit.attacks.label_only_boundary import label_only_boundary_lira as attack

    return attack(inputs, **settings)


def gradient_norm(inputs: AttackInputs, **settings) -> AttackScores:
    """:func:`miaudit.attacks.gradient_norm.gradient_norm` (torch, imported on first call)."""
    from miaudit.attacks.gradient_norm import gradient_norm as attack

    return attack(inputs, **settings)


def gradient_norm_lira(inputs: AttackInputs, **settings) -> AttackScores:
    """:func:`miaudit.attacks.gradient_norm.gradient_norm_lira` (torch, imported on first call)."""
    from miaudit.attacks.gradient_norm import gradient_norm_lira as attack

    return attack(inputs, **settings)
