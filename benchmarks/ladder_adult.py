"""The attack ladder on a census-style table (issue 24's Adult target): the project's own copy of a table
written the way UCI Adult is (tests/fixtures/census.py: string columns, '?' cells, ' <=50K' / ' >50K'),
a random-forest target, 16 reference models, the population from the rest of the file; every
score-based attack runs (``--attacks auto``) and ``auto``'s headline pick is compared with the best
paper attack, per seed and on the mean over seeds.

    python benchmarks/ladder_adult.py [--rows 4000] [--seeds 5]

Writes benchmarks/results/ladder_adult.json and prints the table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/fixtures: the census-style table generator

from tests.fixtures.census import write_census_csv  # noqa: E402

import miaudit  # noqa: E402

PAPER = ("population", "threshold-loss", "qmia", "rmia", "rmia-offline", "lira-online", "lira-offline",
         "base-online", "base-offline", "bavaria-online", "bavaria-offline")
"""The published attacks (canonical names) the pick is held against."""


def one_seed(path: Path, seed: int, k: int) -> dict:
    """One audit: per attack TPR@0.1% / TPR@1% / AUC, auto's pick and the best paper attack."""
    result = miaudit.audit(dataset=str(path), label_column="income", target="forest", reference_models=k,
                           seed=seed, progress=False, cache=False)
    rows = {a.name: {"tpr_at_0.001": a.metrics.tpr_at_fpr[0.001], "tpr_at_0.01": a.metrics.tpr_at_fpr[0.01],
                     "auc": a.metrics.auc} for a in result.attacks}
    paper = max((n for n in rows if n in PAPER), key=lambda n: (rows[n]["tpr_at_0.001"], rows[n]["auc"]))
    block = result.to_dict()["attack_choice"]
    return {"rows": rows, "pick": block["chosen"], "chosen_by": block["chosen_by"], "best_paper": paper,
            "target": result.to_dict()["target"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--reference-models", type=int, default=16)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ladder_adult.json")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_census_csv(Path(tmp) / "adult.csv", n=args.rows)
        runs = []
        for seed in range(args.seeds):
            runs.append(one_seed(path, seed, args.reference_models))
            r = runs[-1]
            pick, paper = r["rows"][r["pick"]], r["rows"][r["best_paper"]]
            print(f"seed {seed}: auto picks {r['pick']} ({r['chosen_by']}) TPR@0.1% {pick['tpr_at_0.001']:.1%} "
                  f"AUC {pick['auc']:.3f}; best paper attack {r['best_paper']} {paper['tpr_at_0.001']:.1%} "
                  f"AUC {paper['auc']:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    names = sorted(set.intersection(*(set(r["rows"]) for r in runs)))
    metrics = ("tpr_at_0.001", "tpr_at_0.01", "auc")
    mean = {n: {m: statistics.fmean(r["rows"][n][m] for r in runs) for m in metrics} for n in names}
    auto = {m: statistics.fmean(r["rows"][r["pick"]][m] for r in runs) for m in metrics}
    best_paper = max((n for n in names if n in PAPER), key=lambda n: mean[n]["tpr_at_0.001"])
    print(f"\nmean over {args.seeds} seeds: attack | TPR@0.1% | TPR@1% | AUC")
    for n, v in sorted(mean.items(), key=lambda kv: -kv[1]["tpr_at_0.001"]):
        paper = "  (paper)" if n in PAPER else ""
        print(f"  {n:32s} {v['tpr_at_0.001']:7.1%} {v['tpr_at_0.01']:7.1%} {v['auc']:.3f}{paper}")
    met = auto["tpr_at_0.001"] >= mean[best_paper]["tpr_at_0.001"]
    label = "auto (its pick per seed)"
    print(f"  {label:32s} {auto['tpr_at_0.001']:7.1%} {auto['tpr_at_0.01']:7.1%} {auto['auc']:.3f}")
    print(f"goal: auto's pick at least as strong as the best paper attack ({best_paper}, "
          f"{mean[best_paper]['tpr_at_0.001']:.1%}) on the mean TPR@0.1% -> {'met' if met else 'missed'}")
    report = {"rows": args.rows, "seeds": args.seeds, "reference_models": args.reference_models, "runs": runs,
              "mean": mean, "auto": auto, "best_paper": best_paper, "goal_met": met,
              "wall_s": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
