"""The signal matrix: every model's outputs on the audited, shadow and population records
(AttackInputs), as the attacker can query them (output defenses, label-only APIs, query budgets)."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackInputs
from miaudit.audit.config import AuditConfig
from miaudit.audit.plan import AuditPlan
from miaudit.data.queries import query_views
from miaudit.errors import InputError
from miaudit.models.registry import is_torch_name


def _logits_over_views(model_logits, x: np.ndarray, n_queries: int, seed: int, axis: int,
                       lead: tuple[int, ...], n_classes: int) -> np.ndarray:
    """Stack a model's logits over the query views of x along ``axis`` (the Q axis).

    lead: the leading shape before the record axis (() for one model, (K,) for references); used to
    shape the empty result when x has no rows (e.g. no population records).
    """
    if len(x) == 0:
        return np.zeros((*lead, 0, n_queries, n_classes), np.float32)
    return np.stack([model_logits(v) for v in query_views(x, n_queries, seed)], axis=axis).astype(np.float32)


def target_signals(plan: AuditPlan, target) -> tuple[np.ndarray, np.ndarray]:
    """A target's logits over the query views of the audited [N, Q, C] and population [Z, Q, C] records."""
    q, seed, c = plan.config.queries, plan.config.seed, plan.n_classes
    return (_logits_over_views(target.logits, plan.pool_x, q, seed, 1, (), c),
            _logits_over_views(target.logits, plan.population_x, q, seed, 1, (), c))


def target_queries(plan: AuditPlan) -> int:
    """Records an audit asks the target about: every query view of the audited and population
    records, plus the test records when non-members come from another dataset (test accuracy)."""
    views = plan.config.queries * (len(plan.pool_x) + len(plan.population_x))
    return views + (len(plan.test_x) if plan.config.nonmember_dataset else 0)


def check_outputs_finite(cfg: AuditConfig, whose: str, *logits: np.ndarray, per_model: bool = False) -> None:
    """InputError "training diverged: ..." when any of the logits [..., C] is NaN or inf, naming
    the likely cause (the step size of torch training). per_model: axis 0 indexes models, counted."""
    bad = [x for x in logits if x.size and not np.isfinite([x.min(), x.max()]).all()]
    if not bad:
        return
    kind = "NaN" if any(np.isnan(x).any() for x in bad) else "inf"
    if per_model:
        whose = f"{_diverged_models(*logits)} of {len(logits[0])} {whose}"
    if not is_torch_name(cfg.target):
        raise InputError(f"--target {cfg.target}: {whose} outputs are not finite ({kind})")
    cause = f"lower --lr (now {cfg.recipe.lr:g})"
    if cfg.recipe.weight_decay:
        cause += f" or --weight-decay (now {cfg.recipe.weight_decay:g})"
    if cfg.input_scaling == "none":
        cause += ", or standardize the inputs (--input-scaling auto)"
    raise InputError(f"training diverged: {whose} outputs are not finite ({kind}) — {cause}")


def _diverged_models(*logits: np.ndarray) -> int:
    """How many models (axis 0 of logits [K, ...]) have a NaN or inf output."""
    return int(np.logical_or.reduce([~np.isfinite(x.reshape(len(x), -1)).all(1) for x in logits if x.size]).sum())


def compute_signals(plan: AuditPlan, target, refs) -> AttackInputs:
    """The signal matrix: target and reference logits on audited, shadow and population records,
    with each audited record's identity (``record_ids``, also the shadow ids in pool mode)."""
    q, seed = plan.config.queries, plan.config.seed
    n, c = len(plan.pool_x), plan.n_classes
    ids = record_identities(plan)
    if hasattr(target, "reserve"):  # a target with a query budget (HttpTarget): refuse before any query
        target.reserve(target_queries(plan), "the audit")
    target, refs = defended(plan.config, target, refs)
    t_pool, t_pop = target_signals(plan, target)
    check_outputs_finite(plan.config, "the target's", t_pool, t_pop)
    if refs is None:
        return AttackInputs.target_only(t_pool, plan.pool_y, t_pop, plan.population_y, record_ids=ids,
                                        records=plan.pool_x, target_model=target,
                                        population_records=plan.population_x)
    kk = (refs.n_models,)
    r_pool = _logits_over_views(refs.logits, plan.pool_x, q, seed, 2, kk, c)
    r_pop = _logits_over_views(refs.logits, plan.population_x, q, seed, 2, kk, c)
    check_outputs_finite(plan.config, "reference models'", r_pool, r_pop, per_model=True)
    if plan.reference_mode == "pool":
        ref_in = plan.reference_masks
        shadow_logits, shadow_in, shadow_labels, shadow_ids = r_pool, plan.reference_masks, plan.pool_y, ids
    else:  # attacker records: not the audited ones, their positions are their identities
        ref_in = np.zeros((refs.n_models, n), bool)
        shadow_logits = _logits_over_views(refs.logits, plan.reference_x, q, seed, 2, kk, c)
        shadow_in, shadow_labels, shadow_ids = plan.reference_masks, plan.reference_y, None
    return AttackInputs(t_pool, plan.pool_y, r_pool, ref_in, shadow_logits, shadow_in, shadow_labels,
                        t_pop, r_pop, plan.population_y, ids, shadow_ids, plan.pool_x, target, refs,
                        population_records=plan.population_x)


def defended(cfg: AuditConfig, target, refs):
    """(target, refs) as the attacker queries them: through cfg.output_defense when one is set."""
    from miaudit.targets.defenses import DefendedReferences, DefendedTarget, parse_output_defense

    label_api = getattr(target, "label_only", False)  # a label-only prediction API: references alike
    defense = parse_output_defense(cfg.output_defense or ("label" if label_api else None))
    if defense is None:
        return target, refs
    return DefendedTarget(target, defense), None if refs is None else DefendedReferences(refs, defense)


def record_identities(plan: AuditPlan) -> np.ndarray:
    """int64 [N] distinct identity of each audited record: its dataset index, plus 2**40 times
    1 + the rank of its source's name among the other sources for records not from the audited
    dataset (non-members from --nonmember-dataset)."""
    others = sorted(set(plan.record_source) - {plan.dataset.name})
    rank = [0 if s == plan.dataset.name else 1 + others.index(s) for s in plan.record_source]
    return np.asarray(plan.record_index, np.int64) + np.asarray(rank, np.int64) * 2 ** 40
