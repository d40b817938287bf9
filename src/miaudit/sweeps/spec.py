"""What a sweep is: audit settings shared by every point, the points, seeds, and the claim to test.

A built-in experiment (experiments.py) or a user's ``sweep.toml``:

    experiment = "dropout-vs-epochs"   # any name
    seeds = 3
    metric = "auc"                     # the metric the finding is about (see METRICS)
    claim = "decreasing"               # increasing | decreasing | flat | highest:LABEL | lowest:LABEL
                                       # | best-attack:ATTACK@LABEL
    finding_attack = "lira-online"     # the attack the claim is about (default: the first)
    margin = 0.02                      # equivalence margin in the metric's units (default: MARGINS)
    [base]                             # audit settings of every point (miaudit.audit keywords)
    dataset = "digits"
    attacks = ["threshold-loss", "lira-online"]
    [grid]                             # every combination of these values is one point
    epochs = [5, 30]
    dropout = [0.0, 0.5]

or explicit points: ``[[points]]`` tables with ``label`` and ``settings``.
"""
from __future__ import annotations

import itertools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from miaudit.audit.config import read_config_file, validation_message
from miaudit.errors import InputError

METRICS = ("auc", "tpr_at_0.001", "tpr_at_0.01", "accuracy", "advantage", "epsilon_lower_bound")
# The default equivalence margin of each metric, in its own units: the smallest difference between two
# points that a finding treats as a change. "No effect" / "flat" needs the seeds to show the difference
# is inside (-margin, margin) (TOST); a sweep's ``margin`` replaces it.
MARGINS = {"auc": 0.02, "tpr_at_0.001": 0.005, "tpr_at_0.01": 0.01, "accuracy": 0.02, "advantage": 0.02,
           "epsilon_lower_bound": 0.25}
_CLAIM = re.compile(r"^(increasing|decreasing|flat|(highest|lowest):.+|best-attack:[^@]+@.+)$")


class SweepPoint(BaseModel):
    """One point: a label (shown in tables and plots) and the audit settings it changes."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1)
    settings: dict[str, Any] = {}


class SweepSpec(BaseModel):
    """A validated sweep. ``claim`` is what the finding checks (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    experiment: str = Field(min_length=1)
    description: str = ""
    base: dict[str, Any] = {}
    points: list[SweepPoint] = []
    grid: dict[str, list[Any]] = {}
    seeds: int = Field(3, ge=1, le=100)
    metric: str = "auc"
    claim: str = "increasing"
    claim_text: str = ""
    finding_attack: str | None = None
    x_label: str = "setting"
    margin: float | None = Field(None, gt=0, description="equivalence margin in the metric's units: a difference "
                                 "smaller than this counts as no effect (default: MARGINS[metric])")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; choose one of {', '.join(METRICS)}")
        return v

    @field_validator("claim")
    @classmethod
    def _known_claim(cls, v: str) -> str:
        if not _CLAIM.match(v):
            raise ValueError(f"{v!r}: use increasing, decreasing, flat, highest:LABEL, lowest:LABEL "
                             "or best-attack:ATTACK@LABEL")
        return v

    @model_validator(mode="after")
    def _expand_grid(self) -> SweepSpec:
        if self.grid:
            if self.points:
                raise ValueError("give points or a grid, not both")
            for key, values in self.grid.items():
                if not isinstance(values, list) or not values:
                    raise ValueError(f"grid.{key}: a non-empty list of values")
            keys = list(self.grid)
            self.points = [SweepPoint(label=", ".join(f"{k}={_show(v)}" for k, v in zip(keys, combo)),
                                      settings=dict(zip(keys, combo)))
                           for combo in itertools.product(*(self.grid[k] for k in keys))]
        if len(self.points) < 2:
            raise ValueError("a sweep needs at least two points")
        labels = [p.label for p in self.points]
        if len(set(labels)) != len(labels):
            raise ValueError(f"point labels must differ, got {labels}")
        kind, _, arg = self.claim.partition(":")
        label = arg.split("@")[-1] if kind == "best-attack" else arg
        if kind in ("highest", "lowest", "best-attack") and label not in labels:
            raise ValueError(f"claim {self.claim!r} names no point; points are {labels}")
        return self

    @property
    def equivalence_margin(self) -> float:
        """``margin``, or the metric's default from MARGINS."""
        return self.margin if self.margin is not None else MARGINS[self.metric]

    @property
    def attacks(self) -> list[str]:
        """The attacks named in base (in order); [] when base leaves them to the audit ("all")."""
        attacks = self.base.get("attacks", [])
        names = [a.strip() for a in attacks.split(",")] if isinstance(attacks, str) else list(attacks)
        return [] if names in (["all"], ["auto"]) else names


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def load_spec(path: str, defaults: dict[str, Any] | None = None) -> SweepSpec:
    """A SweepSpec from a .toml / .json / .yaml file, on top of ``defaults`` (a built-in's fields):
    the file's base settings are merged into the defaults' base, its other keys replace them."""
    data = read_config_file(path)
    merged = dict(defaults or {})
    if "base" in data and isinstance(data["base"], dict):
        data = {**data, "base": {**merged.get("base", {}), **data["base"]}}
    if ("grid" in data or "points" in data) and defaults:
        merged.pop("points", None)
        merged.pop("grid", None)
        merged.pop("claim", None)
    merged.update(data)
    return make_spec(merged, f"--config {path}: ")


def make_spec(data: dict[str, Any], where: str = "") -> SweepSpec:
    """SweepSpec(**data); a bad field raises a one-line InputError naming it."""
    try:
        return SweepSpec(**data)
    except ValidationError as e:
        raise InputError(validation_message(e, where)) from None
