"""Seconds per model of K stacked CNNs (cnn_stack.py) against one plain torch model at a time.

The mnist-cnn protocol's architecture (or --target) on random 28x28 images, both precisions,
interleaved over --repeats rounds; prints seconds per model and GFLOP/s beside the fp32 matmul probe.
Run:  PYTHONPATH=src .venv/bin/python benchmarks/cnn_stack_speed.py [--models 16] [--records 512]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from miaudit.models.cnn_spec import build_module, plan_layers, preset_layers
from miaudit.models.cnn_stack import cnn_train_flops, train_cnn_stack
from miaudit.models.denormals import flush_denormals
from miaudit.models.perf import matmul_gflops
from miaudit.models.recipe import TrainingRecipe


def one_at_a_time(plan, x, y, masks, recipe, seeds) -> None:
    """Each model alone, as a peer trains shadows: nn.Sequential, torch Adam, shuffled minibatches."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    with flush_denormals():
        for mask, seed in zip(masks, seeds, strict=True):
            torch.manual_seed(seed)
            module = build_module(plan)
            opt = torch.optim.Adam(module.parameters(), lr=recipe.lr)
            xs, ys = xt[torch.from_numpy(mask)], yt[torch.from_numpy(mask)]
            for _ in range(recipe.epochs):
                order = torch.randperm(len(xs))
                for s in range(0, len(xs), recipe.batch_size):
                    rows = order[s:s + recipe.batch_size]
                    loss = F.cross_entropy(module(xs[rows]), ys[rows])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--records", type=int, default=512, help="records per model")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--target", default="mnist-cnn")
    parser.add_argument("--modes", default="float32,bfloat16,loop")
    args = parser.parse_args()
    shape = (1, 28, 28)
    plan = plan_layers(preset_layers(args.target, shape, 10), shape, 10)
    rng = np.random.default_rng(0)
    n = 2 * args.records
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, 10, n)
    masks = np.zeros((args.models, n), bool)
    for k in range(args.models):
        masks[k, rng.permutation(n)[: args.records]] = True
    recipe = TrainingRecipe(epochs=args.epochs, batch_size=64)
    seeds = list(range(args.models))
    flops = cnn_train_flops(plan, args.records * args.epochs)
    print(f"{args.target}, {args.models} models x {args.records} records x {args.epochs} epochs, "
          f"{flops / 1e9:.2f} GFLOP per model, torch threads {torch.get_num_threads()}")
    for r in range(args.repeats):
        print(f"round {r}: fp32 matmul probe {matmul_gflops():.0f} GFLOP/s, bf16 {matmul_gflops(torch.bfloat16):.0f}")
        for mode in args.modes.split(","):
            started = time.perf_counter()
            if mode == "loop":
                one_at_a_time(plan, x, y, masks, recipe, seeds)
            else:
                train_cnn_stack(plan, x, y, masks, recipe, seeds, precision=mode)
            per_model = (time.perf_counter() - started) / args.models
            print(f"  {mode:9s} {per_model:7.3f} s/model  {flops / per_model / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
