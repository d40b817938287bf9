"""Seconds of the headline choice in the ``make bench`` audit (benchmarks/fmnist_mlp.py step 1: fmnist-mlp,
K = 64, every black-box attack named, so every scorable one is a candidate), model cache on so that a run
takes about a minute; prints the audit's timing and the chosen attack.

    python benchmarks/ladder_choice_time.py --runs 2

To time an older attacks/choice.py, run it with PYTHONPATH pointing to a copy of src/ holding that file
(benchmarks/results/ladder_choice_time.log says which).
"""
from __future__ import annotations

import argparse
import tempfile
import time

from fmnist_mlp import BLACK_BOX  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

import miaudit
from miaudit.audit.config import make_config
from miaudit.audit.run import audit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)
    cfg = make_config(dataset="fashion-mnist", target="mlp", members=2500, reference_models=64, attacks=BLACK_BOX,
                      seed=0, epochs=30, cache=True)
    for _ in range(args.runs):
        started = time.perf_counter()
        result = audit(cfg)
        with tempfile.TemporaryDirectory() as out_dir:
            result.save(out_dir)
        wall = time.perf_counter() - started
        timing = {k: round(v, 2) for k, v in result.timing.items() if k.endswith("_s")}
        print(f"{miaudit.__file__}: wall {wall:.1f} s, choice {timing['choice_s']:.2f} s "
              f"({timing['choice_s'] / wall:.0%} of the audit), chosen {result.to_dict()['verdict']['attack']}; "
              f"{timing}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
