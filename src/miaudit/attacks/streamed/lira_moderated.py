"""miaudit's LiRA streamed (:mod:`miaudit.attacks.lira`): lira-online-moderated-offsets and
lira-offline-moderated-offsets (variance "moderated", LOCAL_NEIGHBORS population neighbours).

Local offsets are per record: a chunk's records find their population neighbours on their own (the
population, Z records, is read whole), so each chunk's phi less its offsets equals the in-memory rows.
Pass 1 keeps each record's moments on each side (mean, SS [N, Q], count [N]) and fits every side's
:class:`miaudit.attacks.moderated.SideFit` (location gap, pooled scale, variance prior) to all of them;
lira-offline's leave-one-model-out threshold does the same with each of its held-out models left out
(up to CALIBRATION_MODELS x 2 sides x 3 numbers per record and query, O(16 N)) and keeps their
scores (16 x N). Pass 2 scores the chunks.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.lira import (
    CALIBRATION_MODELS,
    MIN_SCALE,
    fit_predictives,
    offline_scores,
    online_scores,
    scaled_confidence,
    side_moments,
)
from miaudit.attacks.local_offsets import LOCAL_NEIGHBORS, record_neighbours, remove_offsets
from miaudit.attacks.moderated import SideFit, side_fit
from miaudit.attacks.streamed.passes import check_references, held_out_verdict, phis
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs


def offset_phis(store, neighbors: int) -> Iterator[tuple[AttackInputs, np.ndarray, np.ndarray]]:
    """(chunk, phi of the target [b, Q], of the references [K, b, Q]) of every chunk, less the local offsets
    of ``neighbors`` population neighbours (none without population records), as lira's in memory."""
    pop_t, pop_r, pop_y = store.population()
    if not len(pop_y):
        for _, _, x in store.chunks():
            yield (x, *phis(x))
        return
    pop_target = scaled_confidence(pop_t[:, None], pop_y[:, None])
    pop_ref = scaled_confidence(pop_r[:, :, None], pop_y[None, :, None])
    mean = pop_ref.mean(axis=0)
    for _, _, x in store.chunks():
        phi_t, phi_r = phis(x)
        nb = record_neighbours(x.reference_logits, x.labels, pop_r[:, :, None], pop_y, neighbors)
        yield x, remove_offsets(phi_t, pop_target, mean, nb), remove_offsets(phi_r, pop_ref, mean, nb)


def _std(mean: np.ndarray, sq_dev: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The std (ddof 0) [Q] of all values behind per-record moments mean, SS [N, Q], count [N]; NaN if none."""
    total = count.sum()
    if total == 0:
        return np.full(mean.shape[1], np.nan)
    w = count[:, None].astype(np.float64)
    mean = np.where(count[:, None] > 0, mean, 0.0)
    grand = (w * mean).sum(axis=0) / total
    return np.sqrt((sq_dev.sum(axis=0) + (w * (mean - grand) ** 2).sum(axis=0)) / total)


def _fits(parts: list[dict[str, tuple]]) -> dict[str, SideFit]:
    """Each side's SideFit from the chunks' moments {"in"/"out": (mean, SS, count)}; InputError when a
    record has no model on a side that others have and no record has models on both sides."""
    joined = {s: tuple(np.concatenate([p[s][i] for p in parts]) for i in range(3)) for s in ("in", "out")}
    fits = {}
    for side, other in (("in", "out"), ("out", "in")):
        own, theirs = joined[side], joined[other]
        fits[side] = side_fit(own, theirs, lambda own=own: _std(*own), lambda theirs=theirs: _std(*theirs),
                              MIN_SCALE ** 2)
        count = own[2]
        if fits[side].gap is None and (count == 0).any() and count.any():
            raise InputError("streamed lira: no record has reference models on both sides (IN and OUT); "
                             "use more reference models or --signal-chunk 0 (in memory)")
    return fits


def _moments(phi: np.ndarray, is_in: np.ndarray) -> dict[str, tuple]:
    out = {}
    for side, mask in (("in", is_in), ("out", ~is_in)):
        _, mean, sq_dev, count = side_moments(phi, mask)
        out[side] = (mean, sq_dev, count)
    return out


def lira_online_moderated_offsets(store) -> AttackScores:
    """:func:`miaudit.attacks.lira.lira_online_moderated_offsets` over the store's record chunks."""
    check_references(store, "lira-online")
    used = LOCAL_NEIGHBORS if store.n_population else 0
    parts = [_moments(phi_r, x.reference_in) for x, _, phi_r in offset_phis(store, LOCAL_NEIGHBORS)]
    if not any(p["in"][2].any() for p in parts):
        raise InputError("lira-online: needs reference models trained on the audited records "
                         "(reference_data='pool')")
    fits = _fits(parts)
    parts = []
    for x, phi_t, phi_r in offset_phis(store, LOCAL_NEIGHBORS):
        pred_in, pred_out = fit_predictives(phi_r, x.reference_in, "moderated", fits=fits)
        parts.append(online_scores(phi_t, pred_in, pred_out))
    scores = np.concatenate(parts)
    return AttackScores(scores, scores > 0.0, 0.0, {"variance": "moderated", "neighbors": used})


def lira_offline_moderated_offsets(store) -> AttackScores:
    """:func:`miaudit.attacks.lira.lira_offline_moderated_offsets` over the store's record chunks, its
    leave-one-model-out threshold included."""
    k = check_references(store, "lira-offline")
    used = LOCAL_NEIGHBORS if store.n_population else 0
    held = list(range(min(k, CALIBRATION_MODELS))) if k >= 2 else []
    others = {h: np.arange(k) != h for h in held}
    parts: dict = {"all": [], **{h: [] for h in held}}
    for x, _, phi_r in offset_phis(store, LOCAL_NEIGHBORS):
        parts["all"].append(_moments(phi_r, x.reference_in))
        for h in held:
            parts[h].append(_moments(phi_r[others[h]], x.reference_in[others[h]]))
    out_counts = {key: sum(int(p["out"][2].sum()) for p in value) for key, value in parts.items()}
    if not out_counts["all"]:
        raise InputError("lira-offline: needs reference models not trained on the audited records")
    held = [h for h in held if out_counts[h]]  # as in memory: a held-out model with no OUT model left is skipped
    fits = {key: _fits(parts[key]) for key in ["all", *held]}
    del parts
    scores, held_scores, held_in = [], {h: [] for h in held}, {h: [] for h in held}
    for x, phi_t, phi_r in offset_phis(store, LOCAL_NEIGHBORS):
        _, pred_out = fit_predictives(phi_r, x.reference_in, "moderated", fits=fits["all"])
        scores.append(offline_scores(phi_t, pred_out))
        for h in held:
            _, out_h = fit_predictives(phi_r[others[h]], x.reference_in[others[h]], "moderated", fits=fits[h])
            held_scores[h].append(offline_scores(phi_r[h], out_h))
            held_in[h].append(x.reference_in[h])
    scores = np.concatenate(scores)
    return held_out_verdict(scores, held, held_scores, held_in, {"variance": "moderated", "neighbors": used})
