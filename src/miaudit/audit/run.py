"""audit(): the one flow, stage by stage — plan, train, signals, attacks, choice, result."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.attacks.ladder import with_choice
from miaudit.audit.attack_stage import AttackSettings, attack_outcomes, choose_headline, runnable, usable_cores
from miaudit.audit.config import AuditConfig, make_config
from miaudit.audit.estimate import runtime_notice
from miaudit.audit.plan import AuditPlan, load_audited, make_plan, table_options, within_query_budget
from miaudit.audit.predictions import audit_predictions
from miaudit.audit.signal_stage import signal_source
from miaudit.audit.target_source import RawInputs
from miaudit.data.builtin import published_units
from miaudit.data.synthesis import synthesize_shadow_data
from miaudit.data.user_table import as_audit_data
from miaudit.models.cache import ModelCache, default_cache_dir
from miaudit.models.dp_sgd import target_privacy
from miaudit.models.perf import matmul_gflops, resolve_device
from miaudit.models.references import train_references
from miaudit.models.registry import fit_single, model_spec, stack_target, trains_stacked
from miaudit.models.user_references import train_user_references
from miaudit.progress import ProgressBoard
from miaudit.report.results import AttackOutcome, AuditResult, TargetSummary
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.source import MemorySource, SignalSource
from miaudit.version import __version__


def audit(config: AuditConfig | None = None, *, progress: bool = True, data: Any = None, membership: Any = None,
          train_fn: Callable | None = None, **settings: Any) -> AuditResult:
    """Run one membership-inference audit and return its result (nothing is written to disk).

    Pass an AuditConfig, or settings by name: ``audit(dataset="digits", target="tree",
    reference_models=8, attacks=["threshold-loss", "lira-online"])``. Bad settings raise
    miaudit.errors.InputError before any model is trained. ``result.save(dir)`` writes the report.

    The user's own model and data: ``target`` may be a fitted scikit-learn estimator, a torch module,
    a ``predict(x) -> probabilities or logits`` function or a model file; ``data`` a dataset name,
    a Dataset, (x, y) arrays or a DataFrame; ``membership`` bool [n], True for the records the target
    trained on; ``train_fn(x, y, seed) -> model`` trains a reference model the way the target was
    (called K times, cached, resumed). Reference models default to clones of a scikit-learn target
    and re-initialised copies of a torch one.
    """
    model = settings.pop("target") if not isinstance(settings.get("target", ""), str) else None
    if isinstance(data, (str, Path)):
        settings["dataset"], data = str(data), None
    if model is not None:
        settings["target"] = f"user:{type(model).__name__}"
    cfg = config if config is not None and not settings else make_config(base=config, **settings)
    started = time.perf_counter()
    if cfg.predictions:  # signals given: no plan, no training
        with ProgressBoard(progress) as board:
            return audit_predictions(cfg, board, started)
    if data is not None or membership is not None:
        data = as_audit_data(load_audited(cfg) if data is None else data, membership, table_options(cfg))
    plan = make_plan(cfg, data, model, train_fn)
    if plan.outside is not None:  # a prediction API answers a limited number of queries
        plan = within_query_budget(plan, getattr(plan.outside.target, "remaining", None))
    if progress:
        print_runtime_notice(plan)
    with ProgressBoard(progress) as board:
        return _run(plan, board, started)


def _run(plan: AuditPlan, board: ProgressBoard, started: float) -> AuditResult:
    """The stages after the plan, each timed into ``timing``: train (train_target_s, train_reference_s),
    signals (signals_s: in memory or a chunked store), attacks (attacks_s), choice (choice_s), result."""
    cfg = plan.config
    timing: dict[str, Any] = {}
    resolve_device(cfg.device)  # --device cuda without a GPU fails here, before any training
    target, refs = train_target_and_references(plan, board, timing)
    with signal_source(plan, target, refs, board, timing) as source:
        outcomes = plan_attacks(plan, source, board, timing)
        choice = choose_headline(AttackSettings.of(cfg), outcomes, source, timing, plan.attack_choice.get("candidates"))
        signals = source.describe()  # the results.json "signals" block of a store ({} in memory)
    return audit_result(plan, target, refs, source, outcomes, choice, timing, started,
                        {"signals": signals} if signals else {})


def plan_attacks(plan: AuditPlan, source: SignalSource, board: ProgressBoard | None = None,
                 timing: dict[str, Any] | None = None, specs=None) -> list[AttackOutcome]:
    """The plan's attacks (or ``specs``) on ``source``, scored against the plan's membership; an attack
    the source cannot serve (e.g. no model to query) is skipped with a note; ``attacks_s`` into timing."""
    t = time.perf_counter()
    specs, skipped = runnable(source, plan.attacks if specs is None else specs)
    plan.notes.extend(f"skipped {why}" for why in skipped if f"skipped {why}" not in plan.notes)
    outcomes = attack_outcomes(source, specs, AttackSettings.of(plan.config), plan.membership, board)
    if timing is not None:
        timing["attacks_s"] = time.perf_counter() - t
    return outcomes


def run_attacks(plan: AuditPlan, inputs: AttackInputs, board: ProgressBoard | None = None,
                specs=None) -> list[AttackOutcome]:
    """:func:`plan_attacks` on in-memory signals (benchmarks and tests: a plan and its AttackInputs)."""
    return plan_attacks(plan, MemorySource(inputs), board, specs=specs)


def audit_result(plan: AuditPlan, target, refs, source: SignalSource, outcomes: list[AttackOutcome], choice,
                 timing: dict[str, Any], started: float, sections: dict[str, Any]) -> AuditResult:
    """The AuditResult of a trained audit: the target's accuracies, queries, training throughput and
    ``total_s`` into timing; notes and the results.json sections the plan adds."""
    cfg = plan.config
    correct = source.target_correct
    train_acc = float(correct[plan.membership].mean())
    test_acc = (float(correct[~plan.membership].mean()) if not cfg.nonmember_dataset
                else float((target.logits(plan.test_x).argmax(1) == plan.test_y).mean()))
    if hasattr(target, "queries_sent"):  # a prediction API: what the audit asked of it, attacks included
        timing["target_queries"] = int(target.queries_sent)
        timing["target_query_s"] = float(target.seconds)
    timing.update(_training_throughput(refs, cfg.reference_models, timing["train_reference_s"]))
    timing["total_s"] = time.perf_counter() - started

    summary = TargetSummary(cfg.target, train_acc, test_acc, int(plan.membership.sum()),
                            int((~plan.membership).sum()))
    notes = list(plan.notes)
    if cfg.output_defense:
        notes.append(f"output defense {cfg.output_defense}: every attack saw only the defended outputs of the "
                     "target and of the reference models" + (" (labels as one-hot log-probabilities, floor 1e-12)"
                                                             if cfg.output_defense == "label" else ""))
    privacy = target_privacy(cfg.recipe, int(plan.membership.sum()), cfg.seed)
    if plan.table is not None:
        sections["data"] = plan.table.public()
    if plan.shadow_data:
        sections["shadow_data"] = dict(plan.shadow_data)
    if plan.attack_choice:
        sections["attack_choice"] = with_choice(plan.attack_choice, choice) if choice else dict(plan.attack_choice)
    if plan.outside is not None:
        sections["target_source"] = {"kind": plan.outside.kind, "source": plan.outside.source,
                                     "input": cfg.target_input, "reference_models": plan.reference_architecture
                                     or plan.outside.reference_source}
    return AuditResult(__version__, cfg.public(), summary, outcomes, timing, plan.record_index,
                       plan.membership, plan.pool_y, notes=notes, inputs=source.inputs,
                       model=target if plan.outside is None else None, records=plan.pool_x, sections=sections,
                       scaler=plan.scaler, privacy=privacy, choice=choice, units=published_units(plan.dataset.name))


def train_target_and_references(plan: AuditPlan, board: ProgressBoard | None = None,
                                timing: dict[str, Any] | None = None):
    """(target, reference models or None), and ``train_target_s`` / ``train_reference_s`` into timing.

    An MLP target (or a CNN target trained stacked) in pool mode is one more model of the reference
    stack (its mask is the membership, its seed the config's, "target" in its cache key), so it trains
    in the same batched steps and is cached like them; its seconds are its FLOP share of the stack's
    training time. Else the target trains on its own, then the references.
    """
    timing = {} if timing is None else timing
    cfg = plan.config
    k = cfg.reference_models
    stacked = plan.outside is None and trains_stacked(model_spec(cfg.target, cfg.hidden), cfg.recipe)
    if not (k and stacked and plan.reference_mode == "pool"):
        t = time.perf_counter()
        target = train_target(plan, board) if plan.outside is None else plan.outside.target
        timing["train_target_s"] = time.perf_counter() - t
        if plan.config.shadow_data == "synthesized":  # shadow records climbed from the trained target

            t = time.perf_counter()
            synthesize_shadow_data(plan, target, board)
            timing["synthesize_shadow_s"] = time.perf_counter() - t
        t = time.perf_counter()
        refs = train_reference_models(plan, board)
        timing["train_reference_s"] = time.perf_counter() - t
        return target, refs
    t = time.perf_counter()
    masks = np.vstack([plan.reference_masks, plan.membership[None]])
    both = _train_stack(plan, board, masks, [*reference_seeds(cfg), cfg.seed], [*range(k), "target"],
                        f"training the target and {k} reference models")
    wall = time.perf_counter() - t
    refs, target_part = both.split(k)
    timing["train_target_s"] = target_part.train_seconds
    timing["train_reference_s"] = wall - target_part.train_seconds
    timing["target_trained_with_references"] = True
    return stack_target(cfg.target, target_part.models), refs


def reference_seeds(cfg: AuditConfig) -> list[int]:
    """The training seed of each reference model, in [0, 2**32) as scikit-learn's random_state needs."""
    return [(cfg.seed * 100_003 + 1 + i) % 2**32 for i in range(cfg.reference_models)]


def train_target(plan: AuditPlan, board: ProgressBoard | None = None):
    """The target model, trained on the plan's members with the config's recipe and seed."""
    cfg = plan.config
    with (board or ProgressBoard(False)).task(f"training target ({cfg.target})", 100) as update:
        return fit_single(model_spec(cfg.target, cfg.hidden), plan.member_x, plan.member_y, plan.n_classes,
                          cfg.recipe.model_copy(update={"seed": cfg.seed}), cfg.seed, cfg.precision,
                          dataset_name=plan.dataset.name, progress=lambda f: update(round(100 * f)),
                          device=resolve_device(cfg.device))


def train_reference_models(plan: AuditPlan, board: ProgressBoard | None = None):
    """K reference models on the plan's reference sets (from the cache when possible), or None if K=0."""
    cfg = plan.config
    k = cfg.reference_models
    if k == 0:
        return None
    if plan.reference_architecture is None:
        return train_outside_references(plan, board)
    return _train_stack(plan, board, plan.reference_masks, reference_seeds(cfg), None,
                        f"training {k} reference models")


def train_outside_references(plan: AuditPlan, board: ProgressBoard | None = None):
    """K reference models modelled on the outside target (clones, re-initialised copies, or the user's
    train_fn), trained on what the target sees (raw records unless --target-input scaled), cached."""

    cfg, outside = plan.config, plan.outside
    raw = isinstance(outside.target, RawInputs)
    x = outside.target.raw(plan.reference_x) if raw else plan.reference_x
    cache = ModelCache(cfg.cache_dir or default_cache_dir()) if cfg.cache else None
    key_parts = {"dataset": plan.dataset.name, "mode": plan.reference_mode, "input": cfg.target_input}
    with (board or ProgressBoard(False)).task(f"training {cfg.reference_models} reference models",
                                               cfg.reference_models) as update:
        refs = train_user_references(outside.template, x, plan.reference_y, plan.reference_masks, plan.n_classes,
                                     cfg.recipe.model_copy(update={"seed": cfg.seed}), reference_seeds(cfg),
                                     train_fn=outside.train_fn, cache=cache, key_parts=key_parts, progress=update,
                                     n_jobs=cfg.n_jobs)
    if raw:
        refs.models = [RawInputs(m, outside.target.scaler, outside.target.grid) for m in refs.models]
    return refs


def _train_stack(plan: AuditPlan, board: ProgressBoard | None, masks: np.ndarray, seeds: list[int],
                 names: list | None, title: str):
    """Models of the target's spec on the plan's reference records, one per row of masks."""
    cfg = plan.config
    cache = ModelCache(cfg.cache_dir or default_cache_dir()) if cfg.cache else None
    # train_references already puts a hash of (x, y) and the resolved precision in every model's key
    key_parts = {"dataset": plan.dataset.name, "mode": plan.reference_mode}
    with (board or ProgressBoard(False)).task(title, len(masks)) as update:
        return train_references(model_spec(plan.reference_architecture, cfg.hidden), plan.reference_x, plan.reference_y,
                                masks, plan.n_classes, cfg.recipe.model_copy(update={"seed": cfg.seed}),
                                seeds, precision=cfg.precision, cache=cache, key_parts=key_parts,
                                chunk_size=cfg.chunk_size, n_jobs=cfg.n_jobs, progress=update, names=names,
                                device=resolve_device(cfg.device), backend=cfg.backend, address=cfg.address)


def print_runtime_notice(plan: AuditPlan) -> None:
    """Before attacks that will take minutes: their estimated time and how to cut it, on stderr."""
    from rich.console import Console

    cfg = plan.config
    cores = usable_cores() if cfg.n_jobs < 1 else cfg.n_jobs
    notice = runtime_notice(plan.attacks, len(plan.pool_x), cfg.reference_models, cfg.queries, cfg.target,
                            cores, cfg.attacks)
    if notice:
        Console(stderr=True).print(f"note: {notice}", markup=False, highlight=False, soft_wrap=True)


def _training_throughput(refs, k: int, wall_s: float) -> dict[str, Any]:
    """Reference-training FLOPs and FLOP/s, with this process's fp32 matmul FLOP/s for scale."""
    if refs is None:
        return {"reference_models": k, "reference_models_trained": 0, "train_gflop": 0.0,
                "train_gflops_per_s": 0.0}
    flops = float(refs.train_flops or 0.0)
    seconds = float(refs.train_seconds or wall_s)
    out: dict[str, Any] = {
        "reference_models": k,
        "reference_models_trained": int(refs.trained),
        "reference_models_from_cache": k - int(refs.trained),
        "train_gflop": flops / 1e9,
        "train_gflops_per_s": flops / 1e9 / seconds if flops and seconds > 0 else 0.0,
    }
    if flops and refs.trained:
        probe = matmul_gflops(seconds=0.3)
        out["matmul_fp32_gflops_per_s"] = probe
        out["fraction_of_fp32_matmul"] = out["train_gflops_per_s"] / probe if probe else 0.0
    return out


