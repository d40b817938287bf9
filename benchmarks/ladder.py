"""The attack ladder on the fmnist-mlp protocol (design.md; ``--protocol mnist-cnn``: that protocol,
K = 0, 4, 16 by default): every ladder candidate and paper attack at K = 0, 1, 2, 4, 16, 64 reference
models, over several targets.

The 64 reference models train once (cached: a rerun reads them back) and every smaller K takes the
first K of the balanced stack (pairs are complementary, so an even prefix stays balanced). Target 0
is the audit's; targets 1.. train with seeds 1.. on their own random half of the pool against the
same reference models. Per K and attack: TPR@0.1% / TPR@1% / AUC per target, their mean and a 95%
Student-t interval over targets, and the attack's seconds on target 0 (N = 5,000 records at K = 64 in
the full run). Attacks without reference models run at the smallest K only (the same figures at
every K). Prints the tables and the issue's goals (met / missed); writes
benchmarks/results/ladder.json (``--quick``: ladder_smoke.json; mnist-cnn: ladder_mnist_cnn.json and
ladder_mnist_cnn_smoke.json).

    python benchmarks/ladder.py --targets 5          # the full run
    python benchmarks/ladder.py --quick --targets 1  # a smoke run: 3 epochs, 500 members, K <= 4
    python benchmarks/ladder.py --protocol mnist-cnn --ks 0,4,16 --targets 5
    python benchmarks/ladder.py --ks 0 --targets 5   # K = 0 only (a few minutes): ladder_k0.json

The plan (pool, membership, population) and the target do not depend on K, so a partial run reads the
full run's cached target; a --ks other than the default writes <stem>_k<ks>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
from fmnist_mlp import other_target  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from scipy import stats

from miaudit.attacks.choice import choose_attack
from miaudit.attacks.ladder import ladder_candidates
from miaudit.attacks.registry import ATTACKS, AUTO
from miaudit.attacks.streamed import STREAMED
from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.audit.run import run_attacks, train_target_and_references
from miaudit.audit.signal_stage import signal_request
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.matrix import compute_signals

HERE = Path(__file__).resolve().parent
PAPER = ("population", "threshold-loss", "qmia", "rmia", "rmia-offline", "lira-online", "lira-offline",
         "base-online", "base-offline", "bavaria-online", "bavaria-offline", "bavaria-n-online", "bavaria-n-offline")
"""The published attacks, run at every K where their needs are met (beside the rung's candidates)."""
METRICS = ("tpr_at_0.001", "tpr_at_0.01", "auc")
PROTOCOLS = {
    # name: (make_config keywords, full (epochs, members, population), --quick ones, default K, output stem)
    "fmnist-mlp": ({"dataset": "fashion-mnist", "target": "mlp"}, (30, 2500, 10000), (3, 500, 2000),
                   "0,1,2,4,16,64", "ladder"),
    "mnist-cnn": ({"dataset": "mnist", "target": "mnist-cnn", "batch_size": 64, "lr": 1e-3}, (20, 2500, 10000),
                  (2, 500, 2000), "0,4,16", "ladder_mnist_cnn"),
}
"""The design.md protocols the ladder runs on (mnist-cnn: the architecture and recipe of mnist_cnn.py)."""


def attacks_at(k: int, n_population: int, k_min: int) -> list[str]:
    """The ladder's candidates at K, then the paper attacks not among them whose needs K meets; attacks
    without reference models (their figures do not depend on K) only at the smallest K, ``k_min``."""
    names = ladder_candidates(k, k > 0, n_population)
    extra = [n for n in PAPER if n not in names
             and ATTACKS[n].unmet_need(k, k > 0, n_population, has_model=True) is None]
    return [n for n in names + extra if k == k_min or ATTACKS[n].needs_references]


def at_k(inputs: AttackInputs, k: int) -> AttackInputs:
    """The signal matrix with the first k reference models (k = 0: the target's outputs only)."""
    if k > 0:
        return inputs.select_references(slice(0, k))
    return AttackInputs.target_only(inputs.target_logits, inputs.labels, inputs.population_target_logits,
                                    inputs.population_labels, inputs.record_ids, inputs.records,
                                    inputs.target_model, population_records=inputs.population_records)


def auto_pick(row: dict, signals: AttackInputs, k: int, n_population: int) -> dict:
    """What ``--attacks auto`` reports at K: the rung's candidate chosen on pseudo-targets (or by the
    rule) without the target's membership, with that attack's figures on the target."""
    t = time.perf_counter()
    names = [n for n in ladder_candidates(k, k > 0, n_population) if n in row]
    choice = choose_attack([ATTACKS[n] for n in names], signals, seed=0)
    return {**{m: row[choice.chosen][m] for m in METRICS}, "seconds": time.perf_counter() - t,
            "params": {"chosen": choice.chosen, "chosen_by": choice.chosen_by}}


def summarise(per_target: list[dict]) -> dict:
    """{K: {attack: {metric: mean, metric_ci: [lo, hi], seconds}}} over the targets (95% Student t)."""
    out: dict = {}
    for k in per_target[0]:
        out[k] = {}
        for name in per_target[0][k]:
            found = [t[k][name] for t in per_target if name in t.get(k, {})]
            entry = {"targets": len(found), "seconds": found[0]["seconds"]}
            for m in METRICS:
                values = [f[m] for f in found]
                mean = statistics.fmean(values)
                half = (stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / np.sqrt(len(values))
                        if len(values) > 1 else float("nan"))
                entry[m], entry[m + "_ci"] = mean, [mean - half, mean + half]
            out[k][name] = entry
    return out


def best(table: dict, k: int, metric: str = "tpr_at_0.001") -> tuple[str, float]:
    """The best attack at K by ``metric`` (AUC breaks ties), the auto row left out."""
    name = max((n for n in table[k] if n != AUTO), key=lambda n: (table[k][n][metric], table[k][n]["auc"]))
    return name, table[k][name][metric]


def goals(table: dict, ks: list[int]) -> dict:
    """The issue's goals that this run can judge, each [measured, target, met]; the `auto` goal: its mean
    TPR@0.1% minus the lower end of the best attack's interval, the smallest over K (>= 0: met)."""
    out: dict = {}
    if 0 in table and "qmia" in table[0] and "population" in table[0]:
        ratio = table[0]["qmia"]["tpr_at_0.01"] / max(table[0]["population"]["tpr_at_0.01"], 1e-12)
        out["K=0: QMIA TPR@1% >= 2x Attack-P's"] = [ratio, 2.0, ratio >= 2.0]
    top = max(ks)
    if 4 in table and top > 4:
        ratio = best(table, 4)[1] / max(best(table, top)[1], 1e-12)
        out[f"K=4: best TPR@0.1% >= 90% of the best at K={top}"] = [ratio, 0.9, ratio >= 0.9]
    if top == 64:
        value = best(table, 64)[1]
        out["K=64: best TPR@0.1% >= 10% (mean of the targets)"] = [value, 0.10, value >= 0.10]
    gaps = {}
    for k in ks:
        name, _ = best({k: {n: r for n, r in table[k].items() if n != AUTO}}, k)
        gaps[k] = table[k][AUTO]["tpr_at_0.001"] - table[k][name]["tpr_at_0.001_ci"][0]  # >= 0: within
    out["--attacks auto within the best attack's 95% interval (TPR@0.1%) at every K"] = [
        min(gaps.values()), 0.0, all(g >= 0 for g in gaps.values())]
    return out


def print_table(table: dict) -> None:
    for k, rows in table.items():
        print(f"\nK = {k}: attack | TPR@0.1% [95% CI] | TPR@1% | AUC | s (target 0)")
        for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["tpr_at_0.001"]):
            lo, hi = r["tpr_at_0.001_ci"]
            ci = "" if np.isnan(lo) else f" [{100 * lo:.2f}, {100 * hi:.2f}]"
            print(f"  {name:32s} {100 * r['tpr_at_0.001']:6.2f}%{ci:18s} {100 * r['tpr_at_0.01']:6.2f}% "
                  f"{r['auc']:.4f} {r['seconds']:7.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), default="fmnist-mlp",
                    help="design.md protocol (mnist-cnn: 20 epochs, default K 0,4,16)")
    ap.add_argument("--quick", action="store_true",
                    help="3 epochs (mnist-cnn 2), 500 members, 2,000 population, K <= 4")
    ap.add_argument("--targets", type=int, default=5, help="targets (seeds 0..n-1); 5 for the real run")
    ap.add_argument("--ks", default=None,
                    help="comma-separated K (default 0,1,2,4,16,64, mnist-cnn 0,4,16; --quick those <= 4)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    setting, full, quick, default_ks, stem = PROTOCOLS[args.protocol]
    ks = [int(k) for k in (args.ks or default_ks).split(",") if not (args.quick and not args.ks and int(k) > 4)]
    epochs, members, population = quick if args.quick else full
    cfg = make_config(**setting, members=members, reference_models=max(max(ks), 1),
                      population=population, seed=0, epochs=epochs, cache=True)
    plan = make_plan(cfg)
    started = time.perf_counter()
    target, refs = train_target_and_references(plan)
    inputs = compute_signals(signal_request(plan), target, refs)
    print(f"target and {cfg.reference_models} reference models: {time.perf_counter() - started:.1f} s "
          f"(cached ones are read back)", flush=True)
    per_target = []
    for seed in range(args.targets):
        signals, member = (inputs, plan.membership) if seed == 0 else other_target(plan, cfg, inputs, seed)
        target_plan = dataclasses.replace(plan, membership=member)
        rows: dict = {}
        for k in ks:
            specs = [ATTACKS[n] for n in attacks_at(k, len(plan.population_y), min(ks))]
            rows[k] = {o.name: {"tpr_at_0.001": o.metrics.tpr_at_fpr[0.001], "tpr_at_0.01": o.metrics.tpr_at_fpr[0.01],
                                "auc": o.metrics.auc, "seconds": o.seconds, "params": o.params}
                       for o in run_attacks(target_plan, at_k(signals, k), specs=specs)}
            rows[k][AUTO] = auto_pick(rows[k], at_k(signals, k), k, len(plan.population_y))
        per_target.append(rows)
        print(f"target {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    table = summarise(per_target)
    print_table(table)
    report = {"protocol": args.protocol, "quick": args.quick, "ks": ks, "targets": args.targets,
              "members": members, "population": population, "epochs": epochs,
              "n_records": int(len(plan.pool_y)), "streams": sorted(STREAMED),
              "candidates": {k: ladder_candidates(k, k > 0, len(plan.population_y)) for k in ks},
              "table": table, "per_target": per_target, "goals": goals(table, ks),
              "wall_s": time.perf_counter() - started}
    print("\ngoals:")
    for name, (value, want, met) in report["goals"].items():
        print(f"  {name}: {value if value is None else round(value, 4)} (target {want}) -> {met}")
    if args.ks and args.ks != default_ks:  # a partial run (e.g. --ks 0) never overwrites the full one
        stem = f"{stem}_k{'-'.join(str(k) for k in ks)}"
    out = args.out or HERE / "results" / (f"{stem}_smoke.json" if args.quick else f"{stem}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
    print(f"\nwritten {out} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
