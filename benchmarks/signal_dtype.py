"""float16 vs float32 signal store on a real audit (issue 14, part 2/3): do the streamed attacks
change when the logits on disk are float16?

One Fashion-MNIST MLP audit (784-256-10, pool of 5,000, 2,500 members, K reference models, a few
epochs) is run in memory; its signal matrix is written to a float32 and to a float16 store, and
every streamable attack runs streamed over both (and in memory, for reference).

  PYTHONPATH=src MIAUDIT_DATA=/work/shared/data python benchmarks/signal_dtype.py [--k 16 --epochs 20]
Writes benchmarks/results/signal_dtype.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from miaudit import audit
from miaudit.attacks.streamed import STREAMED, run_streamed
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.signals.store import store_inputs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--members", type=int, default=2500)
    ap.add_argument("--population", type=int, default=5000)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/signal_dtype.json")
    args = ap.parse_args()
    started = time.perf_counter()
    result = audit(dataset="fashion-mnist", target="mlp", members=args.members, reference_models=args.k,
                   population=args.population, epochs=args.epochs, attacks=list(STREAMED), seed=args.seed,
                   cache=False, progress=False)
    print(f"audit: fashion-mnist MLP, {args.members} members, K={args.k}, {args.epochs} epochs, "
          f"population {args.population}: {time.perf_counter() - started:.1f} s; target train / test accuracy "
          f"{result.target.train_accuracy:.3f} / {result.target.test_accuracy:.3f}")
    member = result.membership
    rows = []
    with tempfile.TemporaryDirectory(prefix="miaudit-dtype-") as tmp:
        stores = {dt: store_inputs(result.inputs, Path(tmp, dt), args.chunk, dt) for dt in ("float32", "float16")}
        sizes = {dt: s.nbytes() for dt, s in stores.items()}
        print(f"store bytes: float32 {sizes['float32']:,}  float16 {sizes['float16']:,}")
        logits = result.inputs.reference_logits
        rounded = logits.astype(np.float16).astype(np.float32)
        print(f"reference logits: max |float16 - float32| {np.abs(rounded - logits).max():.2e} "
              f"(|logit| up to {np.abs(logits).max():.1f})")
        print(f"{'attack':14s} {'store':8s} {'AUC':>8s} {'TPR@0.1%':>9s} {'TPR@1%':>8s} {'max|dscore|':>12s}")
        for name in STREAMED:
            memory = result.attack(name).metrics
            row = {"attack": name, "memory": _metrics(memory)}
            scores = {}
            for dt, store in stores.items():
                scores[dt] = run_streamed(name, store).scores
                row[dt] = _metrics(compute_metrics(scores[dt], member))
            row["max_abs_score_diff_f16_vs_f32"] = float(np.abs(scores["float16"] - scores["float32"]).max())
            row["max_abs_score_diff_f32_vs_memory"] = float(np.abs(scores["float32"]
                                                                  - result.attack(name).scores).max())
            for dt in ("memory", "float32", "float16"):
                m = row[dt]
                diff = "" if dt == "memory" else f"{row['max_abs_score_diff_f32_vs_memory']:12.2e}" \
                    if dt == "float32" else f"{row['max_abs_score_diff_f16_vs_f32']:12.2e}"
                print(f"{name:14s} {dt:8s} {m['auc']:8.4f} {m['tpr_at_0.001']:9.4f} {m['tpr_at_0.01']:8.4f} {diff}")
            d = {key: row["float16"][key] - row["float32"][key] for key in row["float32"]}
            row["float16_minus_float32"] = d
            print(f"{'':14s} {'f16-f32':8s} AUC {d['auc']:+.2e}  TPR@0.1% {d['tpr_at_0.001']:+.2e}  "
                  f"TPR@1% {d['tpr_at_0.01']:+.2e}")
            rows.append(row)
    Path(args.out).write_text(json.dumps({"benchmark": "signal_dtype", "settings": vars(args),
                                          "store_bytes": sizes, "rows": rows}, indent=2))


def _metrics(m) -> dict:
    return {"auc": float(m.auc), "tpr_at_0.001": float(m.tpr_at_fpr[0.001]), "tpr_at_0.01": float(m.tpr_at_fpr[0.01])}


if __name__ == "__main__":
    main()
