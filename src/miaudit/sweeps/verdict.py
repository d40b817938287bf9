"""A sweep's finding: one sentence on what the seeds show about its claim, its outcome and whether they
support the claim.

Two points are compared on their per-seed means and SDs (seed_stats.compare) at the sweep's
confidence: the outcome is "effect" when Welch's t-test rejects "no difference", "no effect" when TOST
rejects "a difference of the margin or more" (margin: spec.equivalence_margin, in the metric's units),
"inconclusive" otherwise. A direction / winner claim is supported by an effect the claimed way; "flat"
is supported only by "no effect" between every pair of points (an intersection-union test, valid at the
same level); it is an effect there when some pair differs at level alpha / pairs (Bonferroni).
"""
from __future__ import annotations

import itertools
import math
from typing import Any

from miaudit.sweeps.seed_stats import CONFIDENCE, compare

NAMES = {"auc": "AUC", "accuracy": "attack accuracy", "tpr_at_0.001": "TPR@0.1% FPR", "tpr_at_0.01": "TPR@1% FPR",
         "advantage": "advantage", "epsilon_lower_bound": "ε lower bound"}
TEST = "Welch t-test (effect) and TOST equivalence within ±margin (no effect) over seeds"
OUTCOMES = ("effect", "no effect", "inconclusive")


def _show(p: dict[str, Any]) -> str:
    lo, hi = p["ci"]
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    return f"{p['mean']:.3f}{ci} ({p['setting']})"


def _valid(p: dict[str, Any]) -> bool:
    return p.get("mean") is not None and math.isfinite(p["mean"])


def _tests(c, margin: float) -> str:
    if c is None:
        return "fewer than two seeds, no test"
    lo, hi = c.tost_ci
    return (f"difference {c.difference:+.3f} (90% [{lo:+.3f}, {hi:+.3f}], margin ±{margin:g}), "
            f"Welch p = {c.p_effect:.3g}, TOST p = {c.p_equivalent:.3g}")


def finding(spec, points: list[dict[str, Any]], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """{"finding": sentence, "supported": bool, "outcome": effect | no effect | inconclusive, "test",
    "margin"} for spec.claim on the aggregated points (run.aggregate: mean, ci, sd, n per point)."""
    alpha = 1.0 - confidence
    margin = spec.equivalence_margin
    metric = NAMES.get(spec.metric, spec.metric)
    kind, _, arg = spec.claim.partition(":")
    claim = spec.claim_text or spec.claim

    def result(sentence: str, supported: bool, outcome: str) -> dict[str, Any]:
        return {"finding": sentence, "supported": supported, "outcome": outcome, "test": TEST, "margin": margin}

    if kind == "best-attack":
        attack, label = arg.split("@", 1)
        rows = sorted((p for p in points if p["setting"] == label and p["attack"] and _valid(p)),
                      key=lambda p: -p["mean"])
        if len(rows) < 2:
            return result(f"too few attacks ran at {label} to compare them", False, "inconclusive")
        best, second = rows[0], rows[1]
        c = compare(second, best, margin, alpha)
        outcome = c.outcome(alpha) if c else "inconclusive"
        right = best["attack"] == attack
        return result(f"at {label} the best attack by {metric} is {best['attack']} with {_show(best)}, ahead of "
                      f"{second['attack']} with {_show(second)}; {_tests(c, margin)}: {outcome}: "
                      f"'{claim}' is {_verdict(outcome, right)}.", right and outcome == "effect", outcome)
    attack = spec.finding_attack or next((p["attack"] for p in points if p["attack"]), None)
    rows = [p for p in points if p["attack"] == attack and _valid(p)]
    if len(rows) < 2:
        return result(f"{attack}: fewer than two points ran, nothing to compare", False, "inconclusive")
    if kind in ("increasing", "decreasing"):
        first, last = rows[0], rows[-1]
        c = compare(first, last, margin, alpha)
        outcome = c.outcome(alpha) if c else "inconclusive"
        rises = last["mean"] > first["mean"]
        right = rises == (kind == "increasing")
        return result(f"{attack} {metric} {'rises' if rises else 'falls'} from {_show(first)} to {_show(last)}; "
                      f"{_tests(c, margin)}: {outcome}: '{claim}' is {_verdict(outcome, right)}.",
                      right and outcome == "effect", outcome)
    ranked = sorted(rows, key=lambda p: -p["mean"])
    if kind == "flat":
        return _flat(ranked, margin, alpha, attack, metric, claim, result)
    order = ranked if kind == "highest" else ranked[::-1]
    best, second = order[0], order[1]
    c = compare(second, best, margin, alpha)
    outcome = c.outcome(alpha) if c else "inconclusive"
    right = best["setting"] == arg
    word = "highest" if kind == "highest" else "lowest"
    return result(f"the {word} {attack} {metric} is {_show(best)}, next {_show(second)}; {_tests(c, margin)}: "
                  f"{outcome}: '{claim}' is {_verdict(outcome, right)}.", right and outcome == "effect", outcome)


def _flat(ranked, margin: float, alpha: float, attack, metric: str, claim: str, result) -> dict[str, Any]:
    """"flat": no effect between every pair (TOST each at alpha), effect when a pair differs at
    alpha / pairs; the sentence reports the extremes' comparison."""
    top, bottom = ranked[0], ranked[-1]
    pairs = [compare(a, b, margin, alpha) for a, b in itertools.combinations(ranked, 2)]
    if any(c is None for c in pairs):
        outcome = "inconclusive"
    elif all(c.p_equivalent < alpha for c in pairs):
        outcome = "no effect"
    elif any(c.p_effect < alpha / len(pairs) for c in pairs):
        outcome = "effect"
    else:
        outcome = "inconclusive"
    extremes = compare(bottom, top, margin, alpha)
    verdict = {"no effect": "supported", "effect": "not supported (contradicted: the points differ)",
               "inconclusive": f"not supported (inconclusive: {len(ranked)} points not shown within ±{margin:g})"}
    return result(f"{attack} {metric} ranges from {_show(bottom)} to {_show(top)}; extremes: "
                  f"{_tests(extremes, margin)}: {outcome}: '{claim}' is {verdict[outcome]}.",
                  outcome == "no effect", outcome)


def _verdict(outcome: str, right_direction: bool) -> str:
    if outcome == "effect":
        return "supported" if right_direction else "not supported (contradicted)"
    if outcome == "no effect":
        return "not supported (no effect larger than the margin)"
    return "not supported (inconclusive)" if right_direction else "not supported (inconclusive; the other way)"
