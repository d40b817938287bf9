"""Scale on one machine: K reference models x N Fashion-MNIST records, at 2 sizes of each (issue 14).

    make bench-scale   (= python benchmarks/scale_fmnist.py | tee benchmarks/results/scale_fmnist.log)

Every size runs as its own process (an audit of members + non-members + population = N records, pool mode,
MLP 784-256-10, LiRA and RMIA, the signal matrix streamed through an on-disk store when --signal-chunk is
given), timed per stage, with its peak resident memory, the load average and the matmul probe of the run.
Writes benchmarks/results/scale_fmnist.json.
Cost is linear in K when doubling K doubles each stage's seconds, and likewise in N.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = ((128, 70_000), (256, 35_000), (256, 70_000))  # (reference models, records with signals)
STAGES = ("train_reference_s", "signals_s", "attacks_s", "total_s")


def one_run(k: int, n: int, epochs: int, signal_chunk: int, signal_dtype: str) -> dict:
    """The audit of one size in this process: its timing and peak memory."""
    import miaudit

    population = n // 7  # 70,000 = 30,000 members + 30,000 non-members + 10,000 population
    members = (n - population) // 2
    with tempfile.TemporaryDirectory() as out:
        extra = ({"signal_chunk": signal_chunk, "signal_dtype": signal_dtype, "signal_store": f"{out}/signals.zarr"}
                 if signal_chunk else {})
        started = time.perf_counter()
        result = miaudit.audit(dataset="fashion-mnist", target="mlp", members=members, non_members=members,
                               population=population, reference_models=k, epochs=epochs, seed=0,
                               attacks=["lira-online", "lira-offline", "rmia"], cache=False, progress=False,
                               **extra)
        wall = time.perf_counter() - started
    return {"reference_models": k, "records": 2 * members + population, "audited": 2 * members,
            "population": population, "epochs": epochs, "wall_s": wall,
            **{s: result.timing.get(s) for s in STAGES}, "train_gflops_per_s": result.timing.get("train_gflops_per_s"),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "matmul_fp32_gflops_per_s": result.timing.get("matmul_fp32_gflops_per_s"),
            "load_average_1min_after": os.getloadavg()[0],
            "auc": {a.name: a.metrics.auc for a in result.attacks},
            "tpr_at_0.001": {a.name: a.metrics.tpr_at_fpr[0.001] for a in result.attacks}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--signal-chunk", type=int, default=16_384, help="records per signal chunk (0: in memory)")
    ap.add_argument("--signal-dtype", default="float16")
    ap.add_argument("--one", help="K,N: run one size in this process (used by the parent run)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scale_fmnist.json")
    args = ap.parse_args()
    if args.one:
        k, n = (int(v) for v in args.one.split(","))
        print(json.dumps(one_run(k, n, args.epochs, args.signal_chunk, args.signal_dtype)))
        return 0
    runs = []
    for k, n in SIZES:
        cmd = [sys.executable, __file__, "--one", f"{k},{n}", "--epochs", str(args.epochs),
               "--signal-chunk", str(args.signal_chunk), "--signal-dtype", args.signal_dtype]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = runs[-1]
        print(f"K={k:4d} N={r['records']:6d}: " + ", ".join(f"{s} {r[s]:.1f}" for s in STAGES)
              + f", peak RSS {r['peak_rss_mb']:.0f} MB, {r['train_gflops_per_s']:.0f} GFLOP/s training,"
              + f" load {r['load_average_1min_after']:.1f}, AUC "
              + ", ".join(f"{a} {v:.3f}" for a, v in r["auc"].items()),
              flush=True)
    by = {(r["reference_models"], r["records"]): r for r in runs}
    ratios = {f"{s} x{label}": by[big][s] / by[small][s]
              for label, small, big in (("2 K", (128, 70_000), (256, 70_000)), ("2 N", (256, 35_000), (256, 70_000)))
              for s in STAGES}
    for name, v in ratios.items():
        print(f"  {name}: {v:.2f} (linear: 2.00)")
    args.out.write_text(json.dumps({"runs": runs, "ratios": ratios, "signal_chunk": args.signal_chunk,
                                    "signal_dtype": args.signal_dtype}, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
