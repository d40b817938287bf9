"""Running a sweep: one ``miaudit.audit()`` per (point, seed), saved after each, resumable.

The sweep only calls audit() with settings and reads its result; models are reused between points
with the same configuration by the audit's own model cache. ``DIR/sweep.json`` is rewritten
(atomically) after every audit, so an interrupted sweep resumes where it stopped: runs already in
it for the same point settings and seed are not repeated.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import miaudit
from miaudit.audit.config import make_config
from miaudit.errors import InputError
from miaudit.progress import ProgressBoard
from miaudit.sweeps.experiments import dataset_records
from miaudit.sweeps.report import write_outputs
from miaudit.sweeps.seed_stats import CONFIDENCE, DEFAULT_RESOLUTION, resolution, summarize
from miaudit.sweeps.spec import METRICS, SweepSpec
from miaudit.sweeps.verdict import finding


def run_sweep(spec: SweepSpec, out: str | Path, progress: bool = True, overrides: dict[str, Any] | None = None,
              ) -> dict[str, Any]:
    """Run every point of ``spec`` over seeds 0..spec.seeds-1 and write sweep.json / .csv / .md, the
    plots and sweep.html into ``out``; returns the sweep.json document.

    overrides: audit settings applied on top of every point (e.g. smaller sizes); recorded in the
    document. A point whose settings the audit rejects is recorded with its error, not retried.
    """

    check_points(spec, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sweep.json"
    previous = _previous_runs(path)
    runs: list[dict[str, Any]] = []
    todo = [(p, s) for p in spec.points for s in range(spec.seeds)]
    with ProgressBoard(progress) as board, board.task(f"sweep {spec.experiment}", len(todo)) as update:
        for done, (point, seed) in enumerate(todo, start=1):
            settings = {**spec.base, **point.settings, **(overrides or {}), "seed": seed}
            key = _key(settings)
            run = previous.get(key)
            if run is None:
                run = _one_run(point.label, settings, spec.attacks)
            runs.append(run)
            _write_json(path, document(spec, runs, overrides, complete=False))
            update(done)
    doc = document(spec, runs, overrides, complete=True)
    _write_json(path, doc)
    write_outputs(doc, out)
    if not any("attacks" in r for r in runs):
        errors = sorted({r["error"] for r in runs if "error" in r})
        raise InputError(f"sweep {spec.experiment}: no point ran ({len(errors)} distinct errors, first: "
                         f"{errors[0] if errors else 'none recorded'}); see {path}")
    return doc


def check_points(spec: SweepSpec, overrides: dict[str, Any] | None) -> None:
    """InputError "point LABEL: ..." for the first point whose settings make no valid AuditConfig, or
    whose members and non-members need more records than its named dataset has (checked before any
    audit runs; a file's size is only known when the audit reads it)."""

    for point in spec.points:
        settings = {**spec.base, **point.settings, **(overrides or {})}
        try:
            make_config(**settings)
        except InputError as err:
            raise InputError(f"point {point.label!r}: {err}") from None
        n = dataset_records(settings.get("dataset", "digits"))
        members, non_members = settings.get("members"), settings.get("non_members")
        if n is None or not isinstance(members, int) or settings.get("keep_classes") or settings.get(
                "nonmember_dataset") or settings.get("members_file") or settings.get("member_column"):
            continue
        needed = members + (non_members if isinstance(non_members, int) else members)
        if needed > n:
            raise InputError(f"point {point.label!r}: members {members} + non-members "
                             f"{needed - members} need {needed} records, {settings.get('dataset', 'digits')} "
                             f"has {n}; lower them with --set members=N")


def _key(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _previous_runs(path: Path) -> dict[str, dict[str, Any]]:
    """Runs of a partial (or complete) sweep.json, by their settings; {} when there is none."""
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise TypeError(type(doc).__name__)
        return {_key(r["settings"]): r for r in doc.get("runs", []) if "settings" in r}
    except (ValueError, KeyError, TypeError):
        raise InputError(f"--out: {path} is not a sweep.json this version can resume; "
                         "choose another --out or remove it") from None


def _one_run(label: str, settings: dict[str, Any], attacks: list[str]) -> dict[str, Any]:
    run: dict[str, Any] = {"setting": label, "seed": settings["seed"], "settings": settings}
    try:
        result = miaudit.audit(progress=False, **settings)
    except InputError as err:
        run["error"] = str(err)
        return run
    run["train_accuracy"] = result.target.train_accuracy
    run["members"], run["non_members"] = result.target.members, result.target.non_members
    run["test_accuracy"] = result.target.test_accuracy
    run["accountant_epsilon"] = (result.privacy or {}).get("accountant_epsilon")
    run["seconds"] = result.timing.get("total_s")
    run["attacks"] = {a.name: _metrics(a.metrics) for a in result.attacks if a.name in attacks or not attacks}
    return run


def _metrics(m) -> dict[str, float]:
    return {"auc": m.auc, "tpr_at_0.001": m.tpr_at_fpr[0.001], "tpr_at_0.01": m.tpr_at_fpr[0.01],
            "accuracy": m.accuracy, "advantage": m.advantage, "epsilon_lower_bound": m.epsilon_lower_bound}


def t_interval(values: list[float], confidence: float = CONFIDENCE,
               bounds: tuple[float, float] = (-math.inf, math.inf),
               resolution: float = DEFAULT_RESOLUTION) -> tuple[float | None, list[float | None]]:
    """(mean, [lo, hi]): seed_stats.summarize's Student-t interval of the mean over seeds (per-seed SD at
    least ``resolution``, so never zero width), cut to ``bounds``; [None, None] for a single value."""
    s = summarize(values, confidence, bounds, resolution)
    return s.mean, list(s.ci)


def aggregate(spec: SweepSpec, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (point, attack): mean and 95% t interval over seeds of every metric, plus the
    target's accuracies; ``mean`` / ``ci`` are those of spec.metric."""
    points = []
    for point in spec.points:
        mine = [r for r in runs if r["setting"] == point.label]
        ok = [r for r in mine if "attacks" in r]
        errors = sorted({r["error"] for r in mine if "error" in r})
        names = [a for a in spec.attacks if any(a in r["attacks"] for r in ok)] or sorted(
            {a for r in ok for a in r["attacks"]})
        for attack in names or [None]:
            entry: dict[str, Any] = {"setting": point.label, "settings": point.settings,
                                     "seeds": [r["seed"] for r in ok], "attack": attack, "metric": spec.metric}
            if errors:
                entry["errors"] = errors
            if attack is not None:
                have = [r for r in ok if attack in r["attacks"]]
                entry["metrics"] = {}
                for metric in METRICS:
                    entry["metrics"][metric] = _summary(metric, [r["attacks"][attack][metric] for r in have], have)
                entry.update({k: entry["metrics"][spec.metric][k] for k in ("mean", "ci", "sd", "n")})
            for extra in ("train_accuracy", "test_accuracy", "accountant_epsilon"):
                values = [r[extra] for r in ok if r.get(extra) is not None]
                if values:
                    entry[extra] = _summary(extra, values, ok)
            points.append(entry)
    return points


def _summary(metric: str, values: list[float], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """summarize() of one metric over seeds, its SD floored at the resolution of the smallest run."""
    sizes = [(r.get("members"), r.get("non_members")) for r in runs]
    members = min((m for m, _ in sizes if m), default=None) or _setting(runs, "members")
    non_members = min((n for _, n in sizes if n), default=None) or _setting(runs, "non_members") or members
    upper = math.inf if metric in ("epsilon_lower_bound", "accountant_epsilon") else 1.0
    return summarize(values, bounds=(0.0, upper), resolution=resolution(metric, members, non_members)).to_dict()


def _setting(runs: list[dict[str, Any]], key: str) -> int | None:
    """The smallest ``key`` in the runs' settings (runs saved before their sizes were recorded)."""
    values = [r["settings"][key] for r in runs if isinstance(r.get("settings", {}).get(key), int)]
    return min(values, default=None)


def document(spec: SweepSpec, runs: list[dict[str, Any]], overrides: dict[str, Any] | None,
             complete: bool) -> dict[str, Any]:
    """The sweep.json document (design.md: experiment, points, finding, supported; plus outcome, test,
    margin and runs)."""
    points = aggregate(spec, runs)
    verdict = finding(spec, points) if complete else {"finding": "(sweep in progress)", "supported": None,
                                                       "outcome": None, "margin": spec.equivalence_margin}
    return {"experiment": spec.experiment, "description": spec.description, "miaudit_version": miaudit.__version__,
            "metric": spec.metric, "claim": spec.claim, "claim_text": spec.claim_text,
            "finding_attack": spec.finding_attack or next((p["attack"] for p in points if p["attack"]), None),
            "confidence": CONFIDENCE, "seeds": spec.seeds, "base": spec.base, "overrides": overrides or {},
            "x_label": spec.x_label, "points": points, **verdict, "complete": complete, "runs": runs}


def finite(o: Any) -> Any:
    """o with every NaN / inf float replaced by None (JSON has neither)."""
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    return o


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    text = json.dumps(finite(doc), indent=2, default=_json_default, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sweep.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
