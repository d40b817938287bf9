"""The signals stage of an audit: the plan's records and settings as a SignalRequest, and the signal
matrix as a SignalSource: in memory, or with ``signal_chunk`` written block by block to a SignalStore
(the config's directory, or a temporary one removed after the attacks; docs/scale-out.md)."""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.audit.config import AuditConfig
from miaudit.audit.plan import AuditPlan
from miaudit.models.registry import is_torch_name
from miaudit.progress import ProgressBoard
from miaudit.signals.chunked import write_signals
from miaudit.signals.matrix import compute_signals
from miaudit.signals.request import DivergenceHint, SignalRequest
from miaudit.signals.source import MemorySource, SignalSource, StoreSource


def divergence_hint(cfg: AuditConfig) -> DivergenceHint:
    """The config's words for an error on non-finite model outputs."""
    return DivergenceHint(cfg.target, is_torch_name(cfg.target), cfg.recipe.lr, cfg.recipe.weight_decay,
                          cfg.input_scaling == "none")


def record_identities(plan: AuditPlan) -> np.ndarray:
    """int64 [N] distinct identity of each audited record: its dataset index, plus 2**40 times
    1 + the rank of its source's name among the other sources for records not from the audited
    dataset (non-members from --nonmember-dataset)."""
    others = sorted(set(plan.record_source) - {plan.dataset.name})
    rank = [0 if s == plan.dataset.name else 1 + others.index(s) for s in plan.record_source]
    return np.asarray(plan.record_index, np.int64) + np.asarray(rank, np.int64) * 2 ** 40


def signal_request(plan: AuditPlan) -> SignalRequest:
    """What the signal stage computes for this plan (records, identities, views, defense, store layout)."""
    cfg = plan.config
    return SignalRequest(plan.pool_x, plan.pool_y, record_identities(plan), plan.population_x, plan.population_y,
                         plan.reference_x, plan.reference_y, plan.reference_masks, plan.reference_mode == "pool",
                         plan.n_classes, divergence_hint(cfg), cfg.queries, cfg.seed, cfg.output_defense,
                         len(plan.test_x) if cfg.nonmember_dataset else 0, cfg.signal_chunk or 0,
                         cfg.signal_dtype)


@contextmanager
def signal_source(plan: AuditPlan, target, refs, board: ProgressBoard,
                  timing: dict[str, Any]) -> Iterator[SignalSource]:
    """The plan's signal matrix as a source for the attacks (a store's temporary directory is removed
    when the block ends); ``signals_s`` into timing."""
    request = signal_request(plan)
    if not request.chunk:
        t = time.perf_counter()
        with board.task("computing signals", 1):
            source = MemorySource(compute_signals(request, target, refs))
        timing["signals_s"] = time.perf_counter() - t
        yield source
        return
    temporary = plan.config.signal_store is None
    path = Path(tempfile.mkdtemp(prefix="miaudit-signals-")) if temporary else Path(plan.config.signal_store)
    try:
        t = time.perf_counter()
        store, correct = write_signals(request, target, refs, path, board)
        timing["signals_s"] = time.perf_counter() - t
        yield StoreSource(store, correct, kept=not temporary)
    finally:
        if temporary:
            shutil.rmtree(path, ignore_errors=True)
