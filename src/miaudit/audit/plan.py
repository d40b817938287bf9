"""Turning an AuditConfig into concrete record sets, before any model is trained.

Everything that can be wrong with the input is found here, so an audit fails in seconds rather than
after training. Shapes: N audited records (in a seeded random order), R records with known
membership for the reference models (attacker mode), Z population records.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from miaudit.attacks.ladder import auto_block
from miaudit.attacks.registry import AUTO, CANNOT_STREAM, AttackSpec, attack_specs, left_out_by_auto
from miaudit.audit.config import AuditConfig
from miaudit.audit.limits import AuditSize, check_audit_size, mlp_parameters
from miaudit.audit.target_source import OutsideTarget, open_outside
from miaudit.data import Dataset, balanced_masks, keep_classes, load_dataset, make_splits
from miaudit.data.scaling import InputScaler, fit_scaler
from miaudit.data.shadow_data import shadow_records
from miaudit.data.splits import shadow_sets, user_splits
from miaudit.data.user_table import (
    AuditData,
    TableOptions,
    UserTable,
    is_table_path,
    load_user_table,
    split_from_ids,
)
from miaudit.errors import InputError
from miaudit.models.families import find_family
from miaudit.signals.defenses import LabelRelease
from miaudit.signals.offer import SourceOffer


@dataclass
class AuditPlan:
    """Record sets and attacks of one audit.

    pool_x / pool_y: the N audited records; membership: bool [N] (True = in the target's training set);
    record_index: int [N] index of each record in its dataset; record_source: dataset name per record.
    test_x / test_y: in-domain records the target never saw (its test accuracy).
    reference_x / reference_y / reference_masks: what reference model k trains on (masks [K, R']).
    In pool mode the reference records are the audited records themselves.
    population_x / population_y: attacker records that no model trains on.
    Every x above, and ``dataset``, is already transformed by ``scaler`` (fitted on the dataset).
    """

    config: AuditConfig
    dataset: Dataset
    pool_x: np.ndarray
    pool_y: np.ndarray
    membership: np.ndarray
    record_index: np.ndarray
    record_source: list[str]
    test_x: np.ndarray
    test_y: np.ndarray
    reference_mode: str
    reference_x: np.ndarray
    reference_y: np.ndarray
    reference_masks: np.ndarray
    population_x: np.ndarray
    population_y: np.ndarray
    attacks: list[AttackSpec]
    scaler: InputScaler
    notes: list[str] = field(default_factory=list)
    outside: OutsideTarget | None = None
    table: UserTable | None = None
    shadow_data: dict = field(default_factory=dict)  # results.json's shadow_data block (attacker mode)
    attack_choice: dict = field(default_factory=dict)  # results.json's attack_choice block (--attacks auto)

    @property
    def reference_architecture(self) -> str | None:
        """The model name miaudit trains reference models of, or None when they are modelled on an
        outside target (clones, re-initialised copies, the user's train_fn)."""
        if self.config.reference_architecture:
            return self.config.reference_architecture
        return None if self.outside is not None else self.config.target

    @property
    def member_x(self) -> np.ndarray:
        return self.pool_x[self.membership]

    @property
    def member_y(self) -> np.ndarray:
        return self.pool_y[self.membership]

    @property
    def n_classes(self) -> int:
        return self.dataset.n_classes


def _load(name: str, cfg: AuditConfig, keep: list[int] | None) -> Dataset:
    ds = load_dataset(name, data_dir=cfg.data_dir, label_column=cfg.label_column)
    return keep_classes(ds, keep) if keep else ds


def _load_other(name: str, cfg: AuditConfig, ds: Dataset, scaler: InputScaler, flag: str) -> Dataset:
    """Another dataset for ``flag`` (shadow / non-member data), checked against ds, then scaled."""
    other = _load(name, cfg, None)
    _compatible(other, ds, flag)
    return scaler.apply(other)


def _compatible(other: Dataset, ds: Dataset, flag: str) -> None:
    if other.feature_shape != ds.feature_shape:
        raise InputError(f"{flag}: {other.name} records have shape {other.feature_shape}, "
                         f"the target's dataset {ds.name} has {ds.feature_shape}")
    if other.n_classes > ds.n_classes:
        raise InputError(f"{flag}: {other.name} has {other.n_classes} classes, the target only {ds.n_classes}")


def load_audited(cfg: AuditConfig) -> AuditData:
    """The audited dataset of ``cfg``: a named dataset or a file (a CSV / Parquet table is encoded),
    with the user's split when --member-column or --members-file gives one."""
    if is_table_path(cfg.dataset):
        table = load_user_table(cfg.dataset, table_options(cfg))
        return AuditData(table.dataset, table.membership, table)
    if cfg.member_column:
        raise InputError("--member-column: needs a CSV / Parquet dataset (use --members-file with record indices)")
    for flag, value in (("--drop", cfg.drop), ("--keep", cfg.keep), ("--sep", cfg.sep)):
        if value:
            raise InputError(f"{flag}: applies to a CSV / Parquet dataset, not {cfg.dataset}")
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir, label_column=cfg.label_column)
    given = split_from_ids([str(i) for i in range(len(ds))], cfg.members_file, len(ds)) if cfg.members_file else None
    return AuditData(ds, given)


def table_options(cfg: AuditConfig) -> TableOptions:
    na = {} if cfg.na_values is None else {"na_values": tuple(cfg.na_values)}
    return TableOptions(cfg.label_column, cfg.member_column, cfg.members_file, cfg.id_column, cfg.categorical,
                        cfg.missing, columns=tuple(cfg.columns) if cfg.columns else None, no_header=cfg.no_header,
                        sep=cfg.sep, drop=tuple(cfg.drop or ()), keep=tuple(cfg.keep or ()),
                        max_features=cfg.max_features, **na)


def make_plan(cfg: AuditConfig, data: AuditData | None = None, model: Any = None,
              train_fn: Callable | None = None) -> AuditPlan:
    """Load data (or take ``data``), draw disjoint splits (or take the user's), open an outside target
    (a model file, a URL, or ``model``), choose reference-model training sets, check attack needs."""
    notes: list[str] = []
    from_caller = data is not None
    data = data or load_audited(cfg)
    if data.table is not None:  # columns left out or converted, rows dropped: on the console and in the report
        notes.extend(data.table.notes())
    raw, given = data.dataset, data.membership
    if cfg.keep_classes:
        kept = np.isin(raw.y, cfg.keep_classes)
        raw = keep_classes(raw, cfg.keep_classes)
        given = None if given is None else np.asarray(given, bool)[kept]
    elif from_caller:
        raw = Dataset(raw.name, raw.x.copy(), raw.y, raw.n_classes, raw.class_names)  # the caller's arrays stay
    scaler = fit_scaler(raw.x, cfg.input_scaling)
    outside = open_outside(cfg, raw, scaler, model, train_fn, notes,
                           table=data.table if not cfg.keep_classes else None)
    ds = scaler.apply(raw, in_place=True)  # raw is this call's own copy (cached loaders give read-only arrays)
    del raw
    n = len(ds)
    if given is not None:
        if cfg.coin_flip_members or cfg.nonmember_dataset:
            flag = "--coin-flip-members" if cfg.coin_flip_members else "--nonmember-dataset"
            raise InputError(f"{flag}: cannot be used with the user's own split (--member-column / --members-file)")
        splits = user_splits(given, cfg.members, cfg.non_members, cfg.seed)
        members, non_members = splits.members.size, splits.non_members.size
        notes.append(f"the user's split: {members} members and {non_members} non-members audited; "
                     f"{splits.attacker.size} other non-members are attacker data")
    else:
        members = cfg.members or max(1, min(2500, n // 4))
        non_members = cfg.non_members or members
        splits = make_splits(n, members, non_members, seed=cfg.seed, dataset_name=ds.name)
    splits.check(n)
    rng = np.random.default_rng([cfg.seed, 7])
    test_x, test_y = ds.x[splits.non_members], ds.y[splits.non_members]

    if cfg.nonmember_dataset and cfg.coin_flip_members:
        raise InputError("--coin-flip-members: cannot draw membership by coin flips when non-members come "
                         "from another dataset (--nonmember-dataset)")
    if cfg.nonmember_dataset:
        other = _load_other(cfg.nonmember_dataset, cfg, ds, scaler, "--nonmember-dataset")
        if len(other) < non_members:
            raise InputError(f"--non-members: {non_members} requested, {other.name} has {len(other)} records")
        out_index = rng.permutation(len(other))[:non_members]
        out_x, out_y, out_src = other.x[out_index], other.y[out_index], other.name
        _check_no_shared_records(ds.x[splits.members], out_x, other.name)
        notes.append(f"non-members are out-of-domain records from {other.name}")
    else:
        out_index, out_x, out_y, out_src = splits.non_members, test_x, test_y, ds.name
    # The audited records in a seeded random order: no attack may see membership in their position.
    order = np.random.default_rng([cfg.seed, 11]).permutation(members + len(out_index))
    pool_x = np.concatenate([ds.x[splits.members], out_x])[order]
    pool_y = np.concatenate([ds.y[splits.members], out_y])[order]
    membership = np.r_[np.ones(members, bool), np.zeros(len(out_index), bool)][order]
    record_index = np.r_[splits.members, out_index].astype(np.int64)[order]
    source = list(np.array([ds.name] * members + [out_src] * len(out_index), dtype=object)[order])
    if data.table is not None and not cfg.keep_classes:  # a table's records are known by their row in the file
        record_index = np.where(np.array(source) == ds.name, data.table.rows[np.minimum(record_index, n - 1)],
                                record_index)
    if cfg.coin_flip_members:
        membership = _coin_flips(len(pool_x), cfg, notes)
        test_x, test_y = pool_x[~membership], pool_y[~membership]

    k = cfg.reference_models
    mode = "attacker" if cfg.shadow_dataset else cfg.reference_data
    if cfg.shadow_dataset and cfg.reference_data == "pool":
        notes.append(f"--shadow-dataset given: reference models train on {cfg.shadow_dataset} (attacker mode)")
    # Indices, not copies: the attacker split is most of the dataset (65,000 images for
    # Fashion-MNIST) and only the population drawn from it is ever read.
    attacker = np.asarray(splits.attacker)
    if mode == "pool":
        ref_x, ref_y = pool_x, pool_y
        masks = balanced_masks(k, len(pool_x), seed=cfg.seed + 1) if k else np.zeros((0, len(pool_x)), bool)
        pop_index = attacker
    elif cfg.shadow_dataset:
        shadow = _load_other(cfg.shadow_dataset, cfg, ds, scaler, "--shadow-dataset")
        used, masks, _ = shadow_sets(len(shadow), k, members, rng, notes)
        ref_x, ref_y = shadow.x[used], shadow.y[used]
        pop_index = attacker
    else:
        used, masks, unused = shadow_sets(len(attacker), k, members, rng, notes)
        ref_x, ref_y = ds.x[attacker[used]], ds.y[attacker[used]]
        pop_index = attacker[unused]
    ref_x, shadow_data = _shadow_data(cfg, mode, ref_x, ref_y, notes)
    if len(pop_index) > cfg.population:
        pop_index = pop_index[np.sort(rng.permutation(len(pop_index))[: cfg.population])]
    pop_x, pop_y = ds.x[pop_index], ds.y[pop_index]

    labels_only = _releases_labels_only(cfg, outside)
    specs = attack_specs(cfg.attacks, labels_only)
    left_out = left_out_by_auto(cfg.attacks, labels_only)
    if left_out:
        notes.append(f"--attacks auto (the default): the attacks that read the target's scores; the {len(left_out)} "
                     "label-only ones run when named or with --attacks all (`miaudit attacks` lists them)")
    offer = SourceOffer(k, mode == "pool" and k >= 1, len(pop_x), has_model=True, has_records=True,
                        white_box=_trained_by_torch(cfg.target) and not outside, has_reference_models=True,
                        streamed=bool(cfg.signal_chunk))
    if cfg.signal_chunk:  # signals on disk: only attacks that stream over record chunks ("all" -> those)

        kept = [s for s in specs if CANNOT_STREAM not in (s.unmet_need_in(offer) or "")]
        if skipped := [s.name for s in specs if s not in kept]:
            notes.append(f"signals streamed from disk (--signal-chunk): skipped {', '.join(skipped)} (cannot stream)")
        specs = kept
    runnable, no_population = [], []
    hint = "" if len(pop_x) else _population_hint(cfg, given is not None, len(out_index))
    for spec in specs:
        why = spec.unmet_need_in(offer)
        if why is not None and hint and spec.unmet_need_in(replace(offer, n_population=1)) is None:
            why += f" ({hint})"  # the population is all it lacks: say how to supply one
            no_population.append(spec.name)
        if why is None:
            runnable.append(spec)
        elif spec.name in cfg.attacks:  # named explicitly, not through "all" / "auto": refused before any work
            raise InputError(why)
        elif spec.name not in no_population and not (spec.needs_white_box and AUTO in cfg.attacks):
            notes.append(f"skipped {why}")  # ("auto": white-box attacks only for a white-box target)
    if not runnable:
        raise InputError("--attacks: none of the requested attacks can run with these settings")
    offsets = [s.name for s in runnable if s.uses_population]
    if hint and (no_population or offsets):
        notes.append(f"no population records (attacker data no model trained on): {hint}. "
                     + "; ".join(part for part in (no_population and f"skipped {', '.join(no_population)}",
                                                   offsets and f"ran without local offsets: {', '.join(offsets)}")
                                 if part))
    architecture = cfg.reference_architecture or (None if outside else cfg.target)
    check_audit_size(_audit_size(cfg, ds, len(pool_x) + len(pop_x) + (len(ref_x) if mode != "pool" else 0),
                                 architecture), ds.name)
    choice = {} if AUTO not in cfg.attacks else auto_block(
        [s.name for s in runnable], k, mode == "pool" and k >= 1, len(pop_x), labels_only)
    return AuditPlan(cfg, ds, pool_x, pool_y, membership, record_index, source, test_x, test_y, mode,
                     ref_x, ref_y, masks, pop_x, pop_y, runnable, scaler, notes, outside, data.table,
                     shadow_data, choice)


def within_query_budget(plan: AuditPlan, budget: int | None) -> AuditPlan:
    """The plan, or a smaller one whose target queries fit ``budget`` records: population records go
    first, then audited records beyond the first ones (the audited records are in random order, so
    the ones kept are a random subset); a note says what was left out. InputError when the budget
    cannot cover two audited records, a member and a non-member."""
    q = plan.config.queries
    extra = len(plan.test_x) if plan.config.nonmember_dataset else 0
    n, z = len(plan.pool_x), len(plan.population_x)
    if budget is None or q * (n + z) + extra <= budget:
        return plan
    keep_n = min(n, max(0, (budget - extra) // q))
    keep_z = min(z, max(0, (budget - extra) // q - keep_n))
    kept = plan.membership[:keep_n]
    if not (kept.any() and (~kept).any()):
        raise InputError(f"--query-budget: {budget} queries cannot cover a member and a non-member "
                         f"({q * (n + z) + extra} would audit every record)")
    note = (f"query budget {budget}: audited {keep_n} of {n} records and {keep_z} of {z} population records "
            f"({q} queries each)")
    pool = slice(0, keep_n)
    mode_pool = plan.reference_mode == "pool"
    return replace(plan, pool_x=plan.pool_x[pool], pool_y=plan.pool_y[pool], membership=kept,
                   record_index=plan.record_index[pool], record_source=plan.record_source[:keep_n],
                   reference_x=plan.pool_x[pool] if mode_pool else plan.reference_x,
                   reference_y=plan.pool_y[pool] if mode_pool else plan.reference_y,
                   reference_masks=plan.reference_masks[:, pool] if mode_pool else plan.reference_masks,
                   population_x=plan.population_x[:keep_z], population_y=plan.population_y[:keep_z],
                   notes=[*plan.notes, note])


def _population_hint(cfg: AuditConfig, users_split: bool, audited_non_members: int) -> str:
    """How to supply population records (attacker data no model trained on) when there are none."""
    if cfg.population == 0:
        return "--population is 0"
    if users_split:
        return (f"the user's split audits all {audited_non_members} of its non-members; add non-member rows beyond "
                "as many as the members, or audit fewer with --non-members N: the rest become population records")
    return "every record of the dataset is audited; fewer --members or --non-members leave some as population"


def _releases_labels_only(cfg: AuditConfig, outside: OutsideTarget | None) -> bool:
    """Whether the audited target releases labels only (the label output defense, a label API)."""

    target = getattr(outside, "target", None)
    while target is not None and not isinstance(target, LabelRelease):
        target = target.__dict__.get("target")  # RawInputs and other wrappers keep the wrapped target here
    return cfg.output_defense == "label" or target is not None


def _trained_by_torch(target: str) -> bool:
    """Does miaudit train ``target`` as a model whose parameters white-box attacks read (models.families)?"""
    family = find_family(target)
    return family is not None and family.white_box


def _shadow_data(cfg: AuditConfig, mode: str, ref_x: np.ndarray, ref_y: np.ndarray, notes: list[str]):
    """(shadow records, shadow_data block): noisy / marginal records replace the attacker's real ones
    here; synthesized ones need the target and come in the pipeline (miaudit.data.synthesis)."""

    if cfg.shadow_data == "real":
        return ref_x, {}
    if mode != "attacker":
        raise InputError(f"--shadow-data: {cfg.shadow_data} replaces the attacker's shadow records; "
                         f"use it with --reference-data attacker")
    block = {"kind": cfg.shadow_data}
    if cfg.shadow_data == "synthesized":
        return ref_x, block
    if cfg.shadow_data == "noisy":
        block["noise_fraction"] = cfg.shadow_noise
        notes.append(f"shadow models train on the attacker's records with {cfg.shadow_noise:.0%} of "
                     f"their features changed")
    else:
        notes.append("shadow models train on records drawn from per-class feature marginals")
    return shadow_records(cfg.shadow_data, ref_x, ref_y, cfg.seed, cfg.shadow_noise), block


def _coin_flips(n: int, cfg: AuditConfig, notes: list[str]) -> np.ndarray:
    """bool [n]: each audited record a member by its own fair coin (the one-run epsilon audit's design)."""
    membership = np.random.default_rng([cfg.seed, 13]).random(n) < 0.5
    if membership.all() or not membership.any():
        raise InputError(f"--coin-flip-members: {n} audited records are too few for coin-flip membership")
    notes.append(f"membership drawn by a fair coin per audited record: {int(membership.sum())} members of {n}")
    return membership


def _audit_size(cfg: AuditConfig, ds: Dataset, records: int, architecture: str | None) -> AuditSize:
    mlp = architecture == "mlp"
    weights = mlp_parameters(int(np.prod(ds.feature_shape)), cfg.hidden, ds.n_classes) if mlp else 0
    return AuditSize(cfg.reference_models, records, cfg.queries, ds.n_classes, weights, cfg.chunk_size)


def _check_no_shared_records(member_x: np.ndarray, non_member_x: np.ndarray, source: str) -> None:
    """InputError if a non-member record is identical to a member record (the sets would overlap)."""
    seen = {row.tobytes() for row in member_x.reshape(len(member_x), -1)}
    shared = sum(row.tobytes() in seen for row in non_member_x.reshape(len(non_member_x), -1))
    if shared:
        raise InputError(f"--nonmember-dataset {source}: member and non-member sets overlap "
                         f"({shared} non-member records are identical to member records)")
