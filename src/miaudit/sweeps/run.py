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
from scipy import stats

import miaudit
from miaudit.errors import InputError
from miaudit.progress import ProgressBoard
from miaudit.sweeps.spec import METRICS, SweepSpec
from miaudit.sweeps.verdict import finding

CONFIDENCE = 0.95


def run_sweep(spec: SweepSpec, out: str | Path, progress: bool = True, overrides: dict[str, Any] | None = None,
              ) -> dict[str, Any]:
    """Run every point of ``spec`` over seeds 0..spec.seeds-1 and write sweep.json / .csv / .md, the
    plots and sweep.html into ``out``; returns the sweep.json document.

    overrides: audit settings applied on top of every point (e.g. smaller sizes); recorded in the
    document. A point whose settings the audit rejects is recorded with its error, not retried.
    """
    from miaudit.sweeps.report import write_outputs

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
    return doc


def check_points(spec: SweepSpec, overrides: dict[str, Any] | None) -> None:
    """InputError "point LABEL: ..." for the first point whose settings make no valid AuditConfig."""
    from miaudit.config import make_config

    for point in spec.points:
        try:
            make_config(**{**spec.base, **point.settings, **(overrides or {})})
        except InputError as err:
            raise InputError(f"point {point.label!r}: {err}") from None


def _key(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _previous_runs(path: Path) -> dict[str, dict[str, Any]]:
    """Runs of a partial (or complete) sweep.json, by their settings; {} when there is none."""
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
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
    run["test_accuracy"] = result.target.test_accuracy
    run["accountant_epsilon"] = (result.privacy or {}).get("accountant_epsilon")
    run["seconds"] = result.timing.get("total_s")
    run["attacks"] = {a.name: _metrics(a.metrics) for a in result.attacks if a.name in attacks or not attacks}
    return run


def _metrics(m) -> dict[str, float]:
    return {"auc": m.auc, "tpr_at_0.001": m.tpr_at_fpr[0.001], "tpr_at_0.01": m.tpr_at_fpr[0.01],
            "accuracy": m.accuracy, "advantage": m.advantage, "epsilon_lower_bound": m.epsilon_lower_bound}


def t_interval(values: list[float], confidence: float = CONFIDENCE,
               bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float | None, list[float | None]]:
    """(mean, [lo, hi]): Student-t interval of the mean over seeds, cut to the metric's range
    ``bounds``; [mean, mean] when all agree, [None, None] for a single value (None mean for none)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if len(x) == 0:
        return None, [None, None]
    mean = float(x.mean())
    if len(x) == 1:
        return mean, [None, None]
    sem = float(stats.sem(x))
    if sem == 0:
        return mean, [mean, mean]
    lo, hi = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sem)
    return mean, [float(max(lo, bounds[0])), float(min(hi, bounds[1]))]


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
                    mean, ci = t_interval([r["attacks"][attack][metric] for r in have],
                                          bounds=(0.0, math.inf if metric == "epsilon_lower_bound" else 1.0))
                    entry["metrics"][metric] = {"mean": mean, "ci": ci}
                entry["mean"], entry["ci"] = entry["metrics"][spec.metric]["mean"], entry["metrics"][spec.metric]["ci"]
            for extra in ("train_accuracy", "test_accuracy", "accountant_epsilon"):
                values = [r[extra] for r in ok if r.get(extra) is not None]
                if values:
                    mean, ci = t_interval(values, bounds=(0.0, math.inf if extra == "accountant_epsilon" else 1.0))
                    entry[extra] = {"mean": mean, "ci": ci}
            points.append(entry)
    return points


def document(spec: SweepSpec, runs: list[dict[str, Any]], overrides: dict[str, Any] | None,
             complete: bool) -> dict[str, Any]:
    """The sweep.json document (design.md: experiment, points, finding, supported; plus runs)."""
    points = aggregate(spec, runs)
    sentence, supported = finding(spec, points) if complete else ("(sweep in progress)", None)
    return {"experiment": spec.experiment, "description": spec.description, "miaudit_version": miaudit.__version__,
            "metric": spec.metric, "claim": spec.claim, "claim_text": spec.claim_text,
            "finding_attack": spec.finding_attack or next((p["attack"] for p in points if p["attack"]), None),
            "confidence": CONFIDENCE, "seeds": spec.seeds, "base": spec.base, "overrides": overrides or {},
            "x_label": spec.x_label, "points": points, "finding": sentence, "supported": supported,
            "complete": complete, "runs": runs}


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
