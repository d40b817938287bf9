"""Which attack the report's headline, verdict and ε line speak for, chosen without the audited
records' membership labels (picking the best attack on the labels it is then scored on overstates it).

Two ways, in this order:
- pseudo-targets: each of up to ``PSEUDO_TARGETS`` reference models (evenly spaced over K, fixed in
  advance) plays the target, the other K-1 play the references; its IN/OUT mask is known, so every
  score-based candidate is scored on it with no audited label read. The best mean TPR at 0.1% FPR
  wins, mean AUC breaks ties, then the rule's order. Needs reference models trained on the audited
  records with IN and OUT records (pool mode).
- rule: for attacks that cannot be scored that way (label-only, white-box, an audit without such
  reference models or without the signal matrix in memory), the first attack of ``PRIORITY`` that
  ran; attacks not listed come after, in the audit's order. The order is fixed in advance: attacks
  that compare the target with IN/OUT reference models first, then OUT-only ones, then the
  zero-reference ones (QMIA before Attack-P: stronger on the fmnist-mlp ladder benchmark), then attack
  models and plain thresholds, label-only and white-box last. QMIA is never scored on pseudo-targets
  (the population's features are not carried into them, and its regressor is the slow part): it is
  chosen by this rule where it is the zero-reference rung's candidate.

Shokri's attack-model variants (refitted per pseudo-target, the slowest part of a choice) are
candidates only when no LiRA or RMIA attack ran: those dominate them at low FPR (Carlini et al. 2022),
and this keeps the choice to a fraction of the attacks' own time. Two more cuts, neither reading the
audited labels: from ``MANY_REFERENCES`` models on, ``PSEUDO_TARGETS_MANY`` pseudo-targets instead of
``PSEUDO_TARGETS`` (each run there costs in proportion to K); and an attack that needs no reference
model (thresholds, Attack-P) runs on the pseudo-target's outputs alone, without the other K - 1 models
(its scores do not read them: only its decision threshold would, and the choice reads scores only).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits

from miaudit.metrics.attack_metrics import true_positives_at
from miaudit.metrics.intervals import allowed_false_positives
from miaudit.signals.inputs import AttackInputs

if TYPE_CHECKING:
    from miaudit.attacks.registry import AttackSpec

PSEUDO_TARGETS = 8
PSEUDO_TARGETS_MANY = 4
"""Pseudo-targets from MANY_REFERENCES reference models on."""
MANY_REFERENCES = 32
"""Not 16: on the fmnist-mlp ladder, K = 16 with 4 pseudo-targets chose base-online (outside the best
attack's interval on the real targets), with 8 rmia-tempered-offsets; at K = 32 and 64 both agree."""
HEADLINE_FPR = 0.001
PSEUDO = "pseudo-targets"
RULE = "rule"
PRIORITY = (
    "lira-online-moderated-offsets", "lira-online", "rmia-tempered-offsets", "rmia", "base-online",
    "bavaria-online", "bavaria-n-online", "lira-offline-moderated-offsets", "lira-offline", "base-offline",
    "rmia-offline", "bavaria-offline", "bavaria-n-offline", "qmia", "qmia-pinball", "population",
    "shokri-mlp", "shokri-rf", "shokri-lr", "shokri-rbf-svm", "shokri-linear-svm", "shokri-dt",
    "threshold-loss", "threshold-modified-entropy", "threshold-confidence", "threshold-entropy",
    "label-only-boundary-lira", "label-only-augmentation-lira", "label-only-noise-lira",
    "label-only-boundary", "label-only-augmentation", "label-only-noise", "label-only-gap",
    "gradient-norm-lira", "gradient-norm",
)


@dataclass(frozen=True)
class AttackChoice:
    """The headline attack and how it was chosen.

    chosen: attack name; chosen_by: "pseudo-targets" or "rule"; why: one sentence; candidates:
    {name: {"tpr_at_fpr_0.001", "auc"}} means over the pseudo-targets (empty when chosen by rule);
    pseudo_targets: the reference models that played the target.
    """

    chosen: str
    chosen_by: str
    why: str
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    pseudo_targets: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "chosen_by": self.chosen_by, "why": self.why,
                "candidates": {k: dict(v) for k, v in self.candidates.items()},
                "pseudo_targets": list(self.pseudo_targets)}


def pseudo_target(inputs: AttackInputs, k: int) -> tuple[AttackInputs, np.ndarray]:
    """(inputs where reference model k is the target and the other K-1 the references, its
    membership bool [N] = reference_in[k]). Shadow arrays lose row k too (in pool mode they stay the
    reference arrays). Signals only: the audited records and the models themselves are dropped (no
    model is queried on a pseudo-target)."""
    n_refs = inputs.n_reference
    if not 0 <= k < n_refs:
        raise ValueError(f"pseudo_target: k = {k} for {n_refs} reference models")
    others = np.delete(np.arange(n_refs), k)
    refs, ref_in = inputs.reference_logits[others], inputs.reference_in[others]
    if inputs.shadow_records_are_audited:  # the shadow arrays are the reference arrays (attacks' fast path)
        shadow, shadow_in, shadow_labels, shadow_ids = refs, ref_in, inputs.labels, inputs.record_ids
    else:
        shadow, shadow_in = inputs.shadow_logits[others], inputs.shadow_in[others]
        shadow_labels, shadow_ids = inputs.shadow_labels, inputs.shadow_ids
    view = AttackInputs(inputs.reference_logits[k], inputs.labels, refs, ref_in, shadow, shadow_in, shadow_labels,
                        inputs.population_reference_logits[k], inputs.population_reference_logits[others],
                        inputs.population_labels, inputs.record_ids, shadow_ids)
    return view, inputs.reference_in[k].copy()


def alone(view: AttackInputs) -> AttackInputs:
    """A pseudo-target's view without its reference models: for attacks that need none, whose scores
    do not read them (the cost of their decision threshold on K - 1 models is saved)."""
    return AttackInputs.target_only(view.target_logits, view.labels, view.population_target_logits,
                                    view.population_labels, view.record_ids)


def pseudo_target_count(n_references: int) -> int:
    """How many pseudo-targets a choice with K reference models uses (at most; fewer usable, fewer)."""
    return PSEUDO_TARGETS_MANY if n_references >= MANY_REFERENCES else PSEUDO_TARGETS


def pseudo_target_indices(inputs: AttackInputs, count: int = PSEUDO_TARGETS) -> list[int]:
    """Up to ``count`` reference models, evenly spaced over K, that can play the target: their mask has
    IN and OUT records and the other models keep some IN record. Deterministic."""
    mask = inputs.reference_in
    n_refs = mask.shape[0]
    if n_refs < 2 or count < 1:
        return []
    usable = [k for k in range(n_refs)
              if mask[k].any() and not mask[k].all() and np.delete(mask, k, axis=0).any()]
    if not usable:
        return []
    picks = np.unique(np.round(np.linspace(0, len(usable) - 1, min(count, len(usable)))).astype(int))
    return [usable[i] for i in picks]


def rule_choice(names: list[str], reason: str = "") -> AttackChoice:
    """The first of ``names`` in PRIORITY order (unlisted names after, in their own order)."""
    if not names:
        raise ValueError("rule_choice: no attack")
    rank = {name: i for i, name in enumerate(PRIORITY)}
    chosen = min(names, key=lambda n: (rank.get(n, len(PRIORITY)), names.index(n)))
    why = (f"{chosen} is first, among the attacks run, in the order fixed in advance (reference-model "
           f"likelihood ratios, then population and attack-model attacks, then thresholds, label-only and "
           f"white-box)" + (f"; {reason}" if reason else "") + ".")
    return AttackChoice(chosen, RULE, why)


def scorable(spec: AttackSpec) -> bool:
    """Whether an attack can be scored on a pseudo-target: it reads only the signal matrix."""
    return not (spec.needs_model or spec.needs_white_box)


def choose_attack(specs: list[AttackSpec], inputs: AttackInputs | None, seed: int = 0,
                  pseudo_targets: int | None = None, workers: int = 1) -> AttackChoice:
    """The headline attack among ``specs`` (the attacks the audit ran), reading only the reference
    models' masks and the signals, never the audited records' membership. ``inputs`` None (signals
    not in memory): the rule. pseudo_targets: at most this many (None: :func:`pseudo_target_count`).
    workers: threads over (candidate, pseudo-target) runs."""
    names = [s.name for s in specs]
    candidates = [s for s in specs if scorable(s)]
    if any(s.name.startswith(("lira", "rmia")) for s in candidates):
        candidates = [s for s in candidates if not s.name.startswith("shokri")]
    if inputs is None:
        return rule_choice(names, "the signals were not in memory to score attacks on reference models")
    if pseudo_targets is None:
        pseudo_targets = pseudo_target_count(inputs.n_reference)
    picks = pseudo_target_indices(inputs, pseudo_targets)
    if not candidates or not picks:
        why = ("no attack reads only the signals" if not candidates
               else "no reference model trained on the audited records to play the target")
        return rule_choice(names, why)
    made = [pseudo_target(inputs, k) for k in picks]
    runnable = [s for s in candidates if all(s.unmet_need_of(x) is None for x, _ in made)]
    if not runnable:
        return rule_choice(names, "no attack can run with one reference model fewer")
    jobs = [(s, i) for s in runnable for i in range(len(made))]

    def one(job) -> tuple[float, float] | None:
        spec, i = job
        x, membership = made[i]
        if not spec.needs_references:
            x = alone(x)
        try:
            scores = spec.run(x, seed=seed).scores
        except (ValueError, ArithmeticError):  # an attack that cannot fit on K-1 models drops out
            return None
        return _rates(scores, membership)

    with threadpool_limits(1 if workers > 1 else None), ThreadPoolExecutor(max(1, workers)) as pool:
        rates = list(pool.map(one, jobs))
    table: dict[str, dict[str, float]] = {}
    for spec in runnable:
        got = [r for (s, _), r in zip(jobs, rates) if s is spec]
        if any(r is None for r in got):
            continue
        tpr, auc = np.mean(got, axis=0)
        table[spec.name] = {"tpr_at_fpr_0.001": float(tpr), "auc": float(auc)}
    if not table:
        return rule_choice(names, "no attack could be scored on the reference models")
    chosen = best_candidate(table)
    best = table[chosen]
    why = (f"{chosen} has the highest mean TPR at 0.1% FPR ({best['tpr_at_fpr_0.001']:.1%}, AUC "
           f"{best['auc']:.3f}) of {len(table)} attacks scored on {len(picks)} reference models playing the "
           f"target, whose membership is known, without the audited records' labels.")
    return AttackChoice(chosen, PSEUDO, why, table, tuple(picks))


def best_candidate(table: dict[str, dict[str, float]]) -> str:
    """The name with the highest mean "tpr_at_fpr_0.001", then "auc", then first in PRIORITY (unlisted
    names: first in the table's order)."""
    rank = {name: i for i, name in enumerate(PRIORITY)}
    order = list(table)
    return max(order, key=lambda n: (table[n]["tpr_at_fpr_0.001"], table[n]["auc"],
                                     -rank.get(n, len(PRIORITY)), -order.index(n)))


def _rates(scores: np.ndarray, membership: np.ndarray) -> tuple[float, float]:
    """(TPR at HEADLINE_FPR as in the attacks table, AUC) of scores against a pseudo-target's mask."""

    n1 = int(membership.sum())
    n0 = len(membership) - n1
    fpr, tpr, _ = skm.roc_curve(membership, scores, drop_intermediate=False)
    found = true_positives_at(fpr, tpr, n1, n0, allowed_false_positives(HEADLINE_FPR, n0))
    return found / n1, float(skm.roc_auc_score(membership, scores))
