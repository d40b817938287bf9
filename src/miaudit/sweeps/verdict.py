"""A sweep's finding: one sentence on what the data show about its claim, and whether they support it.

Supported means the observed direction (or winner) is the claimed one AND the 95% intervals of the
compared points separate; a right direction with overlapping intervals is "not supported
(inconclusive)". For "flat", supported means the highest and lowest points' intervals overlap.
"""
from __future__ import annotations

import math
from typing import Any

NAMES = {"auc": "AUC", "accuracy": "attack accuracy", "tpr_at_0.001": "TPR@0.1% FPR", "tpr_at_0.01": "TPR@1% FPR",
         "advantage": "advantage", "epsilon_lower_bound": "ε lower bound"}


def separate(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when the intervals of two aggregated points are known and do not overlap."""
    (alo, ahi), (blo, bhi) = a["ci"], b["ci"]
    if None in (alo, ahi, blo, bhi):
        return False
    return ahi < blo or bhi < alo


def _show(p: dict[str, Any]) -> str:
    lo, hi = p["ci"]
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    return f"{p['mean']:.3f}{ci} ({p['setting']})"


def _valid(p: dict[str, Any]) -> bool:
    return p.get("mean") is not None and math.isfinite(p["mean"])


def finding(spec, points: list[dict[str, Any]]) -> tuple[str, bool]:
    """(sentence, supported) for spec.claim on the aggregated points (run.aggregate)."""
    metric = NAMES.get(spec.metric, spec.metric)
    kind, _, arg = spec.claim.partition(":")
    claim = spec.claim_text or spec.claim
    if kind == "best-attack":
        attack, label = arg.split("@", 1)
        rows = sorted((p for p in points if p["setting"] == label and p["attack"] and _valid(p)),
                      key=lambda p: -p["mean"])
        if len(rows) < 2:
            return f"too few attacks ran at {label} to compare them", False
        best, second = rows[0], rows[1]
        sep = separate(best, second)
        ok = best["attack"] == attack and sep
        return (f"at {label} the best attack by {metric} is {best['attack']} with {_show(best)}, ahead of "
                f"{second['attack']} with {_show(second)}; intervals {'separate' if sep else 'overlap'}: "
                f"'{claim}' is {_verdict(ok, best['attack'] == attack)}."), ok
    attack = spec.finding_attack or next((p["attack"] for p in points if p["attack"]), None)
    rows = [p for p in points if p["attack"] == attack and _valid(p)]
    if len(rows) < 2:
        return f"{attack}: fewer than two points ran, nothing to compare", False
    if kind in ("increasing", "decreasing"):
        first, last = rows[0], rows[-1]
        rises = last["mean"] > first["mean"]
        sep = separate(first, last)
        right = rises == (kind == "increasing")
        ok = right and sep
        return (f"{attack} {metric} {'rises' if rises else 'falls'} from {_show(first)} to {_show(last)}; "
                f"intervals {'separate' if sep else 'overlap'}: '{claim}' is {_verdict(ok, right)}."), ok
    ranked = sorted(rows, key=lambda p: -p["mean"])
    if kind == "flat":
        top, bottom = ranked[0], ranked[-1]
        sep = separate(top, bottom)
        return (f"{attack} {metric} ranges from {_show(bottom)} to {_show(top)}; the extremes' intervals "
                f"{'separate' if sep else 'overlap'}: '{claim}' is {'supported' if not sep else 'not supported'}."), \
            not sep
    order = ranked if kind == "highest" else ranked[::-1]
    best, second = order[0], order[1]
    sep = separate(best, second)
    right = best["setting"] == arg
    ok = right and sep
    word = "highest" if kind == "highest" else "lowest"
    return (f"the {word} {attack} {metric} is {_show(best)}, next {_show(second)}; intervals "
            f"{'separate' if sep else 'overlap'}: '{claim}' is {_verdict(ok, right)}."), ok


def _verdict(ok: bool, right_direction: bool) -> str:
    if ok:
        return "supported"
    return "not supported (inconclusive: the intervals overlap)" if right_direction else "not supported (contradicted)"
