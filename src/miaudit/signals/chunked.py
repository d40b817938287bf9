"""The signal matrix written to a SignalStore one block of ``request.chunk`` records (all K models) at a
time, so no K x N matrix is in memory (pool mode, one query per record); with --backend ray each
16-model row is written by its own Ray task."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.progress import ProgressBoard
from miaudit.signals.matrix import check_outputs_finite, defended, logits_over_views, target_queries
from miaudit.signals.request import SignalRequest
from miaudit.signals.store import SignalStore


def write_signals(request: SignalRequest, target, refs, path: str | Path, board: ProgressBoard | None = None
                  ) -> tuple[SignalStore, np.ndarray]:
    """The signal matrix in a new store at ``path``, one record block (all K models) at a time,
    and whether the target's label is right on each audited record (bool [N])."""
    r = request
    n, c = len(r.pool_x), r.n_classes
    k = 0 if refs is None else refs.n_models
    if hasattr(target, "reserve"):  # a target with a query budget (HttpTarget): refuse before any query
        target.reserve(target_queries(r), "the audit")
    trained, (target, refs) = refs, defended(r.output_defense, target, refs)

    def one_query(model_logits, x, lead):  # [*lead, m, C]: the same logits as the in-memory matrix
        return logits_over_views(model_logits, x, 1, r.seed, len(lead) + 1, lead, c)[..., 0, :]

    store = SignalStore.create(path, k, n, len(r.population_x), c, r.chunk, r.dtype)
    store.write_meta(r.pool_y, r.record_ids, r.reference_masks if k else np.zeros((0, n), bool))
    board = board or ProgressBoard(False)
    # reference models trained as Ray tasks, their outputs undefended: their signals as Ray tasks too
    on_ray = k and refs is trained and getattr(refs, "ray", None) is not None and hasattr(refs.models, "select")
    if on_ray:  # every 16-model row written by its own Ray task, straight to the store
        import torch  # torch and ray only with --backend ray: off the import path otherwise

        from miaudit.signals.ray_store import write_on_ray

        with board.task("reference signals to disk (Ray tasks)", k) as update:
            bad = write_on_ray(refs.models, r.pool_x, r.population_x, str(path), refs.ray, refs.precision,
                               refs.device, torch.get_num_threads(), update)
        if bad.any():
            check_outputs_finite(r.hint, "reference models'", np.where(bad, np.nan, 0.0)[:, None], per_model=True)
    t_pop = one_query(target.logits, r.population_x, ())
    r_pop = (None if on_ray else one_query(refs.logits, r.population_x, (k,)) if k
             else np.zeros((0, len(t_pop), c), np.float32))
    check_outputs_finite(r.hint, "the target's", t_pop)
    if r_pop is not None:
        check_outputs_finite(r.hint, "reference models'", r_pop, per_model=True)
    store.write_population(t_pop, r_pop, r.population_y)
    correct = np.zeros(n, bool)
    blocks = store.blocks()
    with board.task(f"signals to disk ({len(blocks)} chunks)", len(blocks)) as update:
        for i, (start, stop) in enumerate(blocks, start=1):
            x = r.pool_x[start:stop]
            t = one_query(target.logits, x, ())
            f = None if on_ray else one_query(refs.logits, x, (k,)) if k else np.zeros((0, stop - start, c), np.float32)
            check_outputs_finite(r.hint, "the target's", t)
            if f is not None:
                check_outputs_finite(r.hint, "reference models'", f, per_model=True)
            store.write_records(start, t, f)
            correct[start:stop] = t.argmax(1) == r.pool_y[start:stop]
            update(i)
    store.attach(r.pool_x, r.population_x, target, refs)  # in memory: what record-reading attacks read per chunk
    return store, correct
