"""The fmnist-mlp protocol's end-to-end audit on two revisions of miaudit, alternated in one run.

Each revision is checked out into a temporary git worktree and audited in its own process
(``PYTHONPATH=<worktree>/src``) with the same settings as ``make bench``'s audit (fashion-mnist, mlp,
2,500 members, 64 reference models, every black-box attack, no model cache). The rounds alternate
the order (A B, B A, ...) so a burst of other load hits both. Prints, per attack, whether the scores'
figures are identical, and the timing ratios after / before (median over rounds); writes a JSON file.

    python benchmarks/before_after.py --before 6dbe781 --after HEAD --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CHILD = r"""
import json, sys, time
import miaudit
from miaudit.attacks.registry import ATTACKS
black_box = [s.name for s in ATTACKS.values() if s.threat_model == "black-box"]
settings = json.loads(sys.argv[1])
t = time.perf_counter()
result = miaudit.audit(attacks=black_box, progress=False, **settings)
wall = time.perf_counter() - t
rows = {o.name: {"auc": o.metrics.auc, "tpr_at_0.001": o.metrics.tpr_at_fpr[0.001],
                 "tpr_at_0.01": o.metrics.tpr_at_fpr[0.01], "score_sum": float(o.scores.astype(float).sum()),
                 "seconds": o.seconds} for o in result.attacks}
print(json.dumps({"wall_s": wall, "timing": result.timing, "attacks": rows}, default=float))
"""


def checkout(rev: str, where: Path) -> Path:
    """A detached worktree of rev at where (its src/ is what the child imports)."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), rev], check=True)
    return where


def run_audit(tree: Path, settings: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    # cwd: this checkout, so that both revisions find the datasets where the repo does (../shared/data)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings)], env=env, cwd=REPO,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"audit at {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision before the change")
    ap.add_argument("--after", default="HEAD", help="git revision after the change")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="digits, 8 reference models: checks the script runs")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "before_after.json")
    args = ap.parse_args(argv)
    settings = ({"dataset": "digits", "reference_models": 8, "cache": False} if args.quick else
                {"dataset": "fashion-mnist", "target": "mlp", "members": 2500, "reference_models": 64, "seed": 0,
                 "cache": False})
    revs = {"before": args.before, "after": args.after}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="miaudit-ba-") as tmp:
        trees = {side: checkout(rev, Path(tmp) / side) for side, rev in revs.items()}
        try:
            for r in range(args.rounds):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for side in order:
                    runs[side].append(run_audit(trees[side], settings))
                    print(f"round {r + 1} {side}: {runs[side][-1]['wall_s']:.1f} s", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    before, after = runs["before"][0]["attacks"], runs["after"][0]["attacks"]
    figures = ("auc", "tpr_at_0.001", "tpr_at_0.01", "score_sum")
    same = {name: all(before[name][f] == after[name][f] for f in figures) for name in before if name in after}
    print(f"\nattacks with identical figures: {sum(same.values())} of {len(same)}"
          + ("" if all(same.values()) else f"; differ: {[n for n, s in same.items() if not s]}"))
    new = sorted(set(after) - set(before))
    if new:
        print(f"attacks only after: {new}")
    keys = ("total_s", "train_reference_s", "signals_s", "attacks_s", "choice_s")
    ratios = {}
    for key in keys:
        b = [run["timing"].get(key) for run in runs["before"]]
        a = [run["timing"].get(key) for run in runs["after"]]
        if None in a or None in b:
            continue
        ratios[key] = {"before_s": b, "after_s": a, "ratio_median": statistics.median(a) / statistics.median(b)}
        print(f"{key:>18}: before {statistics.median(b):6.1f} s  after {statistics.median(a):6.1f} s  "
              f"ratio {ratios[key]['ratio_median']:.3f}  (rounds: {', '.join(f'{x:.1f}' for x in b)} / "
              f"{', '.join(f'{x:.1f}' for x in a)})")
    report = {"revisions": revs, "settings": settings, "rounds": args.rounds, "identical": same, "ratios": ratios,
              "runs": runs}
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
