"""RMIA offline with its ``a`` chosen as Zarifzadeh et al. (2024) do: one reference model plays the
target, the others are its reference models, and the ``a`` whose attack on it has the highest AUC wins.

Offline: each record's Pr(x) comes from its OUT reference models only,
Pr(x) = 1/2 ((1 + a) Pr_OUT(x) + (1 - a)) (the paper's linear approximation of the missing Pr_IN);
population records z are OUT for every model and get the same formula. score(x) = fraction of z
with LR_x / LR_z >= gamma, LR = Pr(.|target) / Pr(.), softmax at T = 1 (:mod:`miaudit.attacks.rmia`).
Records without OUT model (K = 1, the record was in the only model) use their IN models' mean as
Pr(x), as ``rmia`` does.

Choosing a: the first reference model (index 0) is the pseudo-target, on the records whose
membership the attacker knows (``shadow_*``); the other models' OUT values give Pr_OUT; records
where none of them is OUT are left out. ``A_GRID`` is searched, the first best AUC kept. With one
reference model (no pseudo-target possible) ``default_a`` is used. The audited records' membership is never read.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field
from sklearn.metrics import roc_auc_score

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.params import AttackParams
from miaudit.attacks.rmia import log_true_class_probability, marginal
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

A_GRID = tuple(round(0.1 * i, 1) for i in range(11))
"""Values of a tried on the pseudo-target."""


class RmiaOfflineParams(AttackParams):
    """Parameters of rmia-offline."""

    gamma: float = Field(2.0, gt=0, description="a population record z counts when LR(x) / LR(z) exceeds gamma")
    a: float | None = Field(None, ge=0, le=1, description="a of Pr_IN = a Pr_OUT + (1 - a) (None: chosen on a "
                                                          "reference model playing the target)")
    default_a: float = Field(0.3, ge=0, le=1, description="a when no reference model can play the target")


def offline_marginal(p_ref: np.ndarray, is_in: np.ndarray, a: float) -> np.ndarray:
    """Pr(x) [M] from OUT models only (p_ref, is_in [K, M]); records without OUT model use their IN mean."""
    no_out = ~(~is_in).any(axis=0)
    return marginal(p_ref, is_in & no_out[None, :], ~is_in, a)


def offline_counts(log_px_target: np.ndarray, px_ref: np.ndarray, is_in: np.ndarray, log_pz_target: np.ndarray,
                   pz_ref: np.ndarray, a: float, gamma: float) -> np.ndarray:
    """RMIA offline scores float64 [M]: fraction of z with LR_x / LR_z >= gamma."""
    log_lr_x = log_px_target - np.log(offline_marginal(px_ref, is_in, a))
    log_lr_z = log_pz_target - np.log(offline_marginal(pz_ref, np.zeros(pz_ref.shape, bool), a))
    below = np.searchsorted(np.sort(log_lr_z), log_lr_x - np.log(gamma), side="right")
    return below / len(log_lr_z)


def select_offline_a(inputs: AttackInputs, gamma: float = 2.0, default_a: float = 0.3) -> tuple[float, float | None]:
    """(a, the pseudo-target's AUC at it, None when not searched): module docstring."""
    k = inputs.n_reference
    if k < 2 or inputs.shadow_in.shape[1] == 0:
        return float(default_a), None
    log_p = log_true_class_probability(inputs.shadow_logits, inputs.shadow_labels)  # [K, R]
    log_pz = log_true_class_probability(inputs.population_reference_logits, inputs.population_labels)  # [K, Z]
    others_in = inputs.shadow_in[1:]
    usable = (~others_in).any(axis=0)
    member = inputs.shadow_in[0][usable]
    if member.all() or not member.any():
        return float(default_a), None
    return best_a(member, lambda a: offline_counts(log_p[0, usable], np.exp(log_p[1:, usable]), others_in[:, usable],
                                                   log_pz[0], np.exp(log_pz[1:]), a, gamma), default_a)


def best_a(member: np.ndarray, scores_at: Callable[[float], np.ndarray], default_a: float) -> tuple[float, float]:
    """(a, AUC) of the first a of A_GRID whose pseudo-target scores scores_at(a) [M] have the highest AUC
    against member bool [M] (both groups present)."""
    best, best_auc = float(default_a), -1.0
    for a in A_GRID:
        auc = float(roc_auc_score(member, scores_at(a)))
        if auc > best_auc + 1e-12:
            best, best_auc = float(a), auc
    return best, best_auc


def rmia_offline(inputs: AttackInputs, gamma: float = 2.0, a: float | None = None,
                 default_a: float = 0.3) -> AttackScores:
    """RMIA offline scores in [0, 1] for the N audited records, ``a`` chosen on a reference model
    playing the target (None) or given; ``params``: a and the pseudo-target's AUC. No decision."""
    check_settings(inputs.n_reference, inputs.population_labels.shape[0], gamma, a, default_a)
    auc = None
    if a is None:
        a, auc = select_offline_a(inputs, gamma, default_a)
    scores = offline_counts(
        log_true_class_probability(inputs.target_logits, inputs.labels),
        np.exp(log_true_class_probability(inputs.reference_logits, inputs.labels)), inputs.reference_in,
        log_true_class_probability(inputs.population_target_logits, inputs.population_labels),
        np.exp(log_true_class_probability(inputs.population_reference_logits, inputs.population_labels)),
        float(a), gamma)
    return AttackScores(scores, params={"a": float(a), "pseudo_target_auc": auc})


def check_settings(n_reference: int, n_population: int, gamma: float, a: float | None, default_a: float) -> None:
    """InputError for what rmia-offline cannot run with: no reference model or population record, gamma <= 0,
    a or default_a outside [0, 1]."""
    if n_reference < 1:
        raise InputError("rmia-offline: needs at least 1 reference model (--reference-models), got 0")
    if n_population < 1:
        raise InputError("rmia-offline: needs population records (attacker data no model trained on), got 0")
    if not gamma > 0:
        raise InputError(f"rmia-offline: gamma must be > 0, got {gamma}")
    for name, value in (("a", a), ("default_a", default_a)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise InputError(f"rmia-offline: {name} must lie in [0, 1], got {value}")
