"""What an audit returns: a validated, self-summarising result object."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from miaudit.attacks.choice import rule_choice
from miaudit.errors import InputError
from miaudit.report import write_report
from miaudit.report.findings import headline_lines, verdict_section
from miaudit.targets.predictions import Predictions

if TYPE_CHECKING:
    from miaudit.attacks.choice import AttackChoice
    from miaudit.metrics.attack_metrics import AttackMetrics
    from miaudit.signals.inputs import AttackInputs


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
    queries: target queries behind the attack: those it sent itself (label-only attacks), or the
    signal matrix's it reads (audited records x Q, plus population records x Q where it uses them).
    """

    name: str
    threat_model: str
    scores: np.ndarray
    metrics: AttackMetrics
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    queries: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "threat_model": self.threat_model}
        d.update(self.metrics.to_dict())
        d["seconds"] = self.seconds
        if self.queries is not None:
            d["queries"] = int(self.queries)
        if self.params:
            d["params"] = dict(self.params)
        return d


@dataclass
class AuditResult:
    """Everything one audit found.

    record_index: int [N] dataset indices of the audited records; membership: bool [N] true
    membership in the target's training set; labels: int [N]. choice: the headline attack and how it
    was chosen without the membership labels (:mod:`miaudit.attacks.choice`; None: by its fixed rule).
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
    sections: dict[str, Any] = field(default_factory=dict)  # more top-level results.json blocks ("data", ...)
    scaler: Any = field(default=None, repr=False)  # the InputScaler every miaudit model saw the records through
    units: Any = field(default=None, repr=False)  # a bundled dataset's published units -> miaudit's (InputScaler)
    privacy: dict[str, Any] | None = None  # DP-SGD targets: the accountant's (ε, δ), σ and C (design.md)
    choice: AttackChoice | None = None

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
        if self.choice is None and names:

            self.choice = rule_choice(names)
        if self.choice is not None and self.choice.chosen not in names:
            raise ValueError(f"headline attack {self.choice.chosen} is not among {names}")

    @property
    def headline(self) -> AttackOutcome | None:
        """The attack the headline, verdict and ε line speak for (``choice``), None without attacks."""
        return self.attack(self.choice.chosen) if self.choice is not None else None

    def attack(self, name: str) -> AttackOutcome:
        for a in self.attacks:
            if a.name == name:
                return a
        raise KeyError(name)

    def record_scores(self, name: str, n_records: int | None = None) -> np.ndarray:
        """float64 [n_records]: attack ``name``'s score of every record in the order of the data given to
        the audit (entry i is record i: a row of the user's (x, y) arrays, DataFrame or table file, as
        ``record_index`` counts them), NaN for records not audited (attacker data). ``n_records``:
        the data's record count (default: the highest audited index + 1). ``attack(name).scores`` are
        in the audit's own shuffled order, aligned with ``record_index``."""
        scores = self.attack(name).scores
        index = np.asarray(self.record_index, np.int64)
        size = int(index.max(initial=-1)) + 1 if n_records is None else int(n_records)
        if size <= index.max(initial=-1):
            raise ValueError(f"n_records: {size}, but record {int(index.max())} was audited")
        out = np.full(size, np.nan)
        out[index] = scores
        return out

    def to_dict(self) -> dict[str, Any]:
        """The results.json document (contract in design.md; keys may be added, never removed)."""
        doc = {
            "miaudit_version": self.miaudit_version,
            "config": self.config,
            "target": self.target.to_dict(),
            "attacks": [a.to_dict() for a in self.attacks],
            "timing": self.timing,
            "notes": self.notes,
            **self.sections,
        }
        if self.privacy is not None:
            doc["privacy"] = dict(self.privacy)
        if self.headline is not None:

            doc["verdict"] = verdict_section(self)
        return doc

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def summary(self) -> str:
        """A plain-text table: one line per attack, best AUC first, AUC and TPRs with their intervals."""
        t = self.target
        w = max([28] + [len(a.name) + 2 for a in self.attacks])
        lines = [
            f"target {t.model}: train accuracy {t.train_accuracy:.3f}, test accuracy {t.test_accuracy:.3f} "
            f"(gap {t.generalization_gap:+.3f}); {t.members} members, {t.non_members} non-members",
            f"{'attack':<{w}}{'AUC':>22}{'TPR@0.1%':>23}{'TPR@1%':>23}{'acc':>7}{'prec':>7}{'recall':>8}"
            f"{'adv':>7}{'eps_lb' if all(a.metrics.epsilon_valid for a in self.attacks) else 'eps_est':>8}{'sec':>8}",
        ]
        for a in sorted(self.attacks, key=lambda a: -a.metrics.auc):
            m = a.metrics
            lines.append(
                f"{a.name:<{w}}{format_auc(m):>22}{format_tpr(m, 0.001, True):>23}{format_tpr(m, 0.01, True):>23}"
                f"{format_chance(m, 'accuracy'):>7}{m.precision:7.3f}{m.recall:8.3f}{format_chance(m, 'advantage'):>7}"
                f"{m.epsilon_lower_bound:8.3f}{a.seconds:8.2f}"
            )
        lines.extend(table_legend([a.metrics for a in self.attacks]))
        if self.headline is not None:

            lines.extend([EPSILON_LEGEND, *headline_lines(self)])
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def save_target(self, path: str | Path) -> Path:
        """Export the target miaudit trained (ONNX for torch models, skops for scikit-learn) as a model
        of raw records: the audit's input scaling is its first step. A user's own target is not exported."""
        from miaudit.targets.export import save_target

        if self.model is None or self.records is None:
            raise InputError("--save-target: this audit has no target model miaudit trained")
        return save_target(self.model, path, self.scaler, self.records.shape[1:], units=self.units)

    def predictions(self):
        """The audit's signals as Predictions (``save_predictions`` writes them for ``--predictions``):
        one query per record, reference models trained on the audited records (pool mode)."""

        x = self.inputs
        if x is None:
            raise InputError("--save-predictions: this result holds no signals")
        if x.target_logits.shape[1] != 1:
            raise InputError("--save-predictions: needs --queries 1 (the file holds one output per record)")
        if x.shadow_logits.shape[1] and x.shadow_logits.shape[1] != x.target_logits.shape[0]:
            raise InputError("--save-predictions: needs --reference-data pool (shadow records are the audited ones)")
        return Predictions(x.target_logits[:, 0], x.labels, self.membership, x.reference_logits[:, :, 0],
                           x.reference_in, x.population_target_logits[:, 0], x.population_labels,
                           x.population_reference_logits[:, :, 0], x.record_ids)

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write results.json, report.html, roc.png and scores.csv into out_dir; returns their paths."""

        return write_report(self, Path(out_dir))


BELOW_RESOLUTION_MARK = "\u2020"
EPSILON_LEGEND = ("ε per attack: for that attack alone; the table's largest ε is not a bound (picked after seeing "
                  "the results)")
CHANCE_MARK = "~"
TABLE_LEVELS = (0.001, 0.01)


def format_auc(m: AttackMetrics) -> str:
    """The AUC with its interval, e.g. "0.741 [0.728, 0.754]"."""
    lo, hi = m.auc_ci
    return f"{m.auc:.3f} [{lo:.3f}, {hi:.3f}]"


def format_tpr(m: AttackMetrics, level: float, align: bool = False) -> str:
    """TPR at an FPR level in percent with its interval, e.g. "10.3% [9.1, 11.6]"; two decimals when
    the interval ends below 1%; "[below res.]" in place of the interval when the audit has too few
    non-members to bound the TPR from below; marked with BELOW_RESOLUTION_MARK when the level allows
    no false positive on this audit (align: a space in place of the mark otherwise, for right-aligned columns)."""
    lo, hi = m.tpr_at_fpr_ci[level]
    digits = 2 if hi < 0.01 else 1
    mark = BELOW_RESOLUTION_MARK if m.tpr_at_fpr_below_resolution[level] else " " if align else ""
    ci = f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
    ci = "[below res.]" if m.tpr_at_fpr_ci_below_resolution[level] else ci
    return f"{m.tpr_at_fpr[level]:.{digits}%} {ci}{mark}"


def within_chance(m: AttackMetrics, name: str) -> bool:
    """Whether the attack's ``name`` ("accuracy" or "advantage") is no more than an attack without
    information reaches 95% of the time: advantage <= advantage_null_95; accuracy: its balanced
    accuracy within advantage_null_95 / 2 of 0.5."""
    if name == "advantage":
        return m.advantage <= m.advantage_null_95
    return m.balanced_accuracy <= 0.5 + m.advantage_null_95 / 2.0


def format_chance(m: AttackMetrics, name: str) -> str:
    """The accuracy or advantage to 3 decimals, CHANCE_MARK appended when it is within chance."""
    return f"{getattr(m, name):.3f}{CHANCE_MARK if within_chance(m, name) else ''}"


def table_legend(metrics: list[AttackMetrics], levels=TABLE_LEVELS) -> list[str]:
    """Lines explaining the intervals and, when a shown level is below resolution, the mark."""
    if not metrics:
        return []
    m = metrics[0]
    lines = [f"[{100 * m.ci_confidence:.0f}% intervals: DeLong for the AUC; for the TPRs, on the TPR at that "
             f"true FPR, threshold error included]"]
    if any(x.tpr_at_fpr_below_resolution[level] for x in metrics for level in levels):
        lines.append(f"{BELOW_RESOLUTION_MARK} fewer than 1/FPR non-members ({m.n_non_members}): "
                     f"TPR at zero false positives")
    if any(x.tpr_at_fpr_ci_below_resolution[level] for x in metrics for level in levels):
        lines.append(f"[below res.] fewer than 3.7/FPR non-members ({m.n_non_members}): nothing bounds that TPR "
                     f"from below (upper ends in results.json)")
    lines += [f"{CHANCE_MARK} within chance: advantage below {m.advantage_null_95:.3f} (95% of attacks without "
              f"information stay below), balanced accuracy within half that of 0.5",
              f"accuracy of calling every record a {'member' if m.n_members > m.n_non_members else 'non-member'}: "
              f"{m.accuracy_baseline:.3f}"]
    return lines


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
