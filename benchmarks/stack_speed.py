"""How fast are reference models trained? fmnist-mlp shape (784-256-10, Adam, batch 64) on random data.

Trains K models (default 16 and 64) for one epoch each on 2,500 records of a 5,000 pool (balanced
halves), for fp32 and bf16 and each number of worker threads (train_mlp_stack's ``workers``), and
prints seconds per model (wall, and the process's CPU time: steadier on a busy machine), useful
GFLOP/s (training FLOPs, stack.mlp_train_flops) and the ratio to this process's plain
fp32 matmul probe, measured right before each run (the machine is shared: only ratios within one run
mean anything). bf16 runs with each ``--adam`` setting: "fused" (fused_adam.Bf16Adam, numba) and
"torch" (torch's fused Adam plus the two casts). All settings run interleaved, ``--repeats`` rounds
(order reversed every other round), so that a neighbour's burst does not land on one setting only;
the last lines give each setting's median s/model and, for bf16, the median over rounds of the
paired ratio torch / fused s/model. ``--denormals keep`` trains without flushing denormals to zero
(what train_mlp_stack does otherwise), for the paired ratio keep / flush.

    .venv/bin/python benchmarks/stack_speed.py [--models 16 64] [--epochs 1] [--workers 0 1 2] [--repeats 2]
        [--precisions float32 bfloat16] [--adam fused torch] [--denormals flush keep]
        (--workers 0: auto, train_mlp_stack's None)
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections import defaultdict
from unittest import mock

import numpy as np
import torch

from miaudit.data.splits import balanced_masks
from miaudit.models import stack, stack_workers
from miaudit.models.perf import Throughput, bf16_available, matmul_gflops
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import mlp_train_flops, train_mlp_stack


def _adam_kernel_ready() -> bool:
    """Compile (or load from numba's cache) the fused kernel outside the timed runs; prints the time."""
    start = time.perf_counter()
    ready = stack._fused_adam_available()
    print(f"fused Adam kernel available: {ready} ({time.perf_counter() - start:.2f} s to import numba, "
          "compile or load from cache, check)")
    return ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="0 = auto")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds over all settings")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--adam", nargs="+", default=["fused", "torch"], choices=["fused", "torch"],
                        help="bf16 Adam: fused_adam kernel or torch's optimizer")
    parser.add_argument("--denormals", nargs="+", default=["flush"], choices=["flush", "keep"],
                        help="flush denormals to zero while training (train_mlp_stack's way) or keep them")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.pool, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.pool)
    recipe = TrainingRecipe(epochs=args.epochs, batch_size=64, lr=1e-3)
    precisions = [p for p in args.precisions if p == "float32" or bf16_available()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 available: {bf16_available()}")
    adams = args.adam if "bfloat16" in precisions and _adam_kernel_ready() else ["torch"]
    settings = [(p, a, d) for p in precisions for a in (adams if p == "bfloat16" else ["torch"])
                for d in args.denormals]
    print(f"{'round':>5} {'K':>4} {'precision':>9} {'adam':>5} {'denorm':>6} {'workers':>7} {'s/model':>8} "
          f"{'cpu s/m':>8} {'GFLOP/s':>8} {'fp32 mm':>8} {'ratio':>6}")
    for precision in precisions:  # warm-up
        train_mlp_stack(x[:256], y[:256], np.ones((1, 256), bool), 10, (256,), recipe, [0], precision)
    per_model: dict[tuple[int, str, str, str, int], list[float]] = defaultdict(list)
    for round_ in range(1, args.repeats + 1):
        for k in args.models:
            masks = balanced_masks(k, args.pool, seed=1)
            flops = mlp_train_flops(784, (256,), 10, int(masks.sum()) * args.epochs)
            for workers in args.workers:
                for precision, adam, denormals in settings if round_ % 2 else settings[::-1]:  # alternate
                    probe = matmul_gflops(torch.float32)
                    keep = mock.patch.object(stack_workers, "flush_denormals", contextlib.nullcontext)
                    with mock.patch.object(stack, "_fused_adam_available", lambda a=adam: a == "fused"), \
                            keep if denormals == "keep" else contextlib.nullcontext():
                        start, cpu_start = time.perf_counter(), time.process_time()
                        train_mlp_stack(x, y, masks, 10, (256,), recipe, list(range(k)), precision,
                                        workers=workers or None)
                        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                    per_model[k, precision, adam, denormals, workers].append(seconds / k)
                    rate = Throughput(flops, seconds).gflops_per_s
                    print(f"{round_:>5} {k:>4} {precision:>9} {adam:>5} {denormals:>6} {workers or 'auto':>7} "
                          f"{seconds / k:>8.3f} {cpu / k:>8.3f} {rate:>8.1f} {probe:>8.1f} {rate / probe:>6.2f}",
                          flush=True)
    print(f"median s/model over {args.repeats} rounds (speed-up: median of paired torch / fused and "
          "keep / flush ratios):")
    for (k, precision, adam, denormals, workers), times in per_model.items():
        paired = (per_model.get((k, precision, "torch", denormals, workers)) if adam == "fused"
                  else per_model.get((k, precision, adam, "keep", workers)) if denormals == "flush" else None)
        gain = f"{statistics.median(t / f for t, f in zip(paired, times)):>6.3f}x" if paired else ""
        print(f"{'':>5} {k:>4} {precision:>9} {adam:>5} {denormals:>6} {workers or 'auto':>7} "
              f"{statistics.median(times):>8.3f} {gain}")


if __name__ == "__main__":
    main()
