"""Scoring one per-record signal against each record's own IN / OUT reference-model distribution,
as LiRA does for confidences (Carlini et al. 2022), for attacks whose signal is not a confidence:
label stability, boundary distance, gradient norm.

With reference models trained on the audited records (online): the log likelihood ratio
log p_IN(s) - log p_OUT(s) of the target's signal s, member when > 0. Without (offline):
-log P_OUT(S >= s), one-sided. The predictives are LiRA's "moderated" ones (mean location,
empirical-Bayes shrunk variance, Student-t; :func:`miaudit.attacks.lira.fit_predictives`): signals
that take few values (a count of correct labels) often have zero spread on one side, which a
per-record variance would turn into near-infinite ratios.
"""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.label_oracle import LabelOracle
from miaudit.attacks.lira import fit_predictives, offline_scores, online_scores
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs


def reference_ratio_scores(target_signal: np.ndarray, reference_signal: np.ndarray, reference_in: np.ndarray,
                           name: str, params: dict | None = None, queries: int | None = None) -> AttackScores:
    """AttackScores of target_signal float [N] (higher = member-like) against reference_signal
    float [K, N] with membership reference_in bool [K, N] (module docstring)."""
    if reference_signal.shape[0] < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    phi_t = np.asarray(target_signal, np.float64)[:, None]
    phi_r = np.asarray(reference_signal, np.float64)[:, :, None]
    params = {**(params or {}), "reference_models": int(reference_signal.shape[0])}
    if reference_in.any() and not reference_in.all():
        pred_in, pred_out = fit_predictives(phi_r, reference_in, "moderated")
        scores = online_scores(phi_t, pred_in, pred_out)
        return AttackScores(scores, scores > 0.0, 0.0, {**params, "calibration": "online"}, queries)
    if reference_in.all():
        raise InputError(f"{name}: needs reference models not trained on the audited records")
    _, pred_out = fit_predictives(phi_r, reference_in, "moderated")
    return AttackScores(offline_scores(phi_t, pred_out), params={**params, "calibration": "offline"},
                        queries=queries)


def require_model(inputs: AttackInputs, name: str) -> np.ndarray:
    """The audited records [N, ...]; InputError when the inputs hold no model to query."""
    if inputs.target_model is None or inputs.records is None:
        raise InputError(f"{name}: needs the audited model itself to query (not only its predictions)")
    return inputs.records


def reference_models(inputs: AttackInputs, name: str, limit: int | None = None) -> tuple[list, np.ndarray]:
    """(the first ``limit`` reference models, each a Target with ``logits``, their reference_in
    [K', N]); InputError without reference models."""
    refs = inputs.reference_models
    if refs is None or refs.n_models < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    k = refs.n_models if limit is None else min(limit, refs.n_models)
    return [one_reference(refs, j) for j in range(k)], inputs.reference_in[:k]


def one_reference(refs, k: int):
    """Reference model k of a ReferenceModels as a Target (``logits(x) -> [m, C]``; torch models open their
    parameters to white-box attacks)."""
    return refs.model(k)


def reference_labels(inputs: AttackInputs, x: np.ndarray) -> np.ndarray:
    """int64 [K, m] every reference model's predicted label on x [m, ...] (the attacker's own
    models: not counted as queries to the target)."""
    return inputs.reference_models.logits(x).argmax(axis=-1).astype(np.int64)


def oracle_for(inputs: AttackInputs, name: str, budget: int | None = None) -> LabelOracle:
    """A fresh LabelOracle on the audited model (one per attack run, so its count is the attack's)."""
    require_model(inputs, name)
    return LabelOracle(inputs.target_model, budget)
