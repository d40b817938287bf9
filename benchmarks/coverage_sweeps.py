"""How often a sweep calls a real difference "flat": the old rule (the extremes' 95% t intervals overlap)
against the finding's equivalence test (TOST inside ±margin, miaudit.sweeps.verdict), on simulated seeds.

Each repetition draws 3 seeds per point from normal(mean, 1) (units: per-seed SDs); the extremes differ
by 0, 1, 2 or 3 SDs, with 2 points (the extremes) or 8 evenly spaced ones (like shadow-count). The
"after" share runs the real verdict code on seed_stats.summarize of the draws.
Target: a true difference of 3 SDs is called "no effect" in at most 5% of repetitions at every margin
up to 3 SDs.

    python benchmarks/coverage_sweeps.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy import stats

from miaudit.sweeps.seed_stats import summarize
from miaudit.sweeps.spec import make_spec
from miaudit.sweeps.verdict import finding

SEEDS = 3
DIFFERENCES = (0.0, 1.0, 2.0, 3.0)
MARGINS = (1.0, 2.0, 3.0)
TARGET = 0.05
RESULTS = Path(__file__).parent / "results"


def _old_flat(draws: np.ndarray) -> bool:
    """The rule before: the highest and lowest points' 95% t intervals overlap (draws [points, seeds])."""
    means = draws.mean(axis=1)
    half = stats.t.ppf(0.975, SEEDS - 1) * draws.std(axis=1, ddof=1) / math.sqrt(SEEDS)
    top, bottom = int(means.argmax()), int(means.argmin())
    return not (means[bottom] + half[bottom] < means[top] - half[top])


def _spec(points: int, margin: float):
    return make_spec({"experiment": "sim", "claim": "flat", "metric": "accuracy", "margin": margin,
                      "points": [{"label": f"p{i}"} for i in range(points)]})


def _upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a share k / n."""
    return 1.0 if k == n else float(stats.beta.ppf(confidence, k + 1, n - k))


def run(quick: bool = False) -> dict:
    """Shares called flat before / after (and "effect" after) per (points, difference, margin)."""
    reps = 2000 if quick else 5000
    rng = np.random.default_rng(2026)
    rows = []
    for points in (2, 8):
        for diff in DIFFERENCES:
            means = np.linspace(0.0, diff, points)
            draws = rng.normal(means[None, :, None], 1.0, size=(reps, points, SEEDS))
            old = sum(_old_flat(d) for d in draws)
            summaries = [[{"setting": f"p{i}", "attack": "a", **summarize(d[i], resolution=1e-3).to_dict()}
                          for i in range(points)] for d in draws]
            for margin in MARGINS:
                spec = _spec(points, margin)
                outcomes = {"effect": 0, "no effect": 0, "inconclusive": 0}
                for pts in summaries:
                    outcomes[finding(spec, pts)["outcome"]] += 1
                rows.append({"points": points, "difference_sd": diff, "margin_sd": margin, "repetitions": reps,
                             "flat_before": old / reps, "flat_after": outcomes["no effect"] / reps,
                             "flat_after_upper95": _upper(outcomes["no effect"], reps),
                             "effect_after": outcomes["effect"] / reps,
                             "inconclusive_after": outcomes["inconclusive"] / reps})
    worst = max(r["flat_after"] for r in rows if r["difference_sd"] == 3.0)
    return {"seeds": SEEDS, "rows": rows, "target": f"3-SD difference called 'no effect' <= {TARGET:.0%}",
            "worst_flat_after_at_3sd": worst, "meets_target": worst <= TARGET}


def table(result: dict) -> str:
    lines = [f"{'points':>6} {'diff/SD':>7} {'margin/SD':>9} {'flat before':>11} {'no effect after':>15} "
             f"{'(95% upper)':>11} {'effect after':>12} {'inconclusive':>12}"]
    for r in result["rows"]:
        lines.append(f"{r['points']:>6} {r['difference_sd']:>7.0f} {r['margin_sd']:>9.0f} {r['flat_before']:>11.1%} "
                     f"{r['flat_after']:>15.1%} {r['flat_after_upper95']:>11.1%} {r['effect_after']:>12.1%} "
                     f"{r['inconclusive_after']:>12.1%}")
    lines.append(f"target: {result['target']}: worst {result['worst_flat_after_at_3sd']:.1%} -> "
                 f"{'met' if result['meets_target'] else 'NOT met'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 repetitions per cell instead of 5,000")
    args = parser.parse_args()
    start = time.perf_counter()
    result = run(quick=args.quick)
    result["seconds"] = round(time.perf_counter() - start, 1)
    text = table(result) + f"\n({result['seconds']} s)"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "coverage_sweeps.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "coverage_sweeps.log").write_text(text + "\n")


if __name__ == "__main__":
    main()
