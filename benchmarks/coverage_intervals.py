"""Coverage and width of the intervals an audit prints, on binormal scores with known truth (issue 21,
items 3-5): TPR at 0.1% / 1% FPR, per-class AUC, and the chance levels of accuracy and advantage.

    python benchmarks/coverage_intervals.py [--quick]

Writes benchmarks/results/coverage_intervals.json and .log (not with --quick). Seeded; one core.
Scores: non-members N(0, 1), members N(mu, 1) with mu = sqrt(2) * Phi^-1(AUC); the true TPR at FPR
level is Phi(mu - Phi^-1(1 - level)).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from miaudit.metrics.intervals import (
    advantage_null_quantile,
    allowed_false_positives,
    auc_score_interval,
    clopper_pearson_interval,
    delong_auc_se,
    normal_interval,
    tpr_at_fpr_intervals,
    tpr_at_fpr_mixture_intervals,
    tpr_ci_below_resolution,
)

AUCS = (0.5, 0.76, 0.92, 0.98)
LEVELS = (0.001, 0.01)
SIZES = (2500, 10000)
CLASS_SIZES = (10, 25, 50)
CLASS_AUCS = (0.76, 0.92, 0.98)
TARGET_COVERAGE = 0.93
RESULTS = Path(__file__).parent / "results"


def _shift(auc: float) -> float:
    return float(np.sqrt(2.0) * stats.norm.ppf(auc))


def tpr_cells(trials: int, seed: int = 0) -> list[dict]:
    """Per (size, AUC, level): coverage and median width of the empirical-threshold Clopper-Pearson
    interval (before), the Bonferroni joint interval and the threshold-mixture interval (after)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in SIZES:
        for auc in AUCS:
            mu = _shift(auc)
            truth = {lv: float(stats.norm.sf(stats.norm.isf(lv) - mu)) for lv in LEVELS}
            got: dict = {(name, lv): [] for name in ("before", "joint", "after") for lv in LEVELS}
            seconds = 0.0
            for _ in range(trials):
                neg, pos = rng.normal(size=n), rng.normal(size=n) + mu
                neg_desc = np.sort(neg)[::-1]
                t0 = time.perf_counter()
                after = tpr_at_fpr_mixture_intervals(pos, neg, LEVELS)
                seconds += time.perf_counter() - t0
                joint = tpr_at_fpr_intervals(pos, neg, LEVELS)
                for i, lv in enumerate(LEVELS):
                    found = int((pos > neg_desc[allowed_false_positives(lv, n)]).sum())
                    lo, hi = clopper_pearson_interval(found, n)
                    got["before", lv].append((float(lo), float(hi)))
                    got["joint", lv].append(joint[i])
                    point = found / n
                    got["after", lv].append((min(after[i][0], point), max(after[i][1], point)))
            for lv in LEVELS:
                row = {"n_per_side": n, "auc": auc, "level": lv, "true_tpr": truth[lv], "trials": trials,
                       "after_below_resolution": tpr_ci_below_resolution(lv, n)}
                for name in ("before", "joint", "after"):
                    iv = np.array(got[name, lv])
                    row[f"{name}_coverage"] = float(np.mean((iv[:, 0] <= truth[lv]) & (truth[lv] <= iv[:, 1])))
                    row[f"{name}_median_width"] = float(np.median(iv[:, 1] - iv[:, 0]))
                row["width_vs_joint"] = row["after_median_width"] / row["joint_median_width"]
                row["after_seconds_per_attack"] = seconds / trials  # both levels
                rows.append(row)
    return rows


def class_cells(trials: int, seed: int = 1) -> list[dict]:
    """Per (records per side, AUC): coverage and smallest width of the clipped DeLong-Wald interval
    (before) and Newcombe's score interval (after) on a class's AUC."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in CLASS_SIZES:
        member = np.r_[np.ones(size, bool), np.zeros(size, bool)]
        for auc in CLASS_AUCS:
            mu = _shift(auc)
            before, after = [], []
            for _ in range(trials):
                s = rng.normal(size=2 * size) + mu * member
                a = float(roc_auc_score(member, s))
                before.append(normal_interval(a, delong_auc_se(s, member)))
                after.append(auc_score_interval(a, size, size))
            row = {"n_per_side": size, "auc": auc, "trials": trials}
            for name, iv in (("before", np.array(before)), ("after", np.array(after))):
                row[f"{name}_coverage"] = float(np.mean((iv[:, 0] <= auc) & (auc <= iv[:, 1])))
                row[f"{name}_min_width"] = float(np.min(iv[:, 1] - iv[:, 0]))
                row[f"{name}_median_width"] = float(np.median(iv[:, 1] - iv[:, 0]))
            rows.append(row)
    return rows


def chance_cells(trials: int, seed: int = 2) -> list[dict]:
    """Scores without membership information: how often the advantage exceeds advantage_null_95 (the
    target is 5%), and accuracy against its baseline at the top-n_members decision."""
    rng = np.random.default_rng(seed)
    rows = []
    for n_in, n_out in ((449, 449), (500, 5000), (25, 25)):
        member = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
        null95 = advantage_null_quantile(n_in, n_out)
        adv, acc, bal = [], [], []
        for _ in range(trials):
            s = rng.normal(size=member.size)
            order = np.argsort(-s)
            ranked = member[order]
            tp, fp = np.cumsum(ranked) / n_in, np.cumsum(~ranked) / n_out
            adv.append(max(0.0, float(np.max(tp - fp))))
            called = np.zeros(member.size, bool)
            called[order[:n_in]] = True
            acc.append(float(np.mean(called == member)))
            bal.append(0.5 * (float(np.mean(called[member])) + float(np.mean(~called[~member]))))
        adv = np.array(adv)
        rows.append({"n_members": n_in, "n_non_members": n_out, "trials": trials, "advantage_null_95": null95,
                     "advantage_mean": float(adv.mean()), "advantage_q95_simulated": float(np.quantile(adv, 0.95)),
                     "share_above_null_95": float(np.mean(adv > null95)),
                     "accuracy_mean": float(np.mean(acc)), "accuracy_baseline": max(n_in, n_out) / (n_in + n_out),
                     "balanced_accuracy_mean": float(np.mean(bal))})
    return rows


def run(quick: bool) -> dict:
    """All three simulations; quick: 100 / 300 / 300 trials instead of 1,000 / 2,000 / 2,000."""
    t0 = time.perf_counter()
    tpr_trials, class_trials, chance_trials = (100, 300, 300) if quick else (1000, 2000, 2000)
    out = {"tpr_at_fpr": tpr_cells(tpr_trials), "per_class_auc": class_cells(class_trials),
           "chance": chance_cells(chance_trials), "target_coverage": TARGET_COVERAGE, "quick": quick}
    out["seconds"] = time.perf_counter() - t0
    return out


def tables(res: dict) -> str:
    lines = ["TPR at FPR: coverage of the true TPR@FPR and median width, 95% intervals "
             f"({res['tpr_at_fpr'][0]['trials']} trials per cell)",
             f"{'n/side':>7}{'AUC':>6}{'FPR':>7}{'true':>8} | {'before CP':>17} | {'joint':>17} | {'after':>17} |"
             f"{'after/joint':>12}{'res?':>6}",
             f"{'':28} | {'cover':>8}{'width':>9} | {'cover':>8}{'width':>9} | {'cover':>8}{'width':>9} |"]
    for r in res["tpr_at_fpr"]:
        lines.append(f"{r['n_per_side']:>7}{r['auc']:>6.2f}{r['level']:>7.1%}{r['true_tpr']:>8.4f} | "
                     f"{r['before_coverage']:>8.3f}{r['before_median_width']:>9.4f} | "
                     f"{r['joint_coverage']:>8.3f}{r['joint_median_width']:>9.4f} | "
                     f"{r['after_coverage']:>8.3f}{r['after_median_width']:>9.4f} |"
                     f"{r['width_vs_joint']:>12.2f}{'below' if r['after_below_resolution'] else 'ok':>6}")
    worst = min(r["after_coverage"] for r in res["tpr_at_fpr"])
    slow = max(r["after_seconds_per_attack"] for r in res["tpr_at_fpr"])
    lines += [f"after: lowest coverage {worst:.3f} (target >= {res['target_coverage']}); "
              f"slowest {slow * 1000:.0f} ms per attack (both levels, n/side up to {max(SIZES)})",
              "res? 'below': fewer non-members than the level needs to bound the TPR from below "
              "(lower end 0 whatever the scores; printed as 'below resolution')", "",
              f"Per-class AUC: coverage and smallest width ({res['per_class_auc'][0]['trials']} trials per cell)",
              f"{'n/side':>7}{'AUC':>6} | {'before Wald':>25} | {'after Newcombe':>25}",
              f"{'':13} | {'cover':>8}{'min w':>8}{'med w':>9} | {'cover':>8}{'min w':>8}{'med w':>9}"]
    for r in res["per_class_auc"]:
        lines.append(f"{r['n_per_side']:>7}{r['auc']:>6.2f} | {r['before_coverage']:>8.3f}{r['before_min_width']:>8.3f}"
                     f"{r['before_median_width']:>9.3f} | {r['after_coverage']:>8.3f}{r['after_min_width']:>8.3f}"
                     f"{r['after_median_width']:>9.3f}")
    lines += ["", f"Chance levels, scores without information ({res['chance'][0]['trials']} trials per row)",
              f"{'members':>8}{'non-m.':>8}{'adv null95':>11}{'sim q95':>9}{'>null95':>9}{'acc':>8}{'baseline':>9}"
              f"{'bal acc':>9}"]
    for r in res["chance"]:
        lines.append(f"{r['n_members']:>8}{r['n_non_members']:>8}{r['advantage_null_95']:>11.4f}"
                     f"{r['advantage_q95_simulated']:>9.4f}{r['share_above_null_95']:>9.3f}{r['accuracy_mean']:>8.3f}"
                     f"{r['accuracy_baseline']:>9.3f}{r['balanced_accuracy_mean']:>9.3f}")
    lines.append(f"({res['seconds']:.0f} s)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    res = run(args.quick)
    text = tables(res)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "coverage_intervals.json").write_text(json.dumps(res, indent=1))
        (RESULTS / "coverage_intervals.log").write_text(f"$ python {' '.join(sys.argv)}\n{text}\n")


if __name__ == "__main__":
    main()
