"""How fast are reference models trained? fmnist-mlp shape (784-256-10, Adam, batch 64) on random data.

Trains K models (default 16 and 64) for one epoch each on 2,500 records of a 5,000 pool (balanced
halves), for fp32 and bf16 and each number of worker threads (train_mlp_stack's ``workers``), and
prints seconds per model, useful GFLOP/s (6 x MACs x samples) and the ratio to this process's plain
fp32 matmul probe, measured right before each run (the machine is shared: only ratios within one run
mean anything). The workers settings run interleaved, ``--repeats`` rounds, so that a neighbour's
burst does not land on one setting only; the last lines give each setting's median s/model.

    .venv/bin/python benchmarks/stack_speed.py [--models 16 64] [--epochs 1] [--workers 1 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np
import torch

from miaudit.data.splits import balanced_masks
from miaudit.models.perf import Throughput, bf16_available, matmul_gflops
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import mlp_train_flops, train_mlp_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds over all settings")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.pool, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.pool)
    recipe = TrainingRecipe(epochs=args.epochs, batch_size=64, lr=1e-3)
    precisions = ["float32"] + (["bfloat16"] if bf16_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 available: {bf16_available()}")
    print(f"{'round':>5} {'K':>4} {'precision':>9} {'workers':>7} {'s/model':>8} {'GFLOP/s':>8} {'fp32 mm':>8} "
          f"{'ratio':>6}")
    train_mlp_stack(x[:256], y[:256], np.ones((1, 256), bool), 10, (256,), recipe, [0], "float32")  # warm-up
    per_model: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    for round_ in range(1, args.repeats + 1):
        for k in args.models:
            masks = balanced_masks(k, args.pool, seed=1)
            flops = mlp_train_flops(784, (256,), 10, int(masks.sum()) * args.epochs)
            for precision in precisions:
                for workers in args.workers:
                    probe = matmul_gflops(torch.float32)
                    start = time.perf_counter()
                    train_mlp_stack(x, y, masks, 10, (256,), recipe, list(range(k)), precision, workers=workers)
                    seconds = time.perf_counter() - start
                    per_model[k, precision, workers].append(seconds / k)
                    rate = Throughput(flops, seconds).gflops_per_s
                    print(f"{round_:>5} {k:>4} {precision:>9} {workers:>7} {seconds / k:>8.3f} {rate:>8.1f} "
                          f"{probe:>8.1f} {rate / probe:>6.2f}", flush=True)
    print(f"median s/model over {args.repeats} rounds:")
    for (k, precision, workers), times in per_model.items():
        print(f"{'':>5} {k:>4} {precision:>9} {workers:>7} {statistics.median(times):>8.3f}")


if __name__ == "__main__":
    main()
