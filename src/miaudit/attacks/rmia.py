"""RMIA, the relative membership inference attack of Zarifzadeh et al. (2024), "Low-Cost High-Power
Membership Inference Attacks", and miaudit's variant of it.

``rmia`` (the paper's): Pr(x|theta) is a model's softmax true-class probability (T = 1) on record
x, averaged over queries. Pr(x) is its average over the reference models, taken as
1/2 (Pr_IN(x) + Pr_OUT(x)) with Pr_IN / Pr_OUT the means over the models that did / did not train on
x (with balanced masks, K even, exactly the mean over all K models). Without IN model (offline, or
K = 1) Pr_IN is the paper's linear approximation a Pr_OUT(x) + (1 - a), i.e.
Pr(x) = 1/2 ((1 + a) Pr_OUT(x) + (1 - a)) with a = ``offline_a``. Population records z are OUT for
every reference model, so Pr(z) always uses that approximation.
score(x) = fraction of z with LR_x / LR_z >= gamma, LR = Pr(.|theta) / Pr(.); higher = member.
For a fixed population the score is monotone in LR_x: gamma and z set the scale and which records
tie, not the ranking. Records with equal LR_x get equal scores (the ROC code handles ties).

``rmia_tempered_offsets`` (miaudit's, registered as ``rmia-tempered-offsets``) adds:

- Softmax temperature: probabilities are softmax(logits / T). Saturated probabilities (T = 1)
  squeeze the ratio of a memorised record towards 2 when half of the reference models trained on
  it, and T near 2 keeps more of the IN / OUT gap (on Fashion-MNIST MLPs: AUC 0.716 -> 0.731 with 4
  reference models). ``temperature=None`` picks T from ``TEMPERATURES`` the way the paper tunes its
  hyperparameters: each of up to ``CALIBRATION_MODELS`` reference models plays the target against
  the others, on the records whose membership the attacker knows, and the T with the highest mean
  TPR at ``CALIBRATION_FPR`` wins (ties: the smaller T). The audited records' membership is never used.
- Local offsets (``neighbors`` > 0): each model's probability is taken after removing its local
  confidence bias, measured on the population records nearest to the record
  (:mod:`miaudit.attacks.local_offsets`): Pr(x|m) = sigmoid(phi_m(x) - o_m(x)) with phi the
  logit-scaled confidence at temperature T, instead of the softmax p_y (the same when o = 0). The
  target's own bias is the one that matters most: a target less (or more) fitted than the reference
  models shifts every LR_x of a region. On the Fashion-MNIST MLP benchmark (mean of 5 targets) this
  took RMIA from AUC 0.712 / TPR@0.1%FPR 4.2% to 0.738 / 7.0% with 4 reference models and from
  0.719 / 6.8% to 0.746 / 9.6% with 64.
- a fitted in online mode (least squares of Pr_IN - 1 = a (Pr_OUT - 1) over records with both IN and
  OUT models), so that Pr(z) sits on the same IN/OUT-mixture scale as Pr(x); it also stands in for
  Pr_IN of audited records without IN model.
- Records of equal count ordered by LR_x (what the count tends to for an infinite population), equal
  LR_x still tied (see :func:`relative_scores`).

Decision: none (``AttackScores.decision`` None: metrics decide at the audit's actual prior). A
leave-one-reference-out calibration (reference models as stand-in targets, accuracy-maximising
threshold) was tried and dropped: scores are ranks against each target's own population, whose
scale moves from model to model by more than the member / non-member gap, and the transferred
threshold was less accurate than the median on synthetic checks (e.g. 0.75 vs 0.82 accuracy with 8
reference models).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field
from scipy.special import log_expit, logsumexp
from scipy.stats import rankdata
from sklearn.metrics import roc_curve

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.local_offsets import (
    LOCAL_NEIGHBORS,
    PopulationNeighbours,
    remove_offsets,
    shared_population_neighbours,
)
from miaudit.attacks.params import AttackParams
from miaudit.errors import InputError
from miaudit.signals.functions import loss, tempered_scaled_confidence
from miaudit.signals.inputs import AttackInputs

LOG_PROBABILITY_FLOOR = -700.0
"""Log-probabilities are floored here (about 1e-304) so that zero probabilities stay finite."""
TEMPERATURES = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
"""Softmax temperatures tried when ``temperature=None``."""
CALIBRATION_MODELS = 16
"""At most this many reference models are held out in turn to pick the temperature."""
CALIBRATION_FPR = 0.01
"""The temperature maximises the held-out models' mean TPR at this false-positive rate."""


class RmiaParams(AttackParams):
    """Parameters of rmia."""

    gamma: float = Field(2.0, gt=0, description="a population record z counts when LR(x) / LR(z) exceeds gamma")
    offline_a: float = Field(0.3, ge=0, le=1, description="a of Pr_IN = a Pr_OUT + (1 - a) without IN models")
    n_population: int | None = Field(None, ge=1, description="population records compared with (None: all)")


class RmiaTemperedParams(RmiaParams):
    """Parameters of rmia-tempered-offsets."""

    temperature: float | None = Field(None, gt=0, description="softmax temperature (None: picked on held-out "
                                                               "reference models)")
    neighbors: int = Field(LOCAL_NEIGHBORS, ge=0, description="population neighbours whose mean removes each "
                                                              "model's local confidence bias (0: none)")


def rmia(inputs: AttackInputs, gamma: float = 2.0, offline_a: float = 0.3,
         n_population: int | None = None) -> AttackScores:
    """RMIA as the paper defines it: the fraction of population records z with LR_x / LR_z >= gamma,
    Pr = softmax true-class probability at T = 1, Pr(x) the mean over the reference models (the
    offline linear approximation with ``offline_a`` without IN model), Pr(z) the approximation with
    ``offline_a``. Uses the first ``n_population`` population records (all when None). Scores in
    [0, 1], ties kept; no decision threshold (None)."""
    _check(inputs, gamma, offline_a, n_population, None, 0)
    n_population = n_population or int(inputs.population_labels.shape[0])
    pop = slice(0, n_population)
    scores, a = relative_scores(
        log_true_class_probability(inputs.target_logits, inputs.labels),
        log_true_class_probability(inputs.reference_logits, inputs.labels), inputs.reference_in,
        log_true_class_probability(inputs.population_target_logits[pop], inputs.population_labels[pop]),
        log_true_class_probability(inputs.population_reference_logits[:, pop], inputs.population_labels[pop]),
        gamma, offline_a, fit_a=False, break_ties=False)
    return AttackScores(scores, params={"temperature": 1.0, "neighbors": 0, "a": a})


def rmia_tempered_offsets(inputs: AttackInputs, gamma: float = 2.0, offline_a: float = 0.3,
                          n_population: int | None = None, temperature: float | None = None,
                          neighbors: int = LOCAL_NEIGHBORS) -> AttackScores:
    """miaudit's RMIA: scores in [0, 1) for the N audited records, with a softmax temperature
    (None = picked by :func:`select_temperature`), local offsets over ``neighbors`` population
    neighbours (0 = none), a fitted to the IN / OUT models, and records of equal count ordered by
    LR_x (equal LR_x, equal score). Temperature, neighbours and a are reported in ``params``; no
    decision threshold (None)."""
    _check(inputs, gamma, offline_a, n_population, temperature, neighbors)
    n_population = n_population or int(inputs.population_labels.shape[0])
    pop = slice(0, n_population)
    pop_labels = inputs.population_labels[pop]
    pop_target, pop_ref = inputs.population_target_logits[pop], inputs.population_reference_logits[:, pop]
    if neighbors:
        nb = shared_population_neighbours(inputs, neighbors, n_population=n_population)
        references = OffsetModels(inputs.reference_logits, inputs.labels, pop_ref, pop_labels)
    if temperature is None:
        if not neighbors:
            shadow = None
        elif inputs.shadow_records_are_audited:
            shadow = (references, nb)
        else:
            shadow = (OffsetModels(inputs.shadow_logits, inputs.shadow_labels, pop_ref, pop_labels),
                      shared_population_neighbours(inputs, neighbors, shadow=True, n_population=n_population))
        t = _select_temperature(inputs, offline_a, TEMPERATURES, shadow)
    else:
        t = float(temperature)
    if not neighbors:
        log_px_target = log_true_class_probability(inputs.target_logits / t, inputs.labels)
        log_px_ref = log_true_class_probability(inputs.reference_logits / t, inputs.labels)
        log_pz_target = log_true_class_probability(pop_target / t, pop_labels)
        log_pz_ref = log_true_class_probability(pop_ref / t, pop_labels)
    else:
        target = OffsetModels(inputs.target_logits, inputs.labels, pop_target, pop_labels)
        mean = references.population_mean(t)
        log_px_ref, log_pz_ref = references.log_p(t, nb.records, mean), references.population_log_p(t, nb, mean)
        log_px_target, log_pz_target = target.log_p(t, nb.records, mean), target.population_log_p(t, nb, mean)
    scores, a = relative_scores(log_px_target, log_px_ref, inputs.reference_in, log_pz_target, log_pz_ref,
                                gamma, offline_a)
    return AttackScores(scores, params={"temperature": t, "neighbors": int(neighbors), "a": a})


def _check(inputs: AttackInputs, gamma: float, offline_a: float, n_population: int | None,
           temperature: float | None, neighbors: int) -> None:
    """InputError for settings RMIA cannot run with."""
    if inputs.n_reference < 1:
        raise InputError("rmia: needs at least 1 reference model (--reference-models), got 0")
    n_available = int(inputs.population_labels.shape[0])
    if n_available < 1:
        raise InputError("rmia: needs population records (attacker data no model trained on), got 0")
    if not gamma > 0:
        raise InputError(f"rmia: gamma must be > 0, got {gamma}")
    if not 0.0 <= offline_a <= 1.0:
        raise InputError(f"rmia: offline_a must lie in [0, 1], got {offline_a}")
    if n_population is not None and not 1 <= n_population <= n_available:
        raise InputError(f"rmia: n_population must lie in [1, {n_available}] (population records), "
                         f"got {n_population}")
    if temperature is not None and not temperature > 0:
        raise InputError(f"rmia: temperature must be > 0, got {temperature}")
    if not (isinstance(neighbors, (int, np.integer)) and neighbors >= 0):
        raise InputError(f"rmia: neighbors must be an integer >= 0, got {neighbors}")


def select_temperature(inputs: AttackInputs, offline_a: float = 0.3,
                       temperatures: tuple[float, ...] = TEMPERATURES, neighbors: int = 0) -> float:
    """The softmax temperature whose RMIA ranking best separates held-out reference models'
    members from non-members (mean TPR at CALIBRATION_FPR over up to CALIBRATION_MODELS held-out
    models). Uses the shadow records only (and, with ``neighbors``, the population records for the
    local offsets); 1.0 when fewer than 2 models or no usable record."""
    shadow = None
    if neighbors:
        shadow = (OffsetModels(inputs.shadow_logits, inputs.shadow_labels, inputs.population_reference_logits,
                                inputs.population_labels),
                  shared_population_neighbours(inputs, neighbors, shadow=True))
    return _select_temperature(inputs, offline_a, temperatures, shadow)


def _select_temperature(inputs: AttackInputs, offline_a: float, temperatures: tuple[float, ...],
                        shadow: tuple[OffsetModels, PopulationNeighbours] | None) -> float:
    """select_temperature, with the reference models on the shadow records and their neighbours
    (None: no local offsets)."""
    k = inputs.n_reference
    if k < 2 or inputs.shadow_in.shape[1] == 0:
        return 1.0
    n_shadow = inputs.shadow_in.shape[1]
    held_out = [h for h in range(min(k, CALIBRATION_MODELS)) if 0 < inputs.shadow_in[h].sum() < n_shadow]
    if not held_out:
        return 1.0
    best, best_tpr = 1.0, -1.0
    for t in temperatures:
        if shadow is None:
            log_p = log_true_class_probability(inputs.shadow_logits / t, inputs.shadow_labels)  # [K, R]
        else:
            models, nb = shadow
            log_p = models.log_p(t, nb.records, models.population_mean(t))
        tpr = float(np.mean(_held_out_tprs(log_p, inputs.shadow_in, held_out, offline_a)))
        if tpr > best_tpr + 1e-12:
            best, best_tpr = float(t), tpr
    return best


class OffsetModels:
    """Models [..., M, Q, C] on records [M] and on population records [..., Z, Q, C]: their log
    Pr(x|model) at a temperature with the local offsets removed (module docstring). The scaled
    confidences are prepared once for all temperatures; the population's is kept for the last t."""

    def __init__(self, logits, labels, population_logits, population_labels):
        self._phi = tempered_scaled_confidence(logits, labels[:, None])
        self._phi_z = tempered_scaled_confidence(population_logits, population_labels[:, None])
        self._last: tuple[float, np.ndarray] | None = None

    def population_phi(self, t: float) -> np.ndarray:
        if self._last is None or self._last[0] != t:
            self._last = (t, self._phi_z(t))
        return self._last[1]

    def population_mean(self, t: float) -> np.ndarray:
        """The mean population phi over the models [Z, Q]: the baseline of the offsets."""
        phi_z = self.population_phi(t)
        return phi_z.mean(axis=0) if phi_z.ndim == 3 else phi_z

    def log_p(self, t: float, averaging, mean: np.ndarray) -> np.ndarray:
        """[..., M] on the records, offsets against the reference mean population phi ``mean``."""
        return _log_sigmoid_over_queries(remove_offsets(self._phi(t), self.population_phi(t), mean, averaging))

    def population_log_p(self, t: float, nb: PopulationNeighbours, mean: np.ndarray) -> np.ndarray:
        """[..., Z] on the population records (each without itself among its neighbours)."""
        phi_z = self.population_phi(t)
        return _log_sigmoid_over_queries(remove_offsets(phi_z, phi_z, mean, nb.population))


def _log_sigmoid_over_queries(phi: np.ndarray) -> np.ndarray:
    """log of sigmoid(phi) averaged over the query axis: [..., M, Q] -> [..., M], floored."""
    log_p = logsumexp(log_expit(phi), axis=-1) - np.log(phi.shape[-1])
    return np.maximum(log_p, LOG_PROBABILITY_FLOOR)


def _held_out_tprs(log_p: np.ndarray, is_in: np.ndarray, held_out: list[int], offline_a: float) -> list[float]:
    """TPR at CALIBRATION_FPR of each held-out model attacked with the other models' marginal.
    log_p, is_in: [K, R]; the other models' IN / OUT sums are the totals minus the held-out model's."""
    return held_out_tprs_of(log_p[held_out], is_in[held_out], *model_sums(log_p, is_in), offline_a)


def model_sums(log_p: np.ndarray, is_in: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]:
    """((sum over IN models of p, over OUT models) [R], (IN count, OUT count) float [R]) of log_p, is_in [K, R]."""
    p = np.exp(log_p)
    member = is_in.astype(np.float64)
    return ((p * member).sum(axis=0), (p * (1.0 - member)).sum(axis=0)), (member.sum(axis=0),
                                                                           (1.0 - member).sum(axis=0))


def held_out_tprs_of(log_p_held: np.ndarray, is_in_held: np.ndarray, sums: tuple, counts: tuple,
                     offline_a: float) -> list[float]:
    """:func:`_held_out_tprs` from the held-out models' rows log_p_held, is_in_held [H, R] and all models'
    :func:`model_sums` [R]."""
    out = []
    for log_p_h, is_in_h in zip(log_p_held, is_in_held):
        p_h, member_h = np.exp(log_p_h), is_in_h.astype(np.float64)
        n_in, n_out = counts[0] - member_h, counts[1] - (1.0 - member_h)
        with np.errstate(divide="ignore", invalid="ignore"):  # empty sides are handled by the helpers
            p_in = (sums[0] - p_h * member_h) / n_in
            p_out = (sums[1] - p_h * (1.0 - member_h)) / n_out
        a = _fit_a(p_in, p_out, (n_in > 0) & (n_out > 0), offline_a)
        log_lr = log_p_h - np.log(_marginal_from_means(p_in, n_in, p_out, n_out, a))
        fpr, tpr, _ = roc_curve(is_in_h, log_lr)
        out.append(float(tpr[fpr <= CALIBRATION_FPR].max()))
    return out


def log_true_class_probability(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log of the true-class probability averaged over queries: logits [..., M, Q, C], labels [M]
    -> float64 [..., M]."""
    log_p = logsumexp(-loss(logits, labels[:, None]), axis=-1) - np.log(logits.shape[-2])
    return np.maximum(log_p, LOG_PROBABILITY_FLOOR)


def marginal(p_ref: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray, a: float) -> np.ndarray:
    """Pr(x) = 1/2 (Pr_IN(x) + Pr_OUT(x)) per record, from reference probabilities [K, M] and the
    masks bool [K, M] of the models to count as IN / OUT for each record.

    Pr_IN, Pr_OUT are means over those models; without IN model Pr_IN = a Pr_OUT + (1 - a); without
    OUT model Pr(x) = Pr_IN; NaN without either. float64 [M] in (0, 1].
    """
    n_in, n_out = in_mask.sum(axis=0), out_mask.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 where a side is empty, replaced below
        p_in = (p_ref * in_mask).sum(axis=0) / n_in
        p_out = (p_ref * out_mask).sum(axis=0) / n_out
    return _marginal_from_means(p_in, n_in, p_out, n_out, a)


def _marginal_from_means(p_in: np.ndarray, n_in: np.ndarray, p_out: np.ndarray, n_out: np.ndarray,
                         a: float) -> np.ndarray:
    """:func:`marginal` from per-record means over IN / OUT models [M] and their counts [M]."""
    p_in = np.where(n_in > 0, p_in, a * p_out + (1 - a))
    return np.where(n_out > 0, 0.5 * (p_in + p_out), p_in)


def fit_offline_a(p_ref: np.ndarray, is_in: np.ndarray, default: float) -> float:
    """a in [0, 1] of Pr_IN - 1 = a (Pr_OUT - 1), least squares over records with IN and OUT models
    (p_ref [K, M] probabilities, is_in bool [K, M]); ``default`` when no record has both."""
    n_in, n_out = is_in.sum(axis=0), (~is_in).sum(axis=0)
    both = (n_in > 0) & (n_out > 0)
    with np.errstate(divide="ignore", invalid="ignore"):  # records without both sides are not used
        p_in = (p_ref * is_in).sum(axis=0) / n_in
        p_out = (p_ref * ~is_in).sum(axis=0) / n_out
    return _fit_a(p_in, p_out, both, default)


def _fit_a(p_in: np.ndarray, p_out: np.ndarray, both: np.ndarray, default: float) -> float:
    """:func:`fit_offline_a` from per-record IN / OUT means [M] and the records with both sides."""
    if not both.any():
        return default
    p_in, p_out = p_in[both], p_out[both]
    denominator = float(((p_out - 1) ** 2).sum())
    if denominator == 0.0:
        return default
    return float(np.clip(((p_in - 1) * (p_out - 1)).sum() / denominator, 0.0, 1.0))


def relative_scores(log_px_target: np.ndarray, log_px_ref: np.ndarray, ref_in: np.ndarray,
                    log_pz_target: np.ndarray, log_pz_ref: np.ndarray, gamma: float,
                    offline_a: float, fit_a: bool = True, break_ties: bool = True) -> tuple[np.ndarray, float]:
    """(scores float64 [N], the a used): the fraction of population records z with LR_x / LR_z >= gamma.

    log_px_target [N] / log_pz_target [Z]: the target's log Pr(.|theta); log_px_ref [K, N] /
    log_pz_ref [K, Z]: the reference models'; ref_in bool [K, N]. Population records are OUT for
    every reference model, so Pr(z) is the linear approximation with a: ``offline_a``, or with
    ``fit_a`` :func:`fit_offline_a` of the audited records (``offline_a`` without IN models).
    break_ties=False: score = count / Z, the paper's. True: score = (count + rank / (N + 1)) / (Z + 1)
    with rank the average rank of LR_x among the audited records (0-based), so records of equal count
    are ordered by LR_x, equal LR_x stay tied, and count = floor(score * (Z + 1)).
    """
    return relative_scores_of_means(log_px_target, side_means(np.exp(log_px_ref), ref_in), log_pz_target, log_pz_ref,
                                    gamma, offline_a, fit_a, break_ties)


def side_means(p_ref: np.ndarray, is_in: np.ndarray) -> tuple[np.ndarray, ...]:
    """(Pr_IN [M], IN count [M], Pr_OUT [M], OUT count [M]): the means of p_ref [K, M] over each record's IN
    and OUT models (is_in [K, M]; NaN where a side is empty)."""
    n_in, n_out = is_in.sum(axis=0), (~is_in).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (p_ref * is_in).sum(axis=0) / n_in, n_in, (p_ref * ~is_in).sum(axis=0) / n_out, n_out


def relative_scores_of_means(log_px_target: np.ndarray, means: tuple[np.ndarray, ...], log_pz_target: np.ndarray,
                             log_pz_ref: np.ndarray, gamma: float, offline_a: float, fit_a: bool = True,
                             break_ties: bool = True) -> tuple[np.ndarray, float]:
    """:func:`relative_scores` from the audited records' :func:`side_means` of the reference probabilities."""
    p_in, n_in, p_out, n_out = means
    pz_ref = np.exp(log_pz_ref)
    a = _fit_a(p_in, p_out, (n_in > 0) & (n_out > 0), offline_a) if fit_a else float(offline_a)
    log_lr_x = log_px_target - np.log(_marginal_from_means(p_in, n_in, p_out, n_out, a))
    all_out = np.ones(pz_ref.shape, bool)
    log_lr_z = log_pz_target - np.log(marginal(pz_ref, ~all_out, all_out, a))
    # LR_x / LR_z >= gamma  <=>  log LR_z <= log LR_x - log gamma
    below = np.searchsorted(np.sort(log_lr_z), log_lr_x - np.log(gamma), side="right")
    if not break_ties:
        return below / len(log_lr_z), a
    rank = rankdata(log_lr_x, method="average") - 1.0
    return (below + rank / (len(rank) + 1.0)) / (len(log_lr_z) + 1.0), a
