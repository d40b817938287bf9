"""Record order must not reach the scores: every attack's AUC with the audited records members first
(the layout the plan used to store), shuffled and reversed.

    python benchmarks/order_invariance.py [--target tree] [--reference-models 4] [--dataset digits]
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

import miaudit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--target", default="tree")
    parser.add_argument("--reference-models", type=int, default=4)
    parser.add_argument("--attacks", default="all")
    args = parser.parse_args()
    result = miaudit.audit(dataset=args.dataset, target=args.target, reference_models=args.reference_models,
                           attacks=args.attacks.split(","), cache=False, progress=False)
    members_first = np.argsort(~result.membership, kind="stable")
    orders = {"members first": members_first,
              "shuffled": np.random.default_rng(1).permutation(len(members_first)),
              "reversed": members_first[::-1]}
    print(f"{args.dataset} / {args.target}, K={args.reference_models}: AUC by record order")
    print(f"{'attack':<32}" + "".join(f"{name:>15}" for name in orders) + f"{'max diff':>11}")
    from miaudit.attacks.registry import ATTACKS

    for outcome in result.attacks:
        spec = ATTACKS[outcome.name]
        aucs = [roc_auc_score(result.membership[order],
                              spec.run(result.inputs.permuted(order), seed=result.config["seed"]).scores)
                for order in orders.values()]
        print(f"{outcome.name:<32}" + "".join(f"{a:15.6f}" for a in aucs) + f"{max(aucs) - min(aucs):11.2e}")


if __name__ == "__main__":
    main()
