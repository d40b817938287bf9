"""LiRA streamed (:mod:`miaudit.attacks.lira`): lira-online and lira-offline with the paper's variances
(variance "paper": "global" below 64 reference models, "per-example" from 64 on).

Pass 1 (cached): per-model moments of phi on each side (:func:`passes.side_stats`), from which the global
scale of any subset of models follows (all models; each held-out model left out). Only when some record
has no model on a side (read from the masks alone), a pass keeps each record's median per side (O(N), per
held-out model too) for the in-memory location fallback (the median IN - OUT gap over records with both).
Pass 2: each chunk's predictives and scores. lira-offline's leave-one-model-out threshold keeps the
held-out models' scores (at most CALIBRATION_MODELS x N float64) to calibrate on all of them, as in memory.
"""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.lira import (
    CALIBRATION_MODELS,
    fit_predictives,
    offline_scores,
    online_scores,
    resolve_variance,
    side_moments,
)
from miaudit.attacks.streamed.passes import SideStats, check_references, held_out_verdict, phis, side_stats
from miaudit.errors import InputError


def _scales(stats: dict[str, SideStats], models: np.ndarray) -> dict[str, np.ndarray]:
    return {side: stats[side].scale(models) for side in ("in", "out")}


def _gaps(store, subsets: dict) -> dict:
    """{key: {"in", "out"}: the median location gap [Q] of each side to the other over the records with
    models on both (None: none)} for each subset of models (bool [K]) in ``subsets``; {} when every record
    has a model on both sides under every subset (read from the masks: no gap is needed)."""
    def missing(mask: np.ndarray) -> bool:
        n_in = mask.sum(axis=0)
        return bool((n_in == 0).any() or (n_in == len(mask)).any())

    if not any(missing(store.reference_in(a, b)[m]) for a, b in store.blocks() for m in subsets.values()):
        return {}
    medians: dict = {key: [] for key in subsets}
    for _, _, x in store.chunks():
        _, phi = phis(x)
        for key, models in subsets.items():
            inside, outside = side_moments(phi[models], x.reference_in[models]), side_moments(
                phi[models], ~x.reference_in[models])
            medians[key].append((inside[0], inside[3], outside[0], outside[3]))
    gaps = {}
    for key, parts in medians.items():
        med_in, n_in, med_out, n_out = (np.concatenate([p[i] for p in parts]) for i in range(4))
        both = (n_in > 0) & (n_out > 0)
        gaps[key] = ({"in": np.median(med_in[both] - med_out[both], axis=0),
                      "out": np.median(med_out[both] - med_in[both], axis=0)} if both.any()
                     else {"in": None, "out": None})
    return gaps


def _setup(store, name: str, variance: str) -> tuple[int, str, dict[str, SideStats]]:
    """(K, the resolved variance, the store's per-side moments) for a streamed LiRA attack."""
    k = check_references(store, name)
    variance = resolve_variance(variance, k)
    if variance not in ("global", "per-example"):
        raise InputError(f"{name}: streamed with variance 'paper', 'global' or 'per-example', got {variance!r}")
    return k, variance, side_stats(store)


def lira_online(store, variance: str = "paper") -> AttackScores:
    """:func:`miaudit.attacks.lira.lira_online` (no local offsets) over the store's record chunks."""
    k, variance, stats = _setup(store, "lira-online", variance)
    if not stats["in"].n.any():
        raise InputError("lira-online: needs reference models trained on the audited records "
                         "(reference_data='pool')")
    scales = _scales(stats, np.ones(k, bool))
    gaps = _gaps(store, {"all": np.ones(k, bool)}).get("all")
    parts = []
    for _, _, x in store.chunks():
        phi_t, phi_r = phis(x)
        pred_in, pred_out = fit_predictives(phi_r, x.reference_in, variance, scales, gaps=gaps)
        parts.append(online_scores(phi_t, pred_in, pred_out))
    scores = np.concatenate(parts)
    return AttackScores(scores, scores > 0.0, 0.0, {"variance": variance, "neighbors": 0})


def lira_offline(store, variance: str = "paper") -> AttackScores:
    """:func:`miaudit.attacks.lira.lira_offline` (no local offsets) over the store's record chunks,
    its leave-one-model-out threshold included (the held-out models' scores are kept: 16 x N)."""
    k, variance, stats = _setup(store, "lira-offline", variance)
    if not stats["out"].n.any():
        raise InputError("lira-offline: needs reference models not trained on the audited records")
    everyone = np.ones(k, bool)
    held = [] if k < 2 else [h for h in range(min(k, CALIBRATION_MODELS)) if stats["out"].n[np.arange(k) != h].any()]
    others = {h: np.arange(k) != h for h in held}
    scales = {"all": _scales(stats, everyone), **{h: _scales(stats, others[h]) for h in held}}
    gaps = _gaps(store, {"all": everyone, **others})
    parts: list[np.ndarray] = []
    held_scores: dict[int, list[np.ndarray]] = {h: [] for h in held}
    held_in: dict[int, list[np.ndarray]] = {h: [] for h in held}
    for _, _, x in store.chunks():
        phi_t, phi_r = phis(x)
        _, pred_out = fit_predictives(phi_r, x.reference_in, variance, scales["all"], gaps=gaps.get("all"))
        parts.append(offline_scores(phi_t, pred_out))
        for h in held:
            _, out_h = fit_predictives(phi_r[others[h]], x.reference_in[others[h]], variance, scales[h],
                                       gaps=gaps.get(h))
            held_scores[h].append(offline_scores(phi_r[h], out_h))
            held_in[h].append(x.reference_in[h])
    scores = np.concatenate(parts)
    return held_out_verdict(scores, held, held_scores, held_in, {"variance": variance, "neighbors": 0})
