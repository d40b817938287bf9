"""What an audit returns: a validated, self-summarising result object."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from miaudit.attacks.inputs import AttackInputs
    from miaudit.metrics import AttackMetrics


@dataclass(frozen=True)
class TargetSummary:
    """The audited model: name, accuracies in [0, 1], member / non-member counts."""

    model: str
    train_accuracy: float
    test_accuracy: float
    members: int
    non_members: int

    @property
    def generalization_gap(self) -> float:
        return self.train_accuracy - self.test_accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "train_accuracy": self.train_accuracy,
                "test_accuracy": self.test_accuracy, "members": self.members,
                "non_members": self.non_members, "generalization_gap": self.generalization_gap}


@dataclass(frozen=True)
class AttackOutcome:
    """One attack's scores on the audited records and the metrics computed from them.

    scores: float64 [N] (higher = member), aligned with AuditResult.record_index.
    seconds: wall time of the attack itself (signals already computed), in seconds.
    params: what the attack chose from the data (AttackScores.params).
    """

    name: str
    threat_model: str
    scores: np.ndarray
    metrics: AttackMetrics
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "threat_model": self.threat_model}
        d.update(self.metrics.to_dict())
        d["seconds"] = self.seconds
        if self.params:
            d["params"] = dict(self.params)
        return d


@dataclass
class AuditResult:
    """Everything one audit found.

    record_index: int [N] dataset indices of the audited records; membership: bool [N] true
    membership in the target's training set; labels: int [N].
    """

    miaudit_version: str
    config: dict[str, Any]
    target: TargetSummary
    attacks: list[AttackOutcome]
    timing: dict[str, Any]
    record_index: np.ndarray
    membership: np.ndarray
    labels: np.ndarray
    notes: list[str] = field(default_factory=list)
    inputs: AttackInputs | None = field(default=None, repr=False)  # the signal matrix, not serialised
    model: Any = field(default=None, repr=False)  # the trained target (a Target), not serialised
    records: np.ndarray | None = field(default=None, repr=False)  # [N, *feature_shape] as the models saw them

    def __post_init__(self) -> None:
        n = len(self.record_index)
        if self.membership.shape != (n,) or self.labels.shape != (n,):
            raise ValueError("record_index, membership and labels must have one entry per audited record")
        names = [a.name for a in self.attacks]
        if len(set(names)) != len(names):
            raise ValueError(f"attack listed twice in {names}")
        for a in self.attacks:
            if a.scores.shape != (n,):
                raise ValueError(f"attack {a.name}: {a.scores.shape[0]} scores for {n} records")

    def attack(self, name: str) -> AttackOutcome:
        for a in self.attacks:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The results.json document (contract in design.md; keys may be added, never removed)."""
        return {
            "miaudit_version": self.miaudit_version,
            "config": self.config,
            "target": self.target.to_dict(),
            "attacks": [a.to_dict() for a in self.attacks],
            "timing": self.timing,
            "notes": self.notes,
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def summary(self) -> str:
        """A plain-text table: one line per attack, best AUC first."""
        t = self.target
        lines = [
            f"target {t.model}: train accuracy {t.train_accuracy:.3f}, test accuracy {t.test_accuracy:.3f} "
            f"(gap {t.generalization_gap:+.3f}); {t.members} members, {t.non_members} non-members",
            f"{'attack':<28}{'AUC':>7}{'TPR@0.1%':>10}{'TPR@1%':>9}{'acc':>7}{'prec':>7}{'recall':>8}"
            f"{'adv':>7}{'eps_lb':>8}{'sec':>8}",
        ]
        for a in sorted(self.attacks, key=lambda a: -a.metrics.auc):
            m = a.metrics
            lines.append(
                f"{a.name:<28}{m.auc:7.3f}{m.tpr_at_fpr[0.001]:10.4f}{m.tpr_at_fpr[0.01]:9.4f}"
                f"{m.accuracy:7.3f}{m.precision:7.3f}{m.recall:8.3f}{m.advantage:7.3f}"
                f"{m.epsilon_lower_bound:8.3f}{a.seconds:8.2f}"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write results.json, report.html, roc.png and scores.csv into out_dir; returns their paths."""
        from miaudit.report import write_report

        return write_report(self, Path(out_dir))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
