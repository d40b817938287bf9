"""``miaudit sweep``: the classic experiments (and a user's own grid) as many audits over seeds, with
intervals, a finding per experiment, tables and plots. Drives miaudit.audit() only."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from miaudit.errors import InputError
from miaudit.sweeps.experiments import EXPERIMENTS, builtin
from miaudit.sweeps.run import run_sweep
from miaudit.sweeps.spec import SweepSpec, load_spec, make_spec

__all__ = ["EXPERIMENTS", "SweepSpec", "make_sweep", "parse_overrides", "run_sweep"]


def make_sweep(experiment: str, dataset: str | None = None, seeds: int | None = None,
               config: str | Path | None = None) -> SweepSpec:
    """The SweepSpec of a built-in experiment (on ``dataset``, default fashion-mnist), changed by an
    optional config file, or a user's own sweep from ``config`` named ``experiment``."""
    if experiment in EXPERIMENTS:
        fields = builtin(experiment, dataset or "fashion-mnist")
    elif config is None:
        builtin(experiment)  # raises the unknown-experiment error
    else:
        fields = {"experiment": experiment}
    spec = load_spec(str(config), fields) if config else make_spec(fields)
    update: dict[str, Any] = {}
    if dataset and experiment not in EXPERIMENTS:
        update["base"] = {**spec.base, "dataset": dataset}
    if seeds is not None:
        update["seeds"] = seeds
    return make_spec({**spec.model_dump(exclude={"grid"}), **update}) if update else spec


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """{"members": 500, "hidden": [64]} from ["members=500", "hidden=[64]"] (values read as JSON,
    else kept as text)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out
