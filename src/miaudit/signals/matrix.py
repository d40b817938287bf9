"""The signal matrix: every model's outputs on the audited, shadow and population records
(AttackInputs), as the attacker can query them (output defenses, label-only APIs, query budgets)."""
from __future__ import annotations

import numpy as np

from miaudit.data.queries import query_views
from miaudit.errors import InputError
from miaudit.signals.defenses import DefendedReferences, DefendedTarget, parse_output_defense
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.request import DivergenceHint, SignalRequest


def logits_over_views(model_logits, x: np.ndarray, n_queries: int, seed: int, axis: int,
                      lead: tuple[int, ...], n_classes: int) -> np.ndarray:
    """Stack a model's logits over the query views of x along ``axis`` (the Q axis).

    lead: the leading shape before the record axis (() for one model, (K,) for references); used to
    shape the empty result when x has no rows (e.g. no population records).
    """
    if len(x) == 0:
        return np.zeros((*lead, 0, n_queries, n_classes), np.float32)
    return np.stack([model_logits(v) for v in query_views(x, n_queries, seed)], axis=axis).astype(np.float32)


def target_signals(request: SignalRequest, target) -> tuple[np.ndarray, np.ndarray]:
    """A target's logits over the query views of the audited [N, Q, C] and population [Z, Q, C] records."""
    q, seed, c = request.queries, request.seed, request.n_classes
    return (logits_over_views(target.logits, request.pool_x, q, seed, 1, (), c),
            logits_over_views(target.logits, request.population_x, q, seed, 1, (), c))


def target_queries(request: SignalRequest) -> int:
    """Records an audit asks the target about: every query view of the audited and population
    records, plus the test records when non-members come from another dataset (test accuracy)."""
    return request.queries * (len(request.pool_x) + len(request.population_x)) + request.test_queries


def check_outputs_finite(hint: DivergenceHint, whose: str, *logits: np.ndarray, per_model: bool = False) -> None:
    """InputError "training diverged: ..." when any of the logits [..., C] is NaN or inf, naming
    the likely cause in ``hint``'s words (the step size of torch training). per_model: axis 0 indexes
    models, counted."""
    bad = [x for x in logits if x.size and not np.isfinite([x.min(), x.max()]).all()]
    if not bad:
        return
    kind = "NaN" if any(np.isnan(x).any() for x in bad) else "inf"
    if per_model:
        whose = f"{_diverged_models(*logits)} of {len(logits[0])} {whose}"
    if not hint.torch:
        raise InputError(f"--target {hint.target}: {whose} outputs are not finite ({kind})")
    cause = f"lower --lr (now {hint.lr:g})"
    if hint.weight_decay:
        cause += f" or --weight-decay (now {hint.weight_decay:g})"
    if hint.unscaled:
        cause += ", or standardize the inputs (--input-scaling auto)"
    raise InputError(f"training diverged: {whose} outputs are not finite ({kind}) — {cause}")


def _diverged_models(*logits: np.ndarray) -> int:
    """How many models (axis 0 of logits [K, ...]) have a NaN or inf output."""
    return int(np.logical_or.reduce([~np.isfinite(x.reshape(len(x), -1)).all(1) for x in logits if x.size]).sum())


def compute_signals(request: SignalRequest, target, refs) -> AttackInputs:
    """The signal matrix: target and reference logits on audited, shadow and population records,
    with each audited record's identity (``record_ids``, also the shadow ids in pool mode)."""
    r = request
    q, seed, n, c = r.queries, r.seed, len(r.pool_x), r.n_classes
    if hasattr(target, "reserve"):  # a target with a query budget (HttpTarget): refuse before any query
        target.reserve(target_queries(r), "the audit")
    target, refs = defended(r.output_defense, target, refs)
    t_pool, t_pop = target_signals(r, target)
    check_outputs_finite(r.hint, "the target's", t_pool, t_pop)
    if refs is None:
        return AttackInputs.target_only(t_pool, r.pool_y, t_pop, r.population_y, record_ids=r.record_ids,
                                        records=r.pool_x, target_model=target, population_records=r.population_x)
    kk = (refs.n_models,)
    r_pool = logits_over_views(refs.logits, r.pool_x, q, seed, 2, kk, c)
    r_pop = logits_over_views(refs.logits, r.population_x, q, seed, 2, kk, c)
    check_outputs_finite(r.hint, "reference models'", r_pool, r_pop, per_model=True)
    if r.pool_mode:
        ref_in = r.reference_masks
        shadow_logits, shadow_in, shadow_labels, shadow_ids = r_pool, r.reference_masks, r.pool_y, r.record_ids
    else:  # attacker records: not the audited ones, their positions are their identities
        ref_in = np.zeros((refs.n_models, n), bool)
        shadow_logits = logits_over_views(refs.logits, r.reference_x, q, seed, 2, kk, c)
        shadow_in, shadow_labels, shadow_ids = r.reference_masks, r.reference_y, None
    return AttackInputs(t_pool, r.pool_y, r_pool, ref_in, shadow_logits, shadow_in, shadow_labels,
                        t_pop, r_pop, r.population_y, r.record_ids, shadow_ids, r.pool_x, target, refs,
                        population_records=r.population_x)


def defended(output_defense: str | None, target, refs):
    """(target, refs) as the attacker queries them: through ``output_defense`` (the --output-defense
    text) when one is set, or as labels for a label-only prediction API."""
    label_api = getattr(target, "label_only", False)  # a label-only prediction API: references alike
    defense = parse_output_defense(output_defense or ("label" if label_api else None))
    if defense is None:
        return target, refs
    return DefendedTarget(target, defense), None if refs is None else DefendedReferences(refs, defense)
