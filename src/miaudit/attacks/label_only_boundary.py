"""The decision-boundary label-only attack of Choquette-Choo et al. (2021): members lie farther from
the target's decision boundary. Score = the L2 distance (in the models' input space) from a record
to the nearest point found with another label, 0 for a record the target already mislabels.

The distance comes from a query-budgeted, untargeted HopSkipJump-style search (Chen, Jordan &
Wainwright 2020), run for all records at once (torch tensors, one batched label query per step):
1. one query per record: mislabelled records stop at distance 0;
2. start: up to INIT_TRIES uniform random points in the records' value box until one gets another
   label (records that never find one get the box diagonal, the largest distance there is), then a
   binary search of INIT_BINARY_STEPS on the segment to the record;
3. iterations t = 0, 1, ...: estimate the boundary's normal at the current boundary point from the
   labels of n_t = min(MAX_EVAL, INIT_EVAL sqrt(t + 1)) random probes on a small sphere, step along
   it by dist / sqrt(t + 1) (halved up to STEP_TRIES times until the label differs), then binary
   search (BINARY_STEPS) back toward the record; the distance kept is the smallest found. When no
   record can pay for n_t probes any more, a last iteration uses what is left (at least MIN_EVAL).
A record takes part in an iteration only while its own count of queries plus the iteration's
largest cost fits in ``budget``, so no record ever uses more than ``budget`` queries. Random draws
come in the order of the records' identities, so the scores do not depend on the records' order.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.reference_ratio import oracle_for, reference_models, reference_ratio_scores, require_model
from miaudit.attacks.sampling import identity_order
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

DEFAULT_BUDGET = 400
"""Label queries per record."""
INIT_TRIES = 10
INIT_BINARY_STEPS = 16
BINARY_STEPS = 10
STEP_TRIES = 6
INIT_EVAL = 20
MAX_EVAL = 200
MIN_EVAL = 10
REFERENCE_MODELS = 16
"""label-only-boundary-lira: at most this many reference models get their own searches."""
_CHUNK_FLOATS = 1 << 23  # probes held at once: [records, probes, features] floats


def minimum_budget() -> int:
    """The fewest queries per record that reach a first distance (label, start, binary search)."""
    return 1 + INIT_TRIES + INIT_BINARY_STEPS


def boundary_distances(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, labels: np.ndarray,
                       budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(float64 [n] distance of each record to the boundary found, int64 [n] queries each used).

    predict: labels int [m] of records [m, *feature_shape]; x float32 [n, *feature_shape]; labels int
    [n] the true labels. Random draws follow the rows' order (callers pass identity order).
    """
    if not isinstance(budget, (int, np.integer)) or budget < minimum_budget():
        raise InputError(f"label-only-boundary: budget must be an integer >= {minimum_budget()} queries per "
                         f"record, got {budget!r}")
    n = len(x)
    shape = tuple(np.shape(x)[1:])
    flat = torch.from_numpy(np.ascontiguousarray(x, np.float32).reshape(n, -1))
    d = flat.shape[1] if n else 1
    y = np.asarray(labels)
    used = np.zeros(n, np.int64)
    dist = np.zeros(n, np.float64)
    if n == 0:
        return dist, used
    lo, hi = float(flat.min()), float(flat.max())
    gen = torch.Generator().manual_seed(int(seed) % 2 ** 63)

    def differs(points: torch.Tensor, who: np.ndarray) -> np.ndarray:
        """bool [m]: the label of points [m, d] differs from the true label of records ``who``."""
        np.add.at(used, who, 1)
        return predict(points.numpy().reshape(len(points), *shape)) != y[who]

    def binary(x0: torch.Tensor, x1: torch.Tensor, who: np.ndarray, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(boundary point on x1's side, length of the last bracket) between x0 (true label) and x1."""
        t_lo, t_hi = torch.zeros(len(who)), torch.ones(len(who))
        for _ in range(steps):
            mid = (t_lo + t_hi) / 2
            adv = torch.from_numpy(differs(x0 + mid[:, None] * (x1 - x0), who))
            t_hi, t_lo = torch.where(adv, mid, t_hi), torch.where(adv, t_lo, mid)
        gap = (t_hi - t_lo) * (x1 - x0).norm(dim=1)
        return x0 + t_hi[:, None] * (x1 - x0), gap

    active = np.flatnonzero(~differs(flat, np.arange(n)))  # correctly labelled records
    start = torch.empty((n, d))
    found = np.zeros(n, bool)
    for _ in range(INIT_TRIES):
        todo = active[~found[active]]
        if len(todo) == 0:
            break
        points = lo + (hi - lo) * torch.rand((len(todo), d), generator=gen)
        adv = differs(points, todo)
        start[todo[adv]] = points[adv]
        found[todo[adv]] = True
    dist[active[~found[active]]] = (hi - lo) * np.sqrt(d)
    live = active[found[active]]
    if len(live) == 0:
        return dist, used
    point = torch.empty((n, d))
    gap = torch.zeros(n)
    point[live], gap[live] = binary(flat[live], start[live], live, INIT_BINARY_STEPS)
    dist[live] = (point[live] - flat[live]).norm(dim=1).double().numpy()
    t = 0
    while True:
        n_eval = min(MAX_EVAL, int(INIT_EVAL * np.sqrt(t + 1)))
        affordable = budget - used[live] - STEP_TRIES - BINARY_STEPS  # probes each record can still pay
        if not (affordable >= n_eval).any():  # a last, smaller iteration with what is left
            n_eval = int(affordable.max(initial=0))
            if n_eval < MIN_EVAL:
                return dist, used
        rows = live[affordable >= n_eval]
        normal = _boundary_normals(differs, point, gap, dist, rows, n_eval, d, gen)
        step = torch.from_numpy(dist[rows] / np.sqrt(t + 1)).float()
        moved = torch.empty((len(rows), d))
        ok = np.zeros(len(rows), bool)
        for _ in range(STEP_TRIES):
            todo = np.flatnonzero(~ok)
            if len(todo) == 0:
                break
            candidate = (point[rows[todo]] + step[todo, None] * normal[todo]).clamp_(lo, hi)
            adv = differs(candidate, rows[todo])
            moved[todo[adv]] = candidate[adv]
            ok[todo[adv]] = True
            step[todo[~adv]] /= 2
        go = rows[ok]
        if len(go):
            new_point, new_gap = binary(flat[go], moved[ok], go, BINARY_STEPS)
            new_dist = (new_point - flat[go]).norm(dim=1).double().numpy()
            better = new_dist < dist[go]
            point[go[better]], gap[go[better]] = new_point[better], new_gap[better]
            dist[go[better]] = new_dist[better]
        t += 1


def _boundary_normals(differs, point: torch.Tensor, gap: torch.Tensor, dist: np.ndarray, rows: np.ndarray,
                      n_eval: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """[len(rows), d] unit estimates of the boundary's normal (toward other labels) at point[rows],
    from the labels of n_eval probes each on a sphere of radius max(dist / d, 2 * bracket)."""
    out = torch.empty((len(rows), d))
    chunk = max(1, _CHUNK_FLOATS // (n_eval * d))
    for s in range(0, len(rows), chunk):
        who = rows[s:s + chunk]
        u = torch.randn((len(who), n_eval, d), generator=gen)
        u /= u.norm(dim=2, keepdim=True).clamp_min(1e-12)
        radius = torch.maximum(torch.from_numpy(dist[who] / d).float(), 2 * gap[who])
        probes = (point[who][:, None, :] + radius[:, None, None] * u).reshape(-1, d)
        sign = torch.from_numpy(differs(probes, np.repeat(who, n_eval))).float().view(len(who), n_eval) * 2 - 1
        mean = sign.mean(dim=1, keepdim=True)
        weight = torch.where(mean.abs() == 1, sign, sign - mean)  # baseline unless all probes agree
        grad = (weight[:, :, None] * u).mean(dim=1)
        out[s:s + chunk] = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out


def _search(predict, inputs: AttackInputs, x: np.ndarray, order: np.ndarray, budget: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """boundary_distances on the records in identity order, returned in the records' order."""
    dist_sorted, used_sorted = boundary_distances(predict, x[order], np.asarray(inputs.labels)[order], budget, seed)
    dist, used = np.empty_like(dist_sorted), np.empty_like(used_sorted)
    dist[order], used[order] = dist_sorted, used_sorted
    return dist, used


def label_only_boundary(inputs: AttackInputs, seed: int = 0, budget: int | None = None) -> AttackScores:
    """Score = distance to the decision boundary found within ``budget`` (None: DEFAULT_BUDGET) label
    queries per record (module docstring); decision None. ``queries``: label queries sent (<= budget x N)."""
    name = "label-only-boundary"
    budget = DEFAULT_BUDGET if budget is None else budget
    x = require_model(inputs, name)
    oracle = oracle_for(inputs, name, budget=int(budget) * inputs.n_records)
    dist, used = _search(oracle.predict, inputs, x, identity_order(inputs.record_ids, inputs.n_records), budget, seed)
    params = {"budget_per_record": int(budget), "most_queries_per_record": int(used.max(initial=0))}
    return AttackScores(dist, params=params, queries=oracle.queries)


def label_only_boundary_lira(inputs: AttackInputs, seed: int = 0, budget: int | None = None,
                             max_reference_models: int | None = None) -> AttackScores:
    """label-only-boundary's log distance scored against the log distances found (by the same
    search, same seed) on the first ``max_reference_models`` (None: REFERENCE_MODELS) reference models, per record
    (:mod:`miaudit.attacks.reference_ratio`). Only the target's queries are counted."""
    name = "label-only-boundary-lira"
    budget = DEFAULT_BUDGET if budget is None else budget
    max_reference_models = REFERENCE_MODELS if max_reference_models is None else max_reference_models
    x = require_model(inputs, name)
    models, ref_in = reference_models(inputs, name, max_reference_models)
    order = identity_order(inputs.record_ids, inputs.n_records)
    oracle = oracle_for(inputs, name, budget=int(budget) * inputs.n_records)
    dist, _ = _search(oracle.predict, inputs, x, order, budget, seed)
    ref_dist = np.stack([_search(lambda v, m=m: np.asarray(m.logits(v)).argmax(axis=1), inputs, x, order, budget,
                                 seed)[0] for m in models])
    return reference_ratio_scores(np.log(dist + 1e-3), np.log(ref_dist + 1e-3), ref_in, name,
                                  {"budget_per_record": int(budget)}, oracle.queries)
