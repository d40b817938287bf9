"""The white-box gradient-norm attack: a model's loss gradient is smaller on the records it trained
on (e.g. Nasr et al. 2019 use it as a white-box feature; Rezaei & Liu 2021). Score = -log of the
norm of the per-example loss gradient with respect to the parameters (all layers, or one layer);
norms from :mod:`miaudit.attacks.white_box`.
"""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.reference_ratio import one_reference, reference_ratio_scores
from miaudit.attacks.white_box import gradient_norms, stack_gradient_norms
from miaudit.errors import InputError
from miaudit.models.wrappers import white_box_available
from miaudit.signals.inputs import AttackInputs

NORM_FLOOR = 1e-30


def gradient_norm(inputs: AttackInputs, layer: str = "all") -> AttackScores:
    """Score = -log(gradient norm of ``layer``) per record (higher = member); decision None.
    ``params``: every layer's median norm."""
    norms = _target_norms(inputs, "gradient-norm")
    if layer not in norms:
        raise InputError(f"gradient-norm: layer must be one of {', '.join(norms)}, got {layer!r}")
    return AttackScores(signal_of(norms[layer]), params={"layer": layer, **medians(norms)})


def gradient_norm_lira(inputs: AttackInputs, layer: str = "all") -> AttackScores:
    """gradient_norm's signal scored against each record's IN / OUT reference-model gradient norms
    (:mod:`miaudit.attacks.reference_ratio`)."""
    name = "gradient-norm-lira"
    norms = _target_norms(inputs, name)
    if layer not in norms:
        raise InputError(f"{name}: layer must be one of {', '.join(norms)}, got {layer!r}")
    return reference_ratio_scores(signal_of(norms[layer]), signal_of(reference_norms(inputs, name, layer)),
                                  inputs.reference_in, name, {"layer": layer})


def _target_norms(inputs: AttackInputs, name: str) -> dict[str, np.ndarray]:
    if inputs.records is None or not white_box_available(inputs.target_model):
        raise InputError(f"{name}: needs a torch target whose parameters it can read (white-box)")
    return inputs.shared(("gradient_norms",), lambda: gradient_norms(inputs.target_model, inputs.records,
                                                                     inputs.labels))


def reference_norms(inputs: AttackInputs, name: str, layer: str) -> np.ndarray:
    """float64 [K, N] gradient norms of every reference model on the audited records."""

    refs = inputs.reference_models
    if refs is None or refs.n_models < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    if refs.mlp_stack is not None:  # all K MLPs at once, in closed form
        return stack_gradient_norms(refs.mlp_stack, inputs.records, inputs.labels)[layer]
    models = [one_reference(refs, k) for k in range(refs.n_models)]
    if not all(white_box_available(m) for m in models):
        raise InputError(f"{name}: needs torch reference models whose parameters it can read")
    return np.stack([gradient_norms(m, inputs.records, inputs.labels)[layer] for m in models])


def signal_of(norms: np.ndarray) -> np.ndarray:
    """The attack signal of gradient norms: -log(norm), floored (higher = member-like)."""
    return -np.log(np.maximum(norms, NORM_FLOOR))


def medians(norms: dict[str, np.ndarray]) -> dict[str, float]:
    """Each layer's median norm, for the report's params."""
    return {f"median_norm_{k}": float(np.median(v)) if v.size else 0.0 for k, v in norms.items()}
