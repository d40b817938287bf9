"""LiRA, the likelihood-ratio attack of Carlini et al. (2022), "Membership Inference Attacks From
First Principles", and miaudit's variant of it.

The signal is the logit-scaled confidence phi = log(p_y / (1 - p_y)) of every model on every record
and query. Per record and query, phi of a new model under the reference models that trained on the
record (IN) and under those that did not (OUT) gets a predictive distribution, chosen by ``variance``:

- ``"paper"`` (default, registered as ``lira-online`` / ``lira-offline``): the paper's rule,
  ``"per-example"`` with at least PER_EXAMPLE_MIN_MODELS = 64 reference models (the paper's
  experiments use per-example variances with 64 or more), ``"global"`` below (the paper: "for small
  numbers of shadow models" a global variance is better). ``params["variance"]`` says which was used.
- ``"per-example"``: normal, location = median of the record's values on the side, scale = their
  std (ddof=0, as the paper's code); records with fewer than two models on the side use the global
  scale.
- ``"global"``: normal, location = median, scale = the std (ddof=0) of ALL values of that side
  (every record and model), one per query, as the paper's fixed variance.
- ``"moderated"`` (miaudit's, in ``lira-online-moderated-offsets`` / ``lira-offline-moderated-offsets``):
  empirical-Bayes moderated variance (Smyth 2004, limma; see :mod:`miaudit.attacks.moderated`). Per
  side, a prior sigma^2 ~ s0^2 d0 / chi2(d0) is fitted to the sample variances s^2 (ddof=1,
  d = n - 1 >= 1, s^2 > MIN_SCALE^2) of all records and queries; each record's variance is shrunk
  to s~^2 = (d0 s0^2 + d s^2) / (d0 + d) and phi follows a Student-t with d0 + d degrees of freedom,
  location = mean of the n values, scale = s~ sqrt(1 + 1/n). No record with d >= 1 on a side (e.g.
  one IN and one OUT model per record): a normal with the pooled within-record std (the std of all
  the side's values when no record has two models).

Every scale is clipped below at ``MIN_SCALE``. Scores:

- ``lira_online``:  sum_q [log p_IN(phi_target) - log p_OUT(phi_target)], a log likelihood ratio;
  member when it is > 0 (likelihood ratio > 1).
- ``lira_offline``: OUT models only, one-sided test (the paper's offline LiRA); score =
  -sum_q log P_OUT(phi >= phi_target). Its threshold is calibrated leave-one-model-out (same
  ``variance``): each of up to ``CALIBRATION_MODELS`` reference models plays the target against the
  others, on the records whose membership the attacker knows (``shadow_*``: the audited records in
  "pool" mode, attacker data otherwise), and the balanced-accuracy-maximising threshold on those
  scores is used. With one reference model, or no member among the calibration records, there is
  no threshold (decision None).

Local offsets (``neighbors`` > 0; 0 by default, the paper's; LOCAL_NEIGHBORS in the miaudit
variants): before the fit, every model's phi (target and references) has its local confidence bias
removed, measured on the nearest population records of the same label
(:mod:`miaudit.attacks.local_offsets`; its measured gain: benchmarks/README.md). No population records: no offsets.

Records with no model on one side get that side's location from the other side plus the median
IN - OUT shift over records that have both (or, when none has both, the median over all values of
that side) and the prior scale s0 with d0 degrees of freedom ("moderated") or the side's global /
pooled scale; ``fit_predictives`` reports how many records needed this.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.local_offsets import LOCAL_NEIGHBORS, remove_offsets, shared_population_neighbours
from miaudit.attacks.moderated import SideFit, VariancePrior, posterior_variance, side_fit, t_logpdf, t_logsf
from miaudit.attacks.params import AttackParams
from miaudit.errors import InputError
from miaudit.metrics.calibration import balanced_accuracy_threshold
from miaudit.signals.functions import logit_scaled_confidence
from miaudit.signals.inputs import AttackInputs

MIN_SCALE = 1e-3
"""Lower clip of every standard deviation, in phi units (log-odds)."""
PHI_LIMIT = 1e4
"""phi is clipped to [-PHI_LIMIT, PHI_LIMIT] so that zero probabilities (log-prob logits of -inf) stay finite."""
CALIBRATION_MODELS = 16
"""lira-offline: at most this many reference models are held out in turn to calibrate the threshold."""
VARIANCES = ("paper", "per-example", "global", "moderated")
"""The ``variance`` modes (module docstring)."""
PER_EXAMPLE_MIN_MODELS = 64
"""variance="paper": per-example variances from this many reference models on, the global one below."""


class LiraParams(AttackParams):
    """Parameters of lira-online and lira-offline."""

    variance: Literal["paper", "per-example", "global", "moderated"] = Field(
        "paper", description="how each record's spread is estimated (module docstring)")
    neighbors: int = Field(0, ge=0, description="population neighbours whose mean removes each model's local "
                                                "confidence bias (0: none)")


@dataclass(frozen=True)
class Predictive:
    """The predictive distribution of a new model's phi on one side (IN or OUT), N records x Q queries:
    Student-t with ``dof`` degrees of freedom (inf: normal), location ``loc`` and scale ``scale``.

    loc, scale, dof: float64 [N, Q] (scale >= MIN_SCALE; loc and scale NaN only if the side has no
    model at all); n_models: int [N] models on this side per record; n_fallback: records whose
    location came from global statistics because they have no model on this side; prior: the fitted
    variance prior ("moderated" with some record having d >= 1 on this side, else None).
    """

    loc: np.ndarray
    scale: np.ndarray
    dof: np.ndarray
    n_models: np.ndarray
    n_fallback: int
    prior: VariancePrior | None = None

    @property
    def is_empty(self) -> bool:
        return not bool(self.n_models.any())

    def logpdf(self, phi: np.ndarray) -> np.ndarray:
        """log density at phi [N, Q] -> float64 [N, Q]."""
        return t_logpdf(phi, self.loc, self.scale, self.dof)

    def logsf(self, phi: np.ndarray) -> np.ndarray:
        """log P(new phi >= phi) at phi [N, Q] -> float64 [N, Q]."""
        return t_logsf(phi, self.loc, self.scale, self.dof)


def scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)) of logits [..., C] with labels broadcastable to logits.shape[:-1],
    clipped to +-PHI_LIMIT: float64 [...]."""
    return np.clip(logit_scaled_confidence(logits, labels), -PHI_LIMIT, PHI_LIMIT)


def check_variance(variance: str, name: str = "lira") -> None:
    """InputError unless ``variance`` is one of VARIANCES."""
    if variance not in VARIANCES:
        raise InputError(f"{name}: variance must be one of {', '.join(map(repr, VARIANCES))}, got {variance!r}")


def resolve_variance(variance: str, n_reference: int) -> str:
    """The variance mode used: "paper" becomes "per-example" with at least PER_EXAMPLE_MIN_MODELS
    reference models, else "global" (the paper's rule); other modes are kept."""
    check_variance(variance)
    if variance != "paper":
        return variance
    return "per-example" if n_reference >= PER_EXAMPLE_MIN_MODELS else "global"


def fit_predictives(phi: np.ndarray, is_in: np.ndarray, variance: str = "moderated",
                    global_scales: dict[str, np.ndarray] | None = None,
                    fits: dict[str, SideFit] | None = None,
                    gaps: dict[str, np.ndarray | None] | None = None) -> tuple[Predictive, Predictive]:
    """(IN, OUT) predictives from reference phi [K, N, Q] and membership is_in bool [K, N].

    global_scales: {"in": [Q], "out": [Q]} the paper's global scale of each side computed over more
    records than phi holds (a streamed audit sees one record chunk at a time, see
    :mod:`miaudit.attacks.streamed`); "global" / "per-example" only. With it, a record with no model
    on a side (whose location would come from all records) is an InputError, unless ``gaps`` gives that
    side's median location gap to the other side over all records with both [Q] (None: no such record).
    fits: {"in", "out"} each side's :class:`SideFit` over more records than phi holds, "moderated" only."""
    variance = resolve_variance(variance, phi.shape[0])
    moments = {side: side_moments(phi, mask) for side, mask in (("in", is_in), ("out", ~is_in))}
    if fits is not None:
        return _fitted_moderated(moments, fits)
    fitted = {}
    for side, other in (("in", "out"), ("out", "in")):
        mask = is_in if side == "in" else ~is_in
        count = moments[side][3]
        if global_scales is not None and (count == 0).any() and (gaps is None or gaps[side] is None):
            raise InputError("streamed lira: a record has no reference model on one side (IN or OUT); "
                             "use more reference models or --signal-chunk 0 (in memory)")
        if gaps is not None:
            loc = _filled(moments[side][0], moments[other][0], count, gaps[side])
        else:
            loc = _location(phi, mask, moments[side], moments[other], use_mean=variance == "moderated")
        scale, dof, prior = _spread(phi, mask, moments[side], moments[other], variance,
                                    None if global_scales is None else (global_scales[side], global_scales[other]))
        fitted[side] = Predictive(loc, scale, dof, count, int((count == 0).sum()), prior)
    return fitted["in"], fitted["out"]


def online_scores(phi_target: np.ndarray, pred_in: Predictive, pred_out: Predictive) -> np.ndarray:
    """Log likelihood ratio IN vs OUT summed over queries: phi_target [N, Q] -> float64 [N]."""
    return (pred_in.logpdf(phi_target) - pred_out.logpdf(phi_target)).sum(axis=-1)


def offline_scores(phi_target: np.ndarray, pred_out: Predictive) -> np.ndarray:
    """-sum_q log P_OUT(phi >= phi_target): phi_target [N, Q] -> float64 [N], higher = member."""
    return -pred_out.logsf(phi_target).sum(axis=-1)


def lira_online(inputs: AttackInputs, variance: str = "paper", neighbors: int = 0) -> AttackScores:
    """LiRA online: needs reference models trained on the audited records ("pool" reference data).

    variance: one of VARIANCES (module docstring). neighbors: population neighbours of the local
    offsets (0 = none, the paper's; none either without population records). The defaults are the
    paper's attack. Decision: member when the likelihood ratio exceeds 1 (score > 0); threshold 0.
    ``params``: the variance mode used and the neighbours.
    """
    check_variance(variance, "lira-online")
    _require_references(inputs, "lira-online")
    if not inputs.has_in_models:
        raise InputError("lira-online: needs reference models trained on the audited records "
                         "(reference_data='pool')")
    phi_target, phi_ref, used = _phis(inputs, neighbors, "lira-online")
    variance = resolve_variance(variance, inputs.n_reference)
    pred_in, pred_out = fit_predictives(phi_ref, inputs.reference_in, variance)
    scores = online_scores(phi_target, pred_in, pred_out)
    return AttackScores(scores, scores > 0.0, 0.0, {"variance": variance, "neighbors": used})


def lira_offline(inputs: AttackInputs, variance: str = "paper", neighbors: int = 0) -> AttackScores:
    """LiRA offline: one-sided test against the OUT reference models of each record.

    variance, neighbors, params: as for ``lira_online``. Decision threshold: leave-one-model-out
    calibration (module docstring), else none (decision None).
    """
    check_variance(variance, "lira-offline")
    _require_references(inputs, "lira-offline")
    phi_target, phi_ref, used = _phis(inputs, neighbors, "lira-offline")
    variance = resolve_variance(variance, inputs.n_reference)
    _, pred_out = fit_predictives(phi_ref, inputs.reference_in, variance)
    if pred_out.is_empty:
        raise InputError("lira-offline: needs reference models not trained on the audited records")
    scores = offline_scores(phi_target, pred_out)
    params = {"variance": variance, "neighbors": used}
    threshold = _leave_one_model_out_threshold(inputs, phi_ref, variance, used)
    if threshold is None:
        return AttackScores(scores, params=params)
    return AttackScores(scores, scores >= threshold, threshold, params)


def lira_online_moderated_offsets(inputs: AttackInputs) -> AttackScores:
    """miaudit's LiRA online: moderated variances and local offsets (LOCAL_NEIGHBORS neighbours)."""
    return lira_online(inputs, variance="moderated", neighbors=LOCAL_NEIGHBORS)


def lira_offline_moderated_offsets(inputs: AttackInputs) -> AttackScores:
    """miaudit's LiRA offline: moderated variances and local offsets (LOCAL_NEIGHBORS neighbours)."""
    return lira_offline(inputs, variance="moderated", neighbors=LOCAL_NEIGHBORS)


def _require_references(inputs: AttackInputs, name: str) -> None:
    if inputs.n_reference < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")


def _phis(inputs: AttackInputs, neighbors: int, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """phi of the target [N, Q] and of the reference models [K, N, Q] on the audited records, less
    their local offsets, and the number of neighbours used (0 without population records); shared
    by lira-online and lira-offline."""
    if not (isinstance(neighbors, (int, np.integer)) and neighbors >= 0):
        raise InputError(f"{name}: neighbors must be an integer >= 0, got {neighbors}")
    return inputs.shared(("lira_phis", int(neighbors)), lambda: _compute_phis(inputs, int(neighbors)))


def _compute_phis(inputs: AttackInputs, neighbors: int) -> tuple[np.ndarray, np.ndarray, int]:
    phi_target = scaled_confidence(inputs.target_logits, inputs.labels[:, None])
    phi_ref = scaled_confidence(inputs.reference_logits, inputs.labels[None, :, None])
    if not neighbors or inputs.population_labels.shape[0] == 0:
        return phi_target, phi_ref, 0
    nb = shared_population_neighbours(inputs, neighbors)
    pop_target = scaled_confidence(inputs.population_target_logits, inputs.population_labels[:, None])
    pop_ref, mean = _population_phi(inputs)
    return (remove_offsets(phi_target, pop_target, mean, nb.records),
            remove_offsets(phi_ref, pop_ref, mean, nb.records), int(neighbors))


def _population_phi(inputs: AttackInputs) -> tuple[np.ndarray, np.ndarray]:
    """phi of the reference models on the population records [K, Z, Q] and its mean over models
    [Z, Q], computed once per inputs (audited and shadow records both need it)."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        phi = scaled_confidence(inputs.population_reference_logits, inputs.population_labels[None, :, None])
        return phi, phi.mean(axis=0)

    return inputs.shared(("lira_population_phi",), compute)


def _shadow_phi(inputs: AttackInputs, neighbors: int) -> np.ndarray:
    """phi [K, R, Q] of the reference models on the shadow records, less the local offsets when
    neighbors > 0."""
    phi = scaled_confidence(inputs.shadow_logits, inputs.shadow_labels[None, :, None])
    if not neighbors:
        return phi
    pop_ref, mean = _population_phi(inputs)
    return remove_offsets(phi, pop_ref, mean, shared_population_neighbours(inputs, neighbors, shadow=True).records)


def _leave_one_model_out_threshold(inputs: AttackInputs, phi_ref: np.ndarray, variance: str,
                                   neighbors: int) -> float | None:
    """Offline threshold calibrated by holding out reference models as targets, or None if impossible.
    phi_ref [K, N, Q] (with the local offsets of ``neighbors`` removed) is reused when the shadow
    records are the audited ones ("pool" mode)."""
    k, r = inputs.shadow_in.shape
    if k < 2 or r == 0:
        return None
    phi = phi_ref if inputs.shadow_records_are_audited else _shadow_phi(inputs, neighbors)  # [K, R, Q]
    scores, members = [], []
    for held_out in range(min(k, CALIBRATION_MODELS)):
        others = np.arange(k) != held_out
        _, pred_out = fit_predictives(phi[others], inputs.shadow_in[others], variance)
        if pred_out.is_empty:
            continue
        scores.append(offline_scores(phi[held_out], pred_out))
        members.append(inputs.shadow_in[held_out])
    if not members:
        return None
    members_all = np.concatenate(members)
    if members_all.all() or not members_all.any():
        return None
    return balanced_accuracy_threshold(np.concatenate(scores), members_all)


def _fitted_moderated(moments: dict[str, tuple], fits: dict[str, SideFit]) -> tuple[Predictive, Predictive]:
    """(IN, OUT) "moderated" predictives of records from their moments and each side's fit over all records."""
    fitted = {}
    for side, other in (("in", "out"), ("out", "in")):
        _, mean, _, count = moments[side]
        loc, missing = _filled(mean, moments[other][1], count, fits[side].gap), count == 0
        scale, dof, prior = _spread(None, None, moments[side], moments[other], "moderated", fit=fits[side])
        fitted[side] = Predictive(loc, scale, dof, count, int(missing.sum()), prior)
    return fitted["in"], fitted["out"]


def _filled(loc: np.ndarray, other_loc: np.ndarray, count: np.ndarray, gap: np.ndarray | None) -> np.ndarray:
    """loc [N, Q] with records of no model on this side (count [N] 0) at other_loc + gap (kept without gap)."""
    loc, missing = loc.copy(), count == 0
    if missing.any() and gap is not None:
        loc[missing] = other_loc[missing] + gap
    return loc


def side_moments(phi: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Median and mean [N, Q] (NaN without models), sum of squared deviations from the mean [N, Q]
    and model count int [N] of phi [K, N, Q] restricted to mask [K, N]."""
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
    return median, mean, (deviation ** 2).sum(axis=0), count


def _global_scale(phi: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The paper's global scale [Q]: the std (ddof=0) of all values of the side, per query; NaN if none."""
    values = phi[mask]  # [M, Q]
    if len(values) == 0:
        return np.full(phi.shape[2], np.nan)
    return values.std(axis=0)


def _location(phi: np.ndarray, mask: np.ndarray, own: tuple, other: tuple, use_mean: bool) -> np.ndarray:
    """Location [N, Q] of one side (mean or median), filling records with no model on this side."""
    loc = (own[1] if use_mean else own[0]).copy()
    other_loc = other[1] if use_mean else other[0]
    missing, other_count = own[3] == 0, other[3]
    if missing.any() and not missing.all():
        both = ~missing & (other_count > 0)
        if both.any():
            loc[missing] = other_loc[missing] + np.median(loc[both] - other_loc[both], axis=0)
        else:
            loc[missing] = np.median(phi[mask], axis=0)
    return loc


def _spread(phi: np.ndarray, mask: np.ndarray, own: tuple, other: tuple, variance: str,
            global_scales: tuple[np.ndarray, np.ndarray] | None = None, fit: SideFit | None = None,
            ) -> tuple[np.ndarray, np.ndarray, VariancePrior | None]:
    """Scale and degrees of freedom [N, Q] of one side, and the fitted prior ("moderated").
    global_scales: (this side's, the other side's) global scale [Q] when computed elsewhere; fit: the
    side's moderated fit over all records when computed elsewhere (then phi and mask are unused)."""
    _, _, sq_dev, count = own
    shape = sq_dev.shape
    normal = np.full(shape, np.inf)
    if global_scales is not None and variance not in ("global", "per-example"):
        raise InputError(f"lira: variance {variance!r} cannot use precomputed global scales (streamed)")
    if variance in ("global", "per-example"):
        fixed = _global_scale(phi, mask) if global_scales is None else global_scales[0]
        if np.isnan(fixed).all():  # no model on this side: borrow the other side's spread
            fixed = _global_scale(phi, ~mask) if global_scales is None else global_scales[1]
        fixed = np.broadcast_to(fixed, shape)
        if variance == "global":
            return np.maximum(fixed, MIN_SCALE), normal, None
        n = count[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_example = np.sqrt(sq_dev / n)  # np.std of the record's values, as the paper's code
        return np.maximum(np.where(n >= 2, per_example, fixed), MIN_SCALE), normal, None
    if fit is None:
        fit = side_fit((own[1], sq_dev, count), (other[1], other[2], other[3]), lambda: _global_scale(phi, mask),
                       lambda: _global_scale(phi, ~mask), MIN_SCALE ** 2)
    pooled = np.broadcast_to(fit.pooled, shape)
    d = np.maximum(count - 1, 0)[:, None].astype(np.float64)  # [N, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = sq_dev / d  # NaN / inf where d = 0
    prior = fit.prior
    if prior is None:
        return np.maximum(pooled, MIN_SCALE), normal, None
    post = posterior_variance(s2, d, prior, floor=MIN_SCALE ** 2)
    n = count[:, None]
    inflation = np.where(n > 0, np.sqrt(1.0 + 1.0 / np.maximum(n, 1)), 1.0)  # 1 without models
    scale = np.sqrt(post) * inflation
    return np.maximum(scale, MIN_SCALE), np.broadcast_to(prior.d0 + d, shape).copy(), prior
