"""BaVarIA streamed (:mod:`miaudit.attacks.bavaria`): bavaria-online / -offline, BaVarIA-t and -n.

Pass 1 (cached per side): each chunk's per-record moments of phi (count [b], mean and SS [b, Q]), O(N) in
all, to which the side's NIG prior is fitted as in memory. Pass 2: each chunk's posteriors, predictives
and scores under that prior.
"""
from __future__ import annotations

import numpy as np

from miaudit.attacks.bavaria import (
    NIGPrior,
    check_predictive,
    nig_posterior,
    nig_prior_of_moments,
    offline_scores,
    online_scores,
    record_moments,
)
from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.streamed.passes import check_references, per_chunk, phis
from miaudit.errors import InputError


def pooled_variance(n: np.ndarray, mean: np.ndarray, ss: np.ndarray) -> float:
    """The variance (ddof 0) of all values behind per-record moments n [N], mean [N, Q], SS [N, Q]."""
    w = np.broadcast_to(n[:, None].astype(np.float64), mean.shape)
    total = w.sum()
    grand = (w * mean).sum() / total
    return float((ss.sum() + (w * (mean - grand) ** 2).sum()) / total)


def nig_priors(store) -> dict[str, NIGPrior | None]:
    """{"in", "out"}: each side's NIG prior fitted to all records' moments (one pass, cached)."""
    if "bavaria_priors" not in store.cache:
        def moments(x):
            _, phi = phis(x)
            return (*record_moments(phi, x.reference_in), *record_moments(phi, ~x.reference_in))

        chunks = [moments(x) for _, _, x in store.chunks()]
        parts = [np.concatenate([c[i] for c in chunks]) for i in range(6)]  # n [N], mean, SS [N, Q] per side
        store.cache["bavaria_priors"] = {
            side: nig_prior_of_moments(n, mean, ss, lambda n=n, mean=mean, ss=ss: pooled_variance(n, mean, ss))
            for side, (n, mean, ss) in (("in", parts[:3]), ("out", parts[3:]))}
    return store.cache["bavaria_priors"]


def _predictive(phi: np.ndarray, mask: np.ndarray, prior: NIGPrior, kind: str) -> tuple[np.ndarray, ...]:
    return nig_posterior(phi, mask, prior).predictive(kind)


def bavaria_online(store, predictive: str = "t") -> AttackScores:
    """:func:`miaudit.attacks.bavaria.bavaria_online` over the store's record chunks."""
    check_predictive(predictive, "bavaria-online")
    check_references(store, "bavaria-online")
    priors = nig_priors(store)
    if priors["in"] is None or priors["out"] is None:
        raise InputError("bavaria-online: needs reference models trained on the audited records and others not")

    def score(x):
        phi_t, phi_r = phis(x)
        return online_scores(phi_t, _predictive(phi_r, x.reference_in, priors["in"], predictive),
                             _predictive(phi_r, ~x.reference_in, priors["out"], predictive))

    scores = per_chunk(store, score)
    return AttackScores(scores, scores > 0.0, 0.0, {"predictive": predictive})


def bavaria_offline(store, predictive: str = "t") -> AttackScores:
    """:func:`miaudit.attacks.bavaria.bavaria_offline` over the store's record chunks."""
    check_predictive(predictive, "bavaria-offline")
    check_references(store, "bavaria-offline")
    prior = nig_priors(store)["out"]
    if prior is None:
        raise InputError("bavaria-offline: needs reference models not trained on the audited records")

    def score(x):
        phi_t, phi_r = phis(x)
        return offline_scores(phi_t, _predictive(phi_r, ~x.reference_in, prior, predictive))

    return AttackScores(per_chunk(store, score), params={"predictive": predictive})


def bavaria_n_online(store) -> AttackScores:
    """bavaria-n-online (the normal predictive) over the store's record chunks."""
    return bavaria_online(store, "n")


def bavaria_n_offline(store) -> AttackScores:
    """bavaria-n-offline (the normal predictive) over the store's record chunks."""
    return bavaria_offline(store, "n")
