"""Seeded simulations of issue 21 items 1 and 2: is the headline ε a bound, and has the verdict power?

Item 1, the headline attack's ε against the true ε. Randomized response at ε = 1 on m = 1,000 records
drawn by fair coins: the mechanism outputs each record's bit, flipped with probability 1 / (1 + e).
20 attacks post-process that output: attack j scores bit + sigma_j * its own Gaussian noise. Sets:
"graded" (sigma from 0.01 to 2, attack 0 the strongest) and "adversarial" (20 equally strong attacks,
sigma = 0.3, independent noise). The one-run ε bound (Steinke et al., delta 1e-5, 95%) of each attack
is computed on the target's coins; the share of seeds where the ε of
- a fixed attack (attack 0, named in advance),
- the old headline (max TPR at 0.1% FPR on the audited labels, AUC tie-break),
- the new headline (miaudit.attacks.choice.best_candidate on PSEUDO reference models: each has its
  own fair coins and its own randomized-response output, the attacks score it the same way, and the
  choice reads only those),
- the table's maximum
exceeds the true ε, with a one-sided binomial test of "share > 5%" (pass: p >= 0.01, i.e. not
significantly above 5% at 99%) and the 99% upper Clopper-Pearson bound.

Item 2, the verdict band. Members and non-members score N(0, 1); a leak moves a share of the members
above every non-member. Old rule (as before issue 21, re-implemented below from today's metrics):
"none" when the AUC interval reaches 0.5 and the joint TPR@0.1% interval reaches 0.1%, bands from the
lower ends. New rule: miaudit.report.findings.verdict with miaudit.metrics.leak_test.

``python benchmarks/coverage_headline.py [--quick]`` prints the tables and writes
benchmarks/results/coverage_headline.json and .log (full run only).
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from miaudit.attacks.choice import PSEUDO_TARGETS, best_candidate
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.metrics.dp_audit import one_run_epsilon
from miaudit.metrics.intervals import allowed_false_positives
from miaudit.metrics.leak_test import leak_test
from miaudit.report import findings

TRUE_EPSILON = 1.0
M = 1000
ATTACKS = 20
DELTA, CONFIDENCE = 1e-5, 0.95
SETS = {"graded": np.geomspace(0.01, 2.0, ATTACKS), "adversarial": np.full(ATTACKS, 0.3)}
CHOICES = ("fixed attack", "old headline (audited labels)", "new headline (pseudo-targets)", "max over table")
RESULTS = Path(__file__).parent / "results"


# ---- item 1 -------------------------------------------------------------------------------------

def randomized_response(coins: np.ndarray, rng: np.random.Generator, epsilon: float = TRUE_EPSILON) -> np.ndarray:
    """Each coin kept with probability e^ε / (1 + e^ε), else flipped: an ε-DP output per record."""
    keep = rng.random(coins.shape) < math.exp(epsilon) / (1.0 + math.exp(epsilon))
    return np.where(keep, coins, ~coins)


def attack_scores(bits: np.ndarray, sigmas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[A, m] scores of the attacks on one mechanism output (post-processing with independent noise)."""
    return bits[None, :].astype(np.float64) + sigmas[:, None] * rng.normal(size=(len(sigmas), len(bits)))


def rates(scores: np.ndarray, membership: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TPR at 0.1% FPR as in the attacks table, AUC), each [A], for scores [A, m] (continuous)."""
    members, non = scores[:, membership], scores[:, ~membership]
    n1, n0 = members.shape[1], non.shape[1]
    k = allowed_false_positives(0.001, n0)
    threshold = np.sort(non, axis=1)[:, n0 - 1 - k]
    tpr = (members > threshold[:, None]).mean(axis=1)
    ranks = stats.rankdata(scores, axis=1)
    auc = (ranks[:, membership].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return tpr, auc


def one_seed(seed: int, sigmas: np.ndarray) -> dict[str, float]:
    """The four headline ε values of one simulated audit."""
    rng = np.random.default_rng(seed)
    coins = rng.random(M) < 0.5
    scores = attack_scores(randomized_response(coins, rng), sigmas, rng)
    names = [f"attack-{j}" for j in range(len(sigmas))]
    table: dict[str, list] = {n: [] for n in names}
    for _ in range(PSEUDO_TARGETS):  # reference models: their own coins and mechanism output
        ref_coins = rng.random(M) < 0.5
        tpr, auc = rates(attack_scores(randomized_response(ref_coins, rng), sigmas, rng), ref_coins)
        for n, t, a in zip(names, tpr, auc):
            table[n].append((t, a))
    means = {n: {"tpr_at_fpr_0.001": float(np.mean([t for t, _ in v])), "auc": float(np.mean([a for _, a in v]))}
             for n, v in table.items()}
    new = names.index(best_candidate(means))
    tpr, auc = rates(scores, coins)
    old = int(np.lexsort((-np.arange(len(sigmas)), auc, tpr))[-1])  # max TPR, then AUC, then first
    eps = [one_run_epsilon(s, coins, DELTA, CONFIDENCE, coin_flips=True).epsilon for s in scores]
    return dict(zip(CHOICES, (eps[0], eps[old], eps[new], max(eps))))


def binomial_row(exceed: int, runs: int) -> dict:
    test = stats.binomtest(exceed, runs, 0.05, alternative="greater")
    upper = stats.binomtest(exceed, runs, 0.05, alternative="less").proportion_ci(0.99, method="exact").high
    return {"exceed": exceed, "runs": runs, "share": exceed / runs, "p_above_5pct": float(test.pvalue),
            "upper_99": float(upper), "pass": bool(test.pvalue >= 0.01)}


def item1(seeds: int) -> dict:
    out = {}
    for name, sigmas in SETS.items():
        values = [one_seed(seed, sigmas) for seed in range(seeds)]
        out[name] = {c: binomial_row(sum(v[c] > TRUE_EPSILON for v in values), seeds) for c in CHOICES}
    return out


# ---- item 2 -------------------------------------------------------------------------------------

def leak(n_members: int, n_non_members: int, leaked: float, rng: np.random.Generator):
    """(scores, membership): N(0, 1) for all, then a share ``leaked`` of the members above every non-member."""
    membership = np.r_[np.ones(n_members, bool), np.zeros(n_non_members, bool)]
    scores = rng.normal(size=len(membership))
    top = rng.choice(n_members, int(round(leaked * n_members)), replace=False)
    scores[top] = scores[~membership].max() + 1.0 + rng.exponential(size=len(top))
    return scores, membership


def old_band(m) -> str:
    """The verdict rule before issue 21: lower ends of the AUC and joint TPR@0.1% intervals."""
    auc_lo, tpr_lo = m.auc_ci[0], m.tpr_at_fpr_joint_ci[0.001][0]
    if auc_lo <= 0.5 and tpr_lo <= 0.001:
        return "none"
    if tpr_lo >= 0.05 or auc_lo >= 0.75:
        return "high"
    return "moderate" if tpr_lo >= 0.01 or auc_lo >= 0.60 else "low"


def bands(scores: np.ndarray, membership: np.ndarray) -> tuple[str, str]:
    """(old band, new band) of one attack."""
    m = compute_metrics(scores, membership)
    return old_band(m), findings.verdict(m, leak_test(scores, membership)).band


def scenario(seeds: int, n_members: int, n_non_members: int, leaked: float, salt: int) -> dict:
    got = [bands(*leak(n_members, n_non_members, leaked, np.random.default_rng([salt, seed])))
           for seed in range(seeds)]
    return {rule: {b: sum(g[i] == b for g in got) for b in ("none", "low", "moderate", "high")}
            for i, rule in enumerate(("old", "new"))} | {"per_seed": got}


def item2(seeds: int) -> dict:
    out = {"tail 75 of 2,500 members (3%), 2,500 non-members": scenario(seeds, 2500, 2500, 0.03, 1),
           "pure noise, 2,500 / 2,500": scenario(seeds, 2500, 2500, 0.0, 2),
           "pure noise, 449 / 449": scenario(seeds, 449, 449, 0.0, 3)}
    for leaked in (0.03, 0.10):
        by_size = {n0: scenario(seeds, 2500, n0, leaked, 10 + n0) for n0 in (2500, 5000, 10000)}
        for n0, res in by_size.items():
            out[f"{leaked:.0%} at zero FP, 2,500 / {n0:,}"] = res
        for i, rule in enumerate(("old", "new")):
            same = sum(len({by_size[n0]["per_seed"][s][i] for n0 in by_size}) == 1 for s in range(seeds))
            out[f"{leaked:.0%} at zero FP: same band at 2,500 / 5,000 / 10,000"] = (
                out.get(f"{leaked:.0%} at zero FP: same band at 2,500 / 5,000 / 10,000", {}) | {rule: same})
    for res in out.values():
        res.pop("per_seed", None)
    return out


# ---- tables -------------------------------------------------------------------------------------

def run(quick: bool = False) -> dict:
    """Both items; quick: 200 seeds for item 1 and 40 for item 2 (else 2,000 and 200)."""
    started = time.perf_counter()
    seeds1, seeds2 = (200, 40) if quick else (2000, 200)
    doc = {"settings": {"true_epsilon": TRUE_EPSILON, "m": M, "attacks": ATTACKS, "delta": DELTA,
                        "confidence": CONFIDENCE, "pseudo_targets": PSEUDO_TARGETS, "seeds_item1": seeds1,
                        "seeds_item2": seeds2, "quick": quick},
           "item1": item1(seeds1), "item2": item2(seeds2)}
    doc["seconds"] = time.perf_counter() - started
    return doc


def tables(doc: dict) -> str:
    s = doc["settings"]
    lines = [f"Item 1: randomized response ε = {s['true_epsilon']}, m = {s['m']:,}, {s['attacks']} attacks, "
             f"{s['seeds_item1']:,} seeds: share of runs whose headline ε exceeds the true ε "
             "(target: not above 5% by a one-sided binomial test at 99%)"]
    for name, rows in doc["item1"].items():
        lines.append(f"  {name} set")
        lines.append(f"    {'headline':<32}{'exceed':>8}{'share':>8}{'99% upper':>11}{'p(>5%)':>10}  pass")
        for choice, r in rows.items():
            lines.append(f"    {choice:<32}{r['exceed']:>8}{r['share']:>8.1%}{r['upper_99']:>11.1%}"
                         f"{r['p_above_5pct']:>10.2g}  {'yes' if r['pass'] else 'NO'}")
    lines.append(f"Item 2: verdict bands, {s['seeds_item2']} seeds each (old = before issue 21, new = after)")
    lines.append(f"  {'scenario':<52}{'rule':>5}{'none':>6}{'low':>6}{'mod.':>6}{'high':>6}")
    for name, res in doc["item2"].items():
        if "same band" in name:
            lines.append(f"  {name:<52} old {res['old']:>4} / new {res['new']:>4} seeds "
                         f"(target ≥ 95%: {0.95 * s['seeds_item2']:.0f})")
            continue
        for rule in ("old", "new"):
            c = res[rule]
            lines.append(f"  {name if rule == 'old' else '':<52}{rule:>5}{c['none']:>6}{c['low']:>6}"
                         f"{c['moderate']:>6}{c['high']:>6}")
    lines.append("  targets: tail leak never 'none' (0 of the seeds); pure noise 'none' in ≥ 95% of seeds")
    lines.append(f"({doc['seconds']:.0f} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    doc = run(quick)
    text = tables(doc)
    print(text)
    if not quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "coverage_headline.json").write_text(json.dumps(doc, indent=2))
        (RESULTS / "coverage_headline.log").write_text(text + "\n")
