"""LiRA, the likelihood-ratio attack of Carlini et al. (2022), "Membership Inference Attacks From
First Principles".

The signal is the logit-scaled confidence phi = log(p_y / (1 - p_y)) of every model on every record
and query. Per record and query, phi under the reference models that trained on the record (IN) and
under those that did not (OUT) is modelled as a Gaussian: location = median (robust, as in the
paper's code), scale = sample standard deviation (ddof=1; records with fewer than two models on a
side use the pooled one), clipped below at ``MIN_SCALE``.

- ``lira_online``:  score = sum_q [log N(phi_target | IN) - log N(phi_target | OUT)], a log
  likelihood ratio; member when it is > 0 (likelihood ratio > 1).
- ``lira_offline``: OUT models only, one-sided test; score = -sum_q log P(phi_OUT >= phi_target).
  Its threshold is calibrated leave-one-model-out: each of up to ``CALIBRATION_MODELS`` reference
  models plays the target against the others, on the records whose membership the attacker knows
  (``shadow_*``: the audited records in "pool" mode, attacker data otherwise), and the
  balanced-accuracy-maximising threshold on those scores is used. With one reference model, or no member
  among the calibration records, the threshold is the median score (50% prior).

Variance: per record by default; one global (pooled) variance per query when the models are few.
``global_variance=None`` means auto: global when the median number of IN or of OUT models per record
(OUT only for offline) is below ``PER_RECORD_VARIANCE_MIN_MODELS``. The pooled variance is the
within-record variance sum_n sum_k (phi - mean_n)^2 / sum_n (count_n - 1); when no record has two
models on a side, the spread of all that side's values is used instead (as in the paper's code).

Records with no model on one side get that side's location from the other side plus the median
IN - OUT shift over records that have both (or, when none has both, the median over all values of
that side) and the global scale; ``fit_gaussians`` reports how many records needed this.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from miaudit.attacks.calibration import balanced_accuracy_threshold, median_threshold
from miaudit.attacks.inputs import AttackInputs, AttackScores
from miaudit.errors import InputError
from miaudit.signals import logit_scaled_confidence

MIN_SCALE = 1e-3
"""Lower clip of every standard deviation, in phi units (log-odds)."""
PHI_LIMIT = 1e4
"""phi is clipped to [-PHI_LIMIT, PHI_LIMIT] so that zero probabilities (log-prob logits of -inf) stay finite."""
PER_RECORD_VARIANCE_MIN_MODELS = 16
"""Auto variance rule: per-record variance only with at least this many IN / OUT models per record."""
CALIBRATION_MODELS = 16
"""lira-offline: at most this many reference models are held out in turn to calibrate the threshold."""


@dataclass(frozen=True)
class Gaussians:
    """The Gaussian model of phi on one side (IN or OUT) for N records and Q queries.

    loc, scale: float64 [N, Q] (scale >= MIN_SCALE; NaN only if the side has no model at all);
    n_models: int [N] models on this side per record; n_fallback: records whose location came from
    global statistics because they have no model on this side.
    """

    loc: np.ndarray
    scale: np.ndarray
    n_models: np.ndarray
    n_fallback: int

    @property
    def is_empty(self) -> bool:
        return not bool(self.n_models.any())


def scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)) of logits [..., C] with labels broadcastable to logits.shape[:-1],
    clipped to +-PHI_LIMIT: float64 [...]."""
    return np.clip(logit_scaled_confidence(logits, labels), -PHI_LIMIT, PHI_LIMIT)


def fit_gaussians(phi: np.ndarray, is_in: np.ndarray, global_variance: bool) -> tuple[Gaussians, Gaussians]:
    """(IN, OUT) Gaussians from reference phi [K, N, Q] and membership is_in bool [K, N]."""
    raw = {side: _side_moments(phi, mask) for side, mask in (("in", is_in), ("out", ~is_in))}
    fitted = {}
    for side, other in (("in", "out"), ("out", "in")):
        mask = is_in if side == "in" else ~is_in
        loc, scale, count = _fill_missing(phi, mask, raw[side], raw[other], global_variance)
        fitted[side] = Gaussians(loc, scale, count, int((count == 0).sum()))
    return fitted["in"], fitted["out"]


def resolve_global_variance(global_variance: bool | None, is_in: np.ndarray, online: bool) -> bool:
    """The variance mode actually used (see module docstring for the auto rule)."""
    if global_variance is not None:
        return bool(global_variance)
    n_in = float(np.median(is_in.sum(axis=0)))
    n_out = float(np.median((~is_in).sum(axis=0)))
    typical = min(n_in, n_out) if online else n_out
    return typical < PER_RECORD_VARIANCE_MIN_MODELS


def online_scores(phi_target: np.ndarray, gauss_in: Gaussians, gauss_out: Gaussians) -> np.ndarray:
    """Log likelihood ratio IN vs OUT summed over queries: phi_target [N, Q] -> float64 [N]."""
    log_in = norm.logpdf(phi_target, gauss_in.loc, gauss_in.scale)
    log_out = norm.logpdf(phi_target, gauss_out.loc, gauss_out.scale)
    return (log_in - log_out).sum(axis=-1)


def offline_scores(phi_target: np.ndarray, gauss_out: Gaussians) -> np.ndarray:
    """-sum_q log P(phi_OUT >= phi_target): phi_target [N, Q] -> float64 [N], higher = member."""
    return -norm.logsf(phi_target, gauss_out.loc, gauss_out.scale).sum(axis=-1)


def lira_online(inputs: AttackInputs, global_variance: bool | None = None) -> AttackScores:
    """LiRA online: needs reference models trained on the audited records ("pool" reference data).

    Decision: member when the likelihood ratio exceeds 1 (score > 0); threshold reported as 0.
    """
    _require_references(inputs, "lira-online")
    if not inputs.has_in_models:
        raise InputError("lira-online: needs reference models trained on the audited records "
                         "(reference_data='pool')")
    phi_target, phi_ref = _phis(inputs)
    use_global = resolve_global_variance(global_variance, inputs.reference_in, online=True)
    gauss_in, gauss_out = fit_gaussians(phi_ref, inputs.reference_in, use_global)
    scores = online_scores(phi_target, gauss_in, gauss_out)
    return AttackScores(scores, scores > 0.0, 0.0)


def lira_offline(inputs: AttackInputs, global_variance: bool | None = None) -> AttackScores:
    """LiRA offline: one-sided test against the OUT reference models of each record.

    Decision threshold: leave-one-model-out calibration (module docstring), else the median score.
    """
    _require_references(inputs, "lira-offline")
    phi_target, phi_ref = _phis(inputs)
    use_global = resolve_global_variance(global_variance, inputs.reference_in, online=False)
    _, gauss_out = fit_gaussians(phi_ref, inputs.reference_in, use_global)
    if gauss_out.is_empty:
        raise InputError("lira-offline: needs reference models not trained on the audited records")
    scores = offline_scores(phi_target, gauss_out)
    threshold = _leave_one_model_out_threshold(inputs, phi_ref, use_global)
    if threshold is None:
        threshold = median_threshold(scores)
    return AttackScores(scores, scores >= threshold, threshold)


def _require_references(inputs: AttackInputs, name: str) -> None:
    if inputs.n_reference < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")


def _phis(inputs: AttackInputs) -> tuple[np.ndarray, np.ndarray]:
    """phi of the target [N, Q] and of the reference models [K, N, Q] on the audited records."""
    phi_target = scaled_confidence(inputs.target_logits, inputs.labels[:, None])
    phi_ref = scaled_confidence(inputs.reference_logits, inputs.labels[None, :, None])
    return phi_target, phi_ref


def _leave_one_model_out_threshold(inputs: AttackInputs, phi_ref: np.ndarray, use_global: bool) -> float | None:
    """Offline threshold calibrated by holding out reference models as targets, or None if impossible.
    phi_ref [K, N, Q] is reused when the shadow records are the audited ones ("pool" mode)."""
    k, r = inputs.shadow_in.shape
    if k < 2 or r == 0:
        return None
    if inputs.shadow_logits is inputs.reference_logits and inputs.shadow_labels is inputs.labels:
        phi = phi_ref
    else:
        phi = scaled_confidence(inputs.shadow_logits, inputs.shadow_labels[None, :, None])  # [K, R, Q]
    scores, members = [], []
    for held_out in range(min(k, CALIBRATION_MODELS)):
        others = np.arange(k) != held_out
        _, gauss_out = fit_gaussians(phi[others], inputs.shadow_in[others], use_global)
        if gauss_out.is_empty:
            continue
        scores.append(offline_scores(phi[held_out], gauss_out))
        members.append(inputs.shadow_in[held_out])
    if not members:
        return None
    members_all = np.concatenate(members)
    if members_all.all() or not members_all.any():
        return None
    return balanced_accuracy_threshold(np.concatenate(scores), members_all)


def _side_moments(phi: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median [N, Q] (NaN without models), sum of squared deviations from the mean [N, Q] and
    model count int [N] of phi [K, N, Q] restricted to mask [K, N]."""
    k = phi.shape[0]
    count = mask.sum(axis=0)
    ordered = np.sort(np.where(mask[:, :, None], phi, np.nan), axis=0)  # NaN sort last
    lo = np.maximum((count - 1) // 2, 0)[None, :, None]
    hi = np.minimum(count // 2, k - 1)[None, :, None]
    lo = np.broadcast_to(lo, (1,) + phi.shape[1:])
    hi = np.broadcast_to(hi, (1,) + phi.shape[1:])
    median = 0.5 * (np.take_along_axis(ordered, lo, 0)[0] + np.take_along_axis(ordered, hi, 0)[0])
    weights = mask[:, :, None].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (phi * weights).sum(axis=0) / count[:, None]
    deviation = np.where(mask[:, :, None], phi - np.nan_to_num(mean)[None], 0.0)
    return median, (deviation ** 2).sum(axis=0), count


def _pooled_scale(phi: np.ndarray, mask: np.ndarray, sq_dev: np.ndarray, count: np.ndarray) -> np.ndarray:
    """One scale per query [Q]: pooled within-record std, else the std of all values; NaN if none."""
    dof = float(np.maximum(count - 1, 0).sum())
    if dof > 0:
        return np.sqrt(sq_dev.sum(axis=0) / dof)
    values = phi[mask]  # [M, Q]
    if len(values) == 0:
        return np.full(phi.shape[2], np.nan)
    return values.std(axis=0)


def _fill_missing(phi: np.ndarray, mask: np.ndarray, own: tuple, other: tuple,
                  global_variance: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Location and scale [N, Q] of one side, filling records with no model on this side."""
    median, sq_dev, count = own
    other_median, other_sq_dev, other_count = other
    pooled = _pooled_scale(phi, mask, sq_dev, count)
    if np.isnan(pooled).all():  # no model on this side: borrow the other side's spread
        pooled = _pooled_scale(phi, ~mask, other_sq_dev, other_count)
    loc = median.copy()
    missing = count == 0
    if missing.any() and not missing.all():
        both = ~missing & (other_count > 0)
        if both.any():
            shift = np.median(median[both] - other_median[both], axis=0)
            loc[missing] = other_median[missing] + shift
        else:
            loc[missing] = np.median(phi[mask], axis=0)
    if global_variance:
        scale = np.broadcast_to(pooled, loc.shape).copy()
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            per_record = np.sqrt(sq_dev / (count[:, None] - 1))
        scale = np.where((count >= 2)[:, None], per_record, pooled[None, :])
    return loc, np.maximum(scale, MIN_SCALE), count
