"""Figures for docs/scale-out.md: an MLP 784-256-10 state's pickled size; ray.put of a Fashion-MNIST-sized
x and 8 tasks reading it (time, zero-copy, per-task mask bytes).

    PYTHONPATH=src python benchmarks/ray_checks.py
"""
from __future__ import annotations

import json
import os
import pickle
import time

import numpy as np
import ray

from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import train_mlp_stack


@ray.remote
def touch(shared: dict, masks: np.ndarray) -> tuple[int, int, bool, int]:
    return os.getpid(), shared["x"].nbytes, shared["x"].flags.writeable, masks.nbytes


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 784)).astype(np.float32)
    y = rng.integers(0, 10, 2000)
    stack = train_mlp_stack(x, y, np.ones((1, 2000), bool), 10, (256,), TrainingRecipe(epochs=1), [0], "float32")
    print(json.dumps({"mlp_784_256_10_state_pickle_bytes": len(pickle.dumps(stack.state(0)))}))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    big = np.zeros((70000, 784), np.float32)
    started = time.perf_counter()
    ref = ray.put({"x": big})
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    out = ray.get([touch.remote(ref, np.zeros((16, 70000), bool)) for _ in range(8)])
    print(json.dumps({"put_bytes": big.nbytes, "put_s": round(put_s, 3),
                      "8_tasks_s": round(time.perf_counter() - started, 2), "worker_pids": len({o[0] for o in out}),
                      "x_writeable_in_task": out[0][2], "mask_arg_bytes": out[0][3]}))


if __name__ == "__main__":
    main()
