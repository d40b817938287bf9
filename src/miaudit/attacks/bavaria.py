"""BaVarIA, the Bayesian variance inference attack of Brännvall (2026), "Exponential-Family Membership
Inference: From LiRA and RMIA to BaVarIA" (arXiv 2603.11799): LiRA's Gaussian test on the
logit-scaled confidence phi, with each record's mean and variance given a conjugate
normal-inverse-gamma (NIG) prior instead of LiRA's switch between per-example and global variances.

Per side (IN / OUT) and query, every record's phi values x_1..x_n (its n reference models on that
side) are normal with unknown mean mu and variance sigma^2, and
mu | sigma^2 ~ N(mu0, sigma^2 / kappa0), sigma^2 ~ InvGamma(alpha0, beta0). The posterior is NIG:
kappa_n = kappa0 + n, mu_n = (kappa0 mu0 + n m) / kappa_n, alpha_n = alpha0 + n / 2,
beta_n = beta0 + SS / 2 + kappa0 n (m - mu0)^2 / (2 kappa_n), with m the mean and SS the sum of squared
deviations of the n values. A new model's phi then follows
- ``"t"`` (BaVarIA-t): Student-t, 2 alpha_n degrees of freedom, location mu_n,
  scale^2 = beta_n (kappa_n + 1) / (alpha_n kappa_n);
- ``"n"`` (BaVarIA-n): normal, location mu_n, variance E[sigma^2] (kappa_n + 1) / kappa_n with
  E[sigma^2] = beta_n / (alpha_n - 1) (the t's scale^2 when alpha_n <= 1).
A record with no model on a side gets the prior predictive (n = 0): no switching, no fallback rule.

The hyperparameters are fitted to all records of the side (empirical Bayes, nothing to tune):
(alpha0, beta0) = (d0 / 2, d0 s0^2 / 2) from the sample variances (ddof 1) by Smyth's moments
(:func:`miaudit.attacks.moderated.fit_variance_prior`; no record with two models on the side: the
side's global variance with d0 = inf, i.e. a known variance); mu0 = mean of the record means;
kappa0 = s0^2 / tau^2 with tau^2 the spread of the record means beyond their sampling noise.
Scores as LiRA's: online sum_q log p_IN(phi) - log p_OUT(phi) (member when > 0), offline
-sum_q log P_OUT(phi' >= phi) (no decision).

Reference read: the paper's abstract only (its full text was not reachable); the NIG conjugate
update and predictive are the textbook ones (e.g. Murphy 2012, ch. 4.6), the empirical-Bayes fit of
the hyperparameters is this module's reading of "no additional hyperparameter tuning".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.lira import MIN_SCALE, scaled_confidence
from miaudit.attacks.moderated import fit_variance_prior, t_logpdf, t_logsf
from miaudit.attacks.params import AttackParams
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

PREDICTIVES = ("t", "n")
"""BaVarIA-t (Student-t predictive) and BaVarIA-n (normal with the posterior mean variance)."""


class BavariaParams(AttackParams):
    """Parameters of the bavaria-* attacks."""

    predictive: Literal["t", "n"] = Field("t", description="t: Student-t predictives (BaVarIA-t); n: normal "
                                                           "with the posterior mean variance (BaVarIA-n)")
MIN_KAPPA0 = 1e-6
"""kappa0 is clipped below here (records' means that vary far more than their noise: a flat mean prior)."""


@dataclass(frozen=True)
class NIGPrior:
    """mu ~ N(mu0, sigma^2 / kappa0), sigma^2 ~ InvGamma(alpha0, beta0); alpha0 = inf: sigma^2 = beta0
    (known variance). mu0 [Q], the others scalars."""

    mu0: np.ndarray
    kappa0: float
    alpha0: float
    beta0: float


@dataclass(frozen=True)
class NIGPosterior:
    """Per record and query [N, Q]: mu_n, kappa_n, alpha_n, beta_n (alpha_n inf with a known variance,
    then beta_n is that variance)."""

    mu: np.ndarray
    kappa: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    def predictive(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(loc, scale, dof) [N, Q] of a new model's phi: module docstring."""
        spread = (self.kappa + 1.0) / self.kappa
        known = np.isinf(self.alpha)
        with np.errstate(invalid="ignore", divide="ignore"):
            t_var = np.where(known, self.beta, self.beta / self.alpha) * spread
            if kind == "t":
                var, dof = t_var, 2.0 * self.alpha
            else:
                mean_var = np.where(known, self.beta, self.beta / (self.alpha - 1.0))
                var, dof = np.where(self.alpha > 1.0, mean_var * spread, t_var), np.full(self.mu.shape, np.inf)
        return self.mu, np.maximum(np.sqrt(var), MIN_SCALE), dof


def record_moments(phi: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n [N], mean [N, Q], SS [N, Q]) of phi [K, N, Q] over the models ``mask`` [K, N] marks (mean 0 at n = 0)."""
    w = mask[:, :, None].astype(np.float64)
    n = mask.sum(axis=0)
    mean = (phi * w).sum(axis=0) / np.maximum(n, 1)[:, None]
    ss = (((phi - mean[None]) * w) ** 2).sum(axis=0)
    return n, mean, ss


def fit_nig_prior(phi: np.ndarray, mask: np.ndarray) -> NIGPrior | None:
    """Empirical-Bayes NIG prior of one side from phi [K, N, Q] and mask bool [K, N]; None without values."""
    n, mean, ss = record_moments(phi, mask)
    return nig_prior_of_moments(n, mean, ss, lambda: float(phi[np.broadcast_to(mask[:, :, None], phi.shape)].var()))


def nig_prior_of_moments(n: np.ndarray, mean: np.ndarray, ss: np.ndarray,
                         side_variance: Callable[[], float]) -> NIGPrior | None:
    """:func:`fit_nig_prior` from the side's per-record moments (:func:`record_moments`: n [N], mean and
    SS [N, Q]); side_variance() gives the variance (ddof 0) of all the side's values, called only when no
    record has two models on the side. None without values."""
    has = n > 0
    if not has.any():
        return None
    dof = np.broadcast_to((n - 1.0)[:, None], ss.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        prior = fit_variance_prior(ss / dof, dof, floor=MIN_SCALE ** 2)
    if prior is None:  # no record with two models on the side: the side's global variance, known
        s0sq, alpha0 = max(side_variance(), MIN_SCALE ** 2), np.inf
    else:
        s0sq, alpha0 = prior.s0sq, prior.d0 / 2.0
    means = mean[has]  # [M, Q]
    mu0 = means.mean(axis=0)
    tau2 = float(means.var() - np.mean(s0sq / n[has]))
    kappa0 = MIN_KAPPA0 if tau2 <= s0sq / 1e6 else max(s0sq / tau2, MIN_KAPPA0)
    beta0 = s0sq if np.isinf(alpha0) else alpha0 * s0sq
    return NIGPrior(mu0, float(kappa0), float(alpha0), float(beta0))


def nig_posterior(phi: np.ndarray, mask: np.ndarray, prior: NIGPrior) -> NIGPosterior:
    """The conjugate update (module docstring) of every record and query: phi [K, N, Q], mask [K, N]."""
    n, mean, ss = record_moments(phi, mask)
    nq = np.broadcast_to(n[:, None].astype(np.float64), mean.shape)
    kappa = prior.kappa0 + nq
    mu = (prior.kappa0 * prior.mu0[None] + nq * mean) / kappa
    if np.isinf(prior.alpha0):
        return NIGPosterior(mu, kappa, np.full(mu.shape, np.inf), np.full(mu.shape, prior.beta0))
    alpha = prior.alpha0 + nq / 2.0
    beta = prior.beta0 + ss / 2.0 + prior.kappa0 * nq * (mean - prior.mu0[None]) ** 2 / (2.0 * kappa)
    return NIGPosterior(mu, kappa, alpha, beta)


def _side(phi: np.ndarray, mask: np.ndarray, kind: str) -> tuple[np.ndarray, ...] | None:
    """(loc, scale, dof) [N, Q] of one side's predictive, None when the side has no value."""
    prior = fit_nig_prior(phi, mask)
    if prior is None:
        return None
    return nig_posterior(phi, mask, prior).predictive(kind)


def check_predictive(kind: str, name: str) -> None:
    """InputError naming the attack ``name`` unless ``kind`` is one of PREDICTIVES."""
    if kind not in PREDICTIVES:
        raise InputError(f"{name}: predictive must be one of {', '.join(map(repr, PREDICTIVES))}, got {kind!r}")


def _setup(inputs: AttackInputs, kind: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    check_predictive(kind, name)
    if inputs.n_reference < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    return (scaled_confidence(inputs.target_logits, inputs.labels[:, None]),
            scaled_confidence(inputs.reference_logits, inputs.labels[None, :, None]))


def bavaria_online(inputs: AttackInputs, predictive: str = "t") -> AttackScores:
    """BaVarIA online: float64 [N] log likelihood ratios IN vs OUT; member when > 0 (threshold 0)."""
    phi_t, phi_r = _setup(inputs, predictive, "bavaria-online")
    pred_in = _side(phi_r, inputs.reference_in, predictive)
    pred_out = _side(phi_r, ~inputs.reference_in, predictive)
    if pred_in is None or pred_out is None:
        raise InputError("bavaria-online: needs reference models trained on the audited records and others not")
    scores = online_scores(phi_t, pred_in, pred_out)
    return AttackScores(scores, scores > 0.0, 0.0, {"predictive": predictive})


def bavaria_offline(inputs: AttackInputs, predictive: str = "t") -> AttackScores:
    """BaVarIA offline: float64 [N] one-sided scores against the OUT predictive; no decision."""
    phi_t, phi_r = _setup(inputs, predictive, "bavaria-offline")
    pred_out = _side(phi_r, ~inputs.reference_in, predictive)
    if pred_out is None:
        raise InputError("bavaria-offline: needs reference models not trained on the audited records")
    scores = offline_scores(phi_t, pred_out)
    return AttackScores(scores, params={"predictive": predictive})


def online_scores(phi_t: np.ndarray, pred_in: tuple[np.ndarray, ...], pred_out: tuple[np.ndarray, ...]
                  ) -> np.ndarray:
    """sum_q log p_IN(phi) - log p_OUT(phi): phi_t [N, Q], predictives (loc, scale, dof) [N, Q] -> [N]."""
    return (t_logpdf(phi_t, *pred_in) - t_logpdf(phi_t, *pred_out)).sum(axis=-1)


def offline_scores(phi_t: np.ndarray, pred_out: tuple[np.ndarray, ...]) -> np.ndarray:
    """-sum_q log P_OUT(phi' >= phi): phi_t [N, Q], the OUT predictive (loc, scale, dof) [N, Q] -> [N]."""
    return -t_logsf(phi_t, *pred_out).sum(axis=-1)

