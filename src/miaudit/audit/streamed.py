"""The signals and attacks of an audit with ``signal_chunk`` set: the signal matrix is computed block
by block of ``signal_chunk`` records, written to a :class:`miaudit.signals.store.SignalStore`, and the
streamable attacks (:mod:`miaudit.attacks.streamed`) read it back one chunk at a time, so no K x N
matrix is ever in memory (pool mode, one query per record)."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from miaudit.attacks.streamed import run_streamed
from miaudit.audit.plan import AuditPlan
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.models.ray_signals import write_on_ray
from miaudit.models.references import ReferenceModels
from miaudit.progress import ProgressBoard
from miaudit.report.results import AttackOutcome
from miaudit.signals.matrix import (
    _logits_over_views,
    check_outputs_finite,
    defended,
    record_identities,
    target_queries,
)
from miaudit.signals.store import SignalStore


def write_signals(plan: AuditPlan, target, refs, path: str | Path, board: ProgressBoard | None = None
                  ) -> tuple[SignalStore, np.ndarray]:
    """The audit's signal matrix in a new store at ``path``, one record block (all K models) at a time,
    and whether the target's label is right on each audited record (bool [N])."""
    cfg = plan.config
    n, c = len(plan.pool_x), plan.n_classes
    k = 0 if refs is None else refs.n_models
    if hasattr(target, "reserve"):  # a target with a query budget (HttpTarget): refuse before any query
        target.reserve(target_queries(plan), "the audit")
    target, refs = defended(cfg, target, refs)

    def one_query(model_logits, x, lead):  # [*lead, m, C]: the same logits as the in-memory matrix
        return _logits_over_views(model_logits, x, 1, cfg.seed, len(lead) + 1, lead, c)[..., 0, :]

    store = SignalStore.create(path, k, n, len(plan.population_x), c, cfg.signal_chunk, cfg.signal_dtype)
    store.write_meta(plan.pool_y, record_identities(plan), plan.reference_masks if k else np.zeros((0, n), bool))
    board = board or ProgressBoard(False)
    on_ray = k and isinstance(refs, ReferenceModels) and refs.ray is not None and hasattr(refs.models, "select")
    if on_ray:  # every 16-model row written by its own Ray task, straight to the store
        with board.task("reference signals to disk (Ray tasks)", k) as update:
            bad = write_on_ray(refs.models, plan.pool_x, plan.population_x, str(path), refs.ray, refs.precision,
                               refs.device, torch.get_num_threads(), update)
        if bad.any():
            check_outputs_finite(cfg, "reference models'", np.where(bad, np.nan, 0.0)[:, None], per_model=True)
    t_pop = one_query(target.logits, plan.population_x, ())
    r_pop = (None if on_ray else one_query(refs.logits, plan.population_x, (k,)) if k
             else np.zeros((0, len(t_pop), c), np.float32))
    check_outputs_finite(cfg, "the target's", t_pop)
    if r_pop is not None:
        check_outputs_finite(cfg, "reference models'", r_pop, per_model=True)
    store.write_population(t_pop, r_pop, plan.population_y)
    correct = np.zeros(n, bool)
    blocks = store.blocks()
    with board.task(f"signals to disk ({len(blocks)} chunks)", len(blocks)) as update:
        for i, (start, stop) in enumerate(blocks, start=1):
            x = plan.pool_x[start:stop]
            t = one_query(target.logits, x, ())
            r = None if on_ray else one_query(refs.logits, x, (k,)) if k else np.zeros((0, stop - start, c), np.float32)
            check_outputs_finite(cfg, "the target's", t)
            if r is not None:
                check_outputs_finite(cfg, "reference models'", r, per_model=True)
            store.write_records(start, t, r)
            correct[start:stop] = t.argmax(1) == plan.pool_y[start:stop]
            update(i)
    return store, correct


def streamed_signals_and_attacks(plan: AuditPlan, target, refs, board: ProgressBoard,
                                 timing: dict[str, Any]) -> tuple[list[AttackOutcome], np.ndarray, dict]:
    """(attack outcomes, correct bool [N], the results.json "signals" block): the signals written to
    the config's store (a temporary directory, removed afterwards, when none is named) and the
    plan's attacks streamed over it; ``signals_s`` and ``attacks_s`` into timing."""
    cfg = plan.config
    temporary = cfg.signal_store is None
    path = Path(tempfile.mkdtemp(prefix="miaudit-signals-")) if temporary else Path(cfg.signal_store)
    try:
        t = time.perf_counter()
        store, correct = write_signals(plan, target, refs, path, board)
        timing["signals_s"] = time.perf_counter() - t
        t = time.perf_counter()
        outcomes = []
        n, z = len(plan.pool_x), len(plan.population_x)
        with board.task("attacks (streamed)", len(plan.attacks)) as update:
            for i, spec in enumerate(plan.attacks, start=1):
                started = time.perf_counter()
                verdict = run_streamed(spec.name, store, seed=cfg.seed)
                seconds = time.perf_counter() - started
                metrics = compute_metrics(verdict.scores, plan.membership, verdict.decision, plan.pool_y,
                                          delta=cfg.delta, confidence=cfg.confidence,
                                          coin_flips=cfg.coin_flip_members, epsilon_method=cfg.epsilon_method)
                outcomes.append(AttackOutcome(spec.name, spec.threat_model, verdict.scores, metrics, seconds,
                                              verdict.params, spec.target_queries(n, z)))
                update(i)
        timing["attacks_s"] = time.perf_counter() - t
        block = {**store.describe(), "kept": not temporary}
    finally:
        if temporary:
            shutil.rmtree(path, ignore_errors=True)
    return outcomes, correct, block
