"""Wall time of one audit on --backend local vs ray (a local Ray instance) on this machine, same seed.

    PYTHONPATH=src python benchmarks/ray_backend.py [--dataset fashion-mnist] [--k 16] [--chunk-size 4]

Prints one JSON line per run (backend, chunk size, wall seconds, reference-training seconds, AUCs) and
the largest score difference between the backends. Ray's start-up is timed apart from the audit.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import miaudit
from miaudit.audit.run import usable_cores


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--members", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--chunk-size", type=int, default=4)
    args = p.parse_args()
    kw = dict(dataset=args.dataset, target="mlp", members=args.members, population=2000, epochs=args.epochs,
              seed=0, reference_models=args.k, attacks=["lira-online", "rmia"], progress=False, cache=False,
              precision="float32", chunk_size=args.chunk_size)
    runs = {}
    for backend in ("local", "ray"):
        if backend == "ray":
            import ray

            started = time.perf_counter()
            ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False)
            print(json.dumps({"ray_init_s": round(time.perf_counter() - started, 2)}))
        started = time.perf_counter()
        result = miaudit.audit(backend=backend, **kw)
        wall = time.perf_counter() - started
        runs[backend] = result
        print(json.dumps({"backend": backend, "dataset": args.dataset, "k": args.k, "chunk_size": args.chunk_size,
                          "cores": usable_cores(), "wall_s": round(wall, 2),
                          "train_reference_s": round(result.timing["train_reference_s"], 2),
                          "models_trained": result.timing["reference_models_trained"],
                          "auc": {a.name: round(a.metrics.auc, 5) for a in result.attacks}}))
    diff = max(float(np.max(np.abs(a.scores - b.scores))) for a, b in zip(runs["local"].attacks, runs["ray"].attacks))
    print(json.dumps({"max_abs_score_difference": diff}))


if __name__ == "__main__":
    main()
