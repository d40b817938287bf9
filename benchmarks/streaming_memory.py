"""Peak memory of the streamed attacks vs the in-memory ones at two sizes of N (issue 14, part 3).

Synthetic signals (K reference models, N audited records, C classes, Z population records; no
training) are written straight to a Zarr signal store, record block by record block. Then each
(attack, mode, N) runs in a fresh subprocess, which reports its peak resident memory above its own
baseline (ru_maxrss after imports):
  memory:   the whole store read into AttackInputs, the registered in-memory attack;
  streamed: the attack streamed over the store's record chunks (miaudit.attacks.streamed).

  PYTHONPATH=src python benchmarks/streaming_memory.py [--sizes 50000 200000] [--k 64]
Writes benchmarks/results/streaming_memory.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ATTACKS = ("lira-online", "lira-offline", "rmia")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def write_synthetic(path: Path, k: int, n: int, z: int, c: int, chunk: int, seed: int = 0) -> float:
    """A store of synthetic signals whose IN models are more confident on the true class; seconds."""
    from miaudit.data.splits import balanced_masks
    from miaudit.signals.store import SignalStore

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    ref_in = balanced_masks(k, n, seed + 1)
    member = rng.random(n) < 0.5
    store = SignalStore.create(path, k, n, z, c, chunk)
    store.write_meta(labels, np.arange(n), ref_in)

    def logits(is_in: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = rng.normal(0, 1, (*is_in.shape, c)).astype(np.float32)
        index = np.broadcast_to(y, is_in.shape)[..., None]
        boost = (2.0 + rng.normal(0, 1.5, y.shape) + 1.5 * is_in).astype(np.float32)
        np.put_along_axis(out, index, np.take_along_axis(out, index, -1) + boost[..., None], -1)
        return out

    pop_y = rng.integers(0, c, z)
    store.write_population(logits(np.zeros(z, bool), pop_y), logits(np.zeros((k, z), bool), pop_y), pop_y)
    for start, stop in store.blocks():
        y = labels[start:stop]
        store.write_records(start, logits(member[start:stop], y), logits(ref_in[:, start:stop], y))
    np.save(path / "membership.npy", member)
    return time.perf_counter() - started


def child(path: str, attack: str, mode: str) -> None:
    """One measured run: prints a JSON line {peak_mb, seconds, auc}."""
    from miaudit.attacks.registry import ATTACKS as REGISTERED
    from miaudit.attacks.streamed import run_streamed
    from miaudit.metrics.attack_metrics import compute_metrics
    from miaudit.signals.store import SignalStore, _zarr

    _zarr()  # imported before the baseline, like the attacks
    base = maxrss_mb()
    started = time.perf_counter()
    store = SignalStore.open(path)
    if mode == "streamed":
        scores = run_streamed(attack, store).scores
    else:
        inputs = store.to_inputs()
        scores = REGISTERED[attack].run(inputs).scores
    seconds = time.perf_counter() - started
    auc = compute_metrics(scores, np.load(Path(path) / "membership.npy")).auc
    print(json.dumps({"peak_mb": maxrss_mb() - base, "baseline_mb": base, "seconds": seconds, "auc": auc}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--population", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    ap.add_argument("--out", default="benchmarks/results/streaming_memory.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="miaudit-bench-") as tmp:
        for n in args.sizes:
            path = Path(tmp, f"n{n}")
            seconds = write_synthetic(path, args.k, n, args.population, args.classes, args.chunk)
            from miaudit.signals.store import SignalStore

            size = SignalStore.open(path).nbytes()
            print(f"N={n}: store {size / 1e6:.1f} MB written in {seconds:.1f} s "
                  f"(K={args.k}, C={args.classes}, Z={args.population}, chunk {args.chunk})", flush=True)
            for attack in args.attacks:
                for mode in ("memory", "streamed"):
                    done = subprocess.run([sys.executable, __file__, "--child", str(path), attack, mode],
                                          capture_output=True, text=True, check=True)
                    got = json.loads(done.stdout.strip().splitlines()[-1])
                    rows.append({"n": n, "k": args.k, "attack": attack, "mode": mode, "store_bytes": size, **got})
                    print(f"  {attack:13s} {mode:8s} peak above baseline {got['peak_mb']:8.1f} MB  "
                          f"{got['seconds']:6.1f} s  AUC {got['auc']:.4f}", flush=True)
    print("\nattack         mode      " + "  ".join(f"N={n:>7d}" for n in args.sizes) + "   (MB above baseline)")
    for attack in args.attacks:
        for mode in ("memory", "streamed"):
            peaks = [r["peak_mb"] for r in rows if r["attack"] == attack and r["mode"] == mode]
            print(f"{attack:14s} {mode:8s} " + "  ".join(f"{p:9.1f}" for p in peaks))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"benchmark": "streaming_memory", "chunk": args.chunk,
                                          "population": args.population, "classes": args.classes,
                                          "rows": rows}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
