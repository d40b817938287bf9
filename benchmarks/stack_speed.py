"""How fast are reference models trained? fmnist-mlp shape (784-256-10, Adam, batch 64) on random data.

Trains K models (default 16 and 64) for one epoch each on 2,500 records of a 5,000 pool (balanced
halves), for fp32 and bf16, and prints seconds per model, useful GFLOP/s (6 x MACs x samples) and
the ratio to this process's plain fp32 matmul probe, measured right before each run (the machine is
shared: only ratios within one run mean anything).

    .venv/bin/python benchmarks/stack_speed.py [--models 16 64] [--epochs 1]
"""
from __future__ import annotations

import argparse
import time

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
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.pool, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.pool)
    recipe = TrainingRecipe(epochs=args.epochs, batch_size=64, lr=1e-3)
    precisions = ["float32"] + (["bfloat16"] if bf16_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 available: {bf16_available()}")
    print(f"{'K':>4} {'precision':>9} {'s/model':>8} {'GFLOP/s':>8} {'fp32 mm':>8} {'ratio':>6}")
    train_mlp_stack(x[:256], y[:256], np.ones((1, 256), bool), 10, (256,), recipe, [0], "float32")  # warm-up
    for k in args.models:
        masks = balanced_masks(k, args.pool, seed=1)
        for precision in precisions:
            probe = matmul_gflops(torch.float32)
            start = time.perf_counter()
            train_mlp_stack(x, y, masks, 10, (256,), recipe, list(range(k)), precision)
            seconds = time.perf_counter() - start
            flops = mlp_train_flops(784, (256,), 10, int(masks.sum()) * args.epochs)
            rate = Throughput(flops, seconds).gflops_per_s
            print(f"{k:>4} {precision:>9} {seconds / k:>8.3f} {rate:>8.1f} {probe:>8.1f} {rate / probe:>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
