"""Signals in, audit out: an audit of precomputed model outputs (``--predictions FILE``), no model trained."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from miaudit.attacks.ladder import auto_block, with_choice
from miaudit.attacks.registry import AUTO, attack_specs
from miaudit.audit.attack_stage import AttackSettings, attack_outcomes, choose_headline, runnable
from miaudit.audit.config import AuditConfig
from miaudit.errors import InputError
from miaudit.progress import ProgressBoard
from miaudit.report.results import AuditResult, TargetSummary
from miaudit.targets.predictions import PredictionsSource, load_predictions
from miaudit.version import __version__


def audit_predictions(cfg: AuditConfig, board: ProgressBoard | None = None,
                      started: float | None = None) -> AuditResult:
    """Every requested attack that needs only signals, run on the outputs in ``cfg.predictions``.

    Attacks that need what the file lacks (reference outputs, IN/OUT masks, population records) are
    skipped with a note, or are an InputError when named explicitly in ``cfg.attacks``.
    """
    started = time.perf_counter() if started is None else started
    predictions = load_predictions(cfg.predictions)
    source = PredictionsSource(predictions)  # the same attacks and choice stages as a trained audit
    specs, skipped = runnable(source, attack_specs(list(cfg.attacks)))
    named = [why for why in skipped if why.split(":")[0] in cfg.attacks]
    if named:
        raise InputError(f"--predictions: {named[0]}")
    if not specs:
        raise InputError("--attacks: none of the requested attacks can run on these predictions")
    settings = AttackSettings.of(cfg)
    t = time.perf_counter()
    outcomes = attack_outcomes(source, specs, settings, predictions.membership, board)
    correct = source.target_correct
    m = predictions.membership
    summary = TargetSummary(f"predictions:{cfg.predictions}", float(correct[m].mean()), float(correct[~m].mean()),
                            int(m.sum()), int((~m).sum()))
    timing = {"attacks_s": time.perf_counter() - t, "total_s": time.perf_counter() - started,
              "train_target_s": 0.0, "train_reference_s": 0.0, "reference_models": predictions.n_reference,
              "train_gflop": 0.0, "train_gflops_per_s": 0.0}
    block = {} if AUTO not in cfg.attacks else auto_block(
        [s.name for s in specs], predictions.n_reference, source.offer.has_in_models, predictions.n_population)
    choice = choose_headline(settings, outcomes, source, timing, block.get("candidates"))
    timing["total_s"] = time.perf_counter() - started
    ids = predictions.record_ids if predictions.record_ids is not None else np.arange(predictions.n_records)
    notes = [f"signals from {cfg.predictions}: {predictions.n_records} audited records, "
             f"{predictions.n_reference} reference models, {predictions.n_population} population records"]
    notes += [f"skipped {why}" for why in skipped]
    public = cfg.public()
    if "dataset" not in cfg.model_fields_set:  # the audited records are the file's, not the default dataset's
        public["dataset"] = Path(cfg.predictions).name
    return AuditResult(__version__, public, summary, outcomes, timing, ids, m, predictions.labels,
                       notes=notes, inputs=source.inputs, choice=choice,
                       sections={"attack_choice": with_choice(block, choice)} if block and choice else {})
