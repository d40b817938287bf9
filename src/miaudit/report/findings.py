"""What the report says: the headline attack, its headline rates, a verdict band, the most exposed
records and the per-class exposure, computed from an AuditResult (pure functions, no HTML).

Headline attack: ``AuditResult.choice``, chosen without the audited records' membership labels
(:mod:`miaudit.attacks.choice`); never the best of the table on those labels, which overstates it.
Verdict, from the headline attack, first rule that applies (VERDICT_RULES says the same in words):
- none: the leakage test fixed in advance (:mod:`miaudit.metrics.leak_test`) does not reject "no better than
  random guessing" at its level;
- high: TPR@0.1% >= 5% or AUC >= 0.75;
- moderate: TPR@0.1% >= 1% or AUC >= 0.60;
- low: every other result (measurable, but small).
Bands read the point estimates, the estimated leak: how many records the audit has decides whether
the test can tell a leak from chance, not how large the leak is called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from miaudit.attacks.registry import ATTACKS
from miaudit.metrics.dp_audit import GDP
from miaudit.metrics.leak_test import ALPHA, LeakTest, leak_test, p_phrase

if TYPE_CHECKING:
    from miaudit.metrics.attack_metrics import AttackMetrics
    from miaudit.report.results import AttackOutcome, AuditResult

HEADLINE_FPR = 0.001
SECOND_FPR = 0.01
TOP_RECORDS = 12
HIGH_TPR, HIGH_AUC = 0.05, 0.75
MODERATE_TPR, MODERATE_AUC = 0.01, 0.60

VERDICT_RULES = (
    ("none", "No measurable leakage", "the leakage test (exact tail rank test at 0.1% FPR and Mann-Whitney "
     f"AUC test, Bonferroni) does not reject \"no better than random guessing\" at the {ALPHA:.0%} level"),
    ("high", "High leakage", f"measurable, and a TPR@0.1% FPR of {HIGH_TPR:.0%} or more or an AUC of "
     f"{HIGH_AUC:.2f} or more"),
    ("moderate", "Moderate leakage", f"measurable, and a TPR@0.1% FPR of {MODERATE_TPR:.0%} or more or an AUC "
     f"of {MODERATE_AUC:.2f} or more"),
    ("low", "Low leakage", "measurably better than random guessing, below the moderate thresholds"),
)

_THREAT_MODELS = {
    "black-box": "query access to the model's output probabilities",
    "label-only": "only the model's predicted labels",
    "white-box": "the model's parameters and gradients",
    "grey-box": "the architecture and training recipe, with data from another distribution",
}


@dataclass(frozen=True)
class Rate:
    """TPR at one FPR level: ``hits`` of ``n_members`` members identified; ci: 95% interval or None;
    ci_below_resolution: too few non-members to bound the TPR from below (the interval's lower end is
    0 whatever the scores): shown as "below resolution" with the upper end only."""

    level: float
    tpr: float
    hits: int
    n_members: int
    ci: tuple[float, float] | None
    false_positives: int
    n_non_members: int
    below_resolution: bool
    ci_below_resolution: bool = False


@dataclass(frozen=True)
class Verdict:
    """band: none / low / moderate / high; title, rule: in words (VERDICT_RULES); test: the leakage test."""

    band: str
    title: str
    rule: str
    test: LeakTest


@dataclass(frozen=True)
class EpsilonAudit:
    """ε (nats) at ``delta``; valid: a DP lower bound under ``assumptions``, else an estimate."""

    value: float
    method: str
    valid: bool
    assumptions: str
    delta: float
    confidence: float


@dataclass(frozen=True)
class ExposedRecord:
    """One audited record: position = its row in scores.csv (0-based, header not counted);
    non_members_at_or_above: non-members whose score is >= this record's (the false accusations an
    attacker makes when flagging this record)."""

    rank: int
    position: int
    record_index: int
    label: int
    is_member: bool
    score: float
    non_members_at_or_above: int


def strength(outcome: AttackOutcome) -> tuple[float, float]:
    """Sort key of an attack: (TPR@0.1% FPR, AUC), larger = stronger."""
    m = outcome.metrics
    return (float(m.tpr_at_fpr[HEADLINE_FPR]), float(m.auc))


def rank_attacks(attacks: list[AttackOutcome]) -> list[AttackOutcome]:
    """Attacks strongest first (stable for equal strength)."""
    return sorted(attacks, key=strength, reverse=True)


def rate_at(m: AttackMetrics, level: float) -> Rate:
    """The attack's TPR at FPR ``level`` with its count, resolution and the interval on the TPR at a
    true FPR of ``level`` (threshold error included: what the headline claims; the one the CLI shows)."""
    tpr = float(m.tpr_at_fpr[level])
    return Rate(level, tpr, int(round(tpr * m.n_members)), m.n_members, tuple(m.tpr_at_fpr_ci[level]),
                int(m.tpr_at_fpr_false_positives[level]), m.n_non_members, bool(m.tpr_at_fpr_below_resolution[level]),
                bool(m.tpr_at_fpr_ci_below_resolution[level]))


def verdict(m: AttackMetrics, test: LeakTest) -> Verdict:
    """The verdict band of an attack from its leakage test and its point estimates (VERDICT_RULES)."""
    tpr, auc = m.tpr_at_fpr[HEADLINE_FPR], m.auc
    if not test.rejects:
        band = "none"
    elif tpr >= HIGH_TPR or auc >= HIGH_AUC:
        band = "high"
    elif tpr >= MODERATE_TPR or auc >= MODERATE_AUC:
        band = "moderate"
    else:
        band = "low"
    _, title, rule = next(r for r in VERDICT_RULES if r[0] == band)
    return Verdict(band, title, rule, test)


def outcome_verdict(outcome: AttackOutcome, membership: np.ndarray) -> Verdict:
    """:func:`verdict` of one attack, its leakage test run on its scores and ``membership`` bool [N]."""
    return verdict(outcome.metrics, leak_test(outcome.scores, membership))


def verdict_section(result: AuditResult) -> dict:
    """results.json "verdict": the badge and headline as data, and how the headline attack was chosen."""
    v = outcome_verdict(result.headline, result.membership)
    choice = result.choice
    return {"band": v.band, "title": v.title, "test": v.test.name, "p_value": v.test.p_value,
            "alpha": v.test.alpha, "tail_p_value": v.test.tail_p, "auc_p_value": v.test.auc_p,
            "attack": choice.chosen, "chosen_by": choice.chosen_by, "why": choice.why,
            "candidates": {k: dict(x) for k, x in choice.candidates.items()}}


def headline_lines(result: AuditResult) -> list[str]:
    """Two plain lines for the console and summary(): the verdict with its test, the headline attack and its ε."""
    a = result.headline
    v = outcome_verdict(a, result.membership)
    m = a.metrics
    attack = f"headline attack: {a.name}, chosen by {result.choice.chosen_by} (without the membership labels)"
    if m.epsilon_valid:
        attack += f"; ε ≥ {m.epsilon_lower_bound:.2f} at δ = {m.delta:g} ({m.epsilon_confidence:.0%} confidence)"
    elif headline_epsilon(m):
        attack += f"; ε estimate {m.epsilon_lower_bound:.2f} (not a bound)"
    return [f"verdict: {v.title} (leakage test p {p_phrase(v.test.p_value)}, {v.test.name})", attack]


def headline_epsilon(m: AttackMetrics) -> bool:
    """Whether the ε of an attack may stand in a headline: not the GDP form, which is an estimate that
    exceeds the true ε of mechanisms whose trade-off curve is not Gaussian (randomized response)."""

    return m.epsilon_method != GDP


def epsilon_audit(m: AttackMetrics) -> EpsilonAudit:
    return EpsilonAudit(float(m.epsilon_lower_bound), m.epsilon_method, m.epsilon_valid,
                        m.epsilon_assumptions, float(m.delta), float(m.epsilon_confidence))


def exposed_records(result: AuditResult, outcome: AttackOutcome, top: int = TOP_RECORDS) -> list[ExposedRecord]:
    """The ``top`` records with the highest scores of ``outcome``; equal scores by dataset record index
    (not by position, which may follow membership)."""
    scores = np.asarray(outcome.scores, dtype=np.float64)
    members = np.asarray(result.membership, dtype=bool)
    non_member_scores = np.sort(scores[~members])
    order = np.lexsort((np.asarray(result.record_index), -scores))[:top]
    at_or_above = len(non_member_scores) - np.searchsorted(non_member_scores, scores[order], side="left")
    return [ExposedRecord(rank, int(i), int(result.record_index[i]), int(result.labels[i]), bool(members[i]),
                          float(scores[i]), int(k))
            for rank, (i, k) in enumerate(zip(order, at_or_above), start=1)]


def tied_beyond(outcome: AttackOutcome, shown: list[ExposedRecord]) -> int:
    """How many records not shown share the lowest shown score."""
    if not shown:
        return 0
    scores = np.asarray(outcome.scores, dtype=np.float64)
    return int((scores == shown[-1].score).sum()) - sum(r.score == shown[-1].score for r in shown)


def class_exposure(m: AttackMetrics) -> list[dict]:
    """Per-class rows, most exposed first (AUC, then TPR@1% FPR; classes without an AUC last).

    Each row: label, n_members, n_non_members, auc, auc_ci (or None), tpr (at 1% FPR, or None),
    tpr_below_resolution (fewer than 100 non-members in the class: TPR at zero false positives),
    like_top: the class's AUC interval overlaps the first class's, so the data do not tell their
    exposure apart (False for the first class itself and for classes without an interval).
    """
    rows = []
    for label, row in m.per_class.items():
        ci = row.get("auc_ci")
        below = row.get(f"tpr_at_fpr_{SECOND_FPR}_below_resolution")
        rows.append({"label": int(label), "n_members": int(row["n_members"]),
                     "n_non_members": int(row["n_non_members"]), "auc": row.get("auc"),
                     "auc_ci": None if ci is None else (float(ci[0]), float(ci[1])),
                     "tpr": row.get(f"tpr_at_fpr_{SECOND_FPR}"),
                     "tpr_below_resolution": bool(SECOND_FPR * int(row["n_non_members"]) < 1.0
                                                  if below is None else below)})

    def exposure(row: dict) -> tuple:
        return (row["auc"] is not None, row["auc"] or 0.0, row["tpr"] or 0.0)

    rows.sort(key=exposure, reverse=True)
    top = rows[0]["auc_ci"] if rows else None
    for i, row in enumerate(rows):
        ci = row["auc_ci"]
        row["like_top"] = bool(i > 0 and top is not None and ci is not None and ci[1] >= top[0])
    return rows


def attack_needs(outcome: AttackOutcome, reference_models: int | None) -> tuple[str, str]:
    """(what the attack is, what the attacker needs), in plain words, from the attack registry."""

    spec = ATTACKS.get(outcome.name)
    needs = [_THREAT_MODELS.get(outcome.threat_model, outcome.threat_model)]
    if spec is None:
        return "", needs[0]
    if spec.needs_references:
        k = f"{reference_models} " if reference_models else ""
        needs.append(f"{k}reference models of its own, trained like the target"
                     + (" (some on each audited record, some without it)" if spec.needs_in_models
                        else " on similar data"))
    if spec.needs_population:
        needs.append("records from the same distribution that no model trained on")
    return spec.description, "; ".join(needs)
