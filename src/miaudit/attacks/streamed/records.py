"""Attacks that read the audited records or query the model, streamed: the store's chunks carry their
records and the target model (:meth:`miaudit.signals.store.SignalStore.attach`: the audit holds them in
memory; the store holds the models' outputs).

- label-only-gap: one label query per record, nothing shared between records: each chunk is scored as
  in memory, its queries counted.
- qmia, qmia-pinball: the regressor is fitted once on the population (Z records, in memory), then each
  chunk's records are scored with it: z(record, margin) - c. Keeps O(Z) beside the scores.
- gradient-norm: each chunk's per-example gradient norms of the target (every layer's, O(N) each, for
  the params' medians); gradient-norm-lira also the K reference models' norms of ``layer`` [K, N], kept
  (O(K N) scalars, as the threshold attacks) for the moderated IN / OUT fit over all records.
"""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.label_only_gap import label_only_gap as gap_in_memory
from miaudit.attacks.reference_ratio import reference_ratio_scores
from miaudit.attacks.streamed.passes import per_chunk
from miaudit.errors import InputError


def _require_records(store, name: str, model: bool = False) -> None:
    if store.records is None or store.population_records is None or (model and store.target_model is None):
        what = "the audited model and its records" if model else "the audited and population records"
        raise InputError(f"{name}: needs {what} beside the signal store (not only predictions)")


def label_only_gap(store, seed: int = 0) -> AttackScores:
    """:func:`miaudit.attacks.label_only_gap.label_only_gap` chunk by chunk (the label queries of all chunks
    counted)."""
    _require_records(store, "label-only-gap", model=True)
    queries = []

    def score(x):
        verdict = gap_in_memory(x, seed)
        queries.append(verdict.queries)
        return verdict.scores

    scores = per_chunk(store, score)
    return AttackScores(scores, scores > 0.5, 0.5, queries=int(sum(queries)))


def qmia(store, alpha: float | None = None, seed: int = 0, regressor: str = "gaussian-mlp") -> AttackScores:
    """:func:`miaudit.attacks.qmia.qmia` with the regressor fitted once on the population, the audited
    records scored chunk by chunk."""
    from miaudit.attacks.qmia import ALPHA, features, fit_standardizer, hinge_score  # torch: on first use

    _require_records(store, "qmia")
    alpha = ALPHA if alpha is None else alpha
    pop_t, _, pop_y = store.population()
    c = store.shape[2]
    standardize, shift, used = fit_standardizer(store.population_records, pop_y, pop_t[:, None], c, alpha, seed,
                                                regressor)
    scores = per_chunk(store, lambda x: standardize(features(x.records, x.labels, c),
                                                    hinge_score(x.target_logits, x.labels)) - shift)
    scores = np.asarray(scores, np.float64)
    return AttackScores(scores, scores > 0.0, 0.0, params={"alpha": float(alpha), "regressor": used,
                                                           "calibration_shift": shift})


def qmia_pinball(store, seed: int = 0) -> AttackScores:
    """qmia-pinball (gradient-boosted quantile trees) streamed as :func:`qmia`."""
    return qmia(store, seed=seed, regressor="pinball-trees")


def _gradient_norms(store, name: str, layer: str, references: bool) -> tuple[dict, np.ndarray | None]:
    """Every layer's target norms {layer: [N]} and (references) the reference models' norms [K, N]."""
    from miaudit.attacks.gradient_norm import reference_norms  # torch: on first use
    from miaudit.attacks.white_box import gradient_norms
    from miaudit.models.wrappers import white_box_available

    _require_records(store, name, model=True)
    if not white_box_available(store.target_model):
        raise InputError(f"{name}: needs a torch target whose parameters it can read (white-box)")
    target: list[dict] = []

    def chunk(x):
        target.append(gradient_norms(store.target_model, x.records, x.labels))
        return reference_norms(x, name, layer) if references else np.zeros((0, len(x.labels)))

    refs = per_chunk(store, chunk)
    norms = {key: np.concatenate([t[key] for t in target]) for key in target[0]} if target else {}
    if layer not in norms:
        raise InputError(f"{name}: layer must be one of {', '.join(norms)}, got {layer!r}")
    return norms, refs if references else None


def gradient_norm(store, layer: str = "all") -> AttackScores:
    """:func:`miaudit.attacks.gradient_norm.gradient_norm` chunk by chunk."""
    from miaudit.attacks.gradient_norm import medians, signal_of

    norms, _ = _gradient_norms(store, "gradient-norm", layer, False)
    return AttackScores(signal_of(norms[layer]), params={"layer": layer, **medians(norms)})


def gradient_norm_lira(store, layer: str = "all") -> AttackScores:
    """:func:`miaudit.attacks.gradient_norm.gradient_norm_lira`: the norms chunk by chunk, then the same fit."""
    from miaudit.attacks.gradient_norm import signal_of

    name = "gradient-norm-lira"
    if store.shape[0] < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    norms, refs = _gradient_norms(store, name, layer, True)
    n = store.shape[1]
    return reference_ratio_scores(signal_of(norms[layer]), signal_of(refs), store.reference_in(0, n), name,
                                  {"layer": layer})
