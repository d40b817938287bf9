"""Label-only and white-box attacks on the ``fmnist-mlp`` protocol's target, and miaudit's
``label-only-boundary`` against IBM ART's ``LabelOnlyDecisionBoundary`` at the same query budget.

1. The protocol's target (Fashion-MNIST pool of 5,000, MLP 784-256-10 on 2,500 members, 30 epochs)
   and K reference models in pool mode (16 by default, not the protocol's 64: the calibrated
   label-only attacks search every reference model's boundary too).
2. On all 5,000 records: the confidence attacks (threshold-confidence, threshold-loss, lira-online,
   lira-offline), label-only-gap / -augmentation / -noise with their -lira variants, and
   gradient-norm / -lira (and gradient-norm of each layer alone): AUC, TPR at 0.1% and 1% FPR,
   label queries, seconds.
3. On a seeded random subset of ``--boundary-records`` records: the same attacks plus
   label-only-boundary and label-only-boundary-lira (the boundary searches are the costly part).
4. Peer: ART 1.20's LabelOnlyDecisionBoundary (HopSkipJump, L2, untargeted) on the first
   ``--art-records`` records of that subset with ``--art-max-iter`` / ``--art-max-eval`` /
   ``--art-init-eval`` / ``--art-init-size``; its label queries are counted at the classifier, and
   miaudit's label-only-boundary then runs on the same records with that many queries per record
   (rounded up) as its budget. ART's scores are its ``probabilities=True`` output (a sigmoid of the
   distance, so the same ranking). Both in the same box (clip values = the records' min / max) on
   the same standardized inputs; seconds per 100 records from each side's own wall time.

Run:  .venv/bin/python benchmarks/label_only.py [--quick]   (writes results/label_only.json)
Needs the bench extra: ``pip install "adversarial-robustness-toolbox==1.20.*"``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from miaudit.attacks.registry import ATTACKS
from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.audit.run import run_attacks, train_target_and_references
from miaudit.audit.signal_stage import signal_request
from miaudit.signals.matrix import compute_signals

HERE = Path(__file__).resolve().parent
CONFIDENCE = ["threshold-confidence", "threshold-loss", "lira-online", "lira-offline"]
LABEL_ONLY = ["label-only-gap", "label-only-augmentation", "label-only-augmentation-lira", "label-only-noise",
              "label-only-noise-lira"]
WHITE_BOX = ["gradient-norm", "gradient-norm-lira"]
BOUNDARY = ["label-only-boundary", "label-only-boundary-lira"]
LEVELS = (0.001, 0.01)


def tpr_at_fpr(member: np.ndarray, scores: np.ndarray, level: float) -> float:
    """Highest TPR on the ROC curve with FPR <= level."""
    fpr, tpr, _ = roc_curve(member, scores)
    return float(tpr[fpr <= level].max())


def row(name: str, member: np.ndarray, scores: np.ndarray, seconds: float, queries: int | None) -> dict:
    out = {"attack": name, "auc": float(roc_auc_score(member, scores)), "seconds": seconds, "queries": queries,
           "queries_per_record": None if queries is None else queries / len(scores)}
    out.update({f"tpr_at_{level}": tpr_at_fpr(member, scores, level) for level in LEVELS})
    return out


def table(rows: list[dict]) -> str:
    lines = [f"{'attack':34}{'AUC':>7}{'TPR@0.1%':>10}{'TPR@1%':>9}{'queries/rec':>13}{'seconds':>9}"]
    for r in rows:
        q = "-" if r["queries_per_record"] is None else f"{r['queries_per_record']:.1f}"
        lines.append(f"{r['attack']:34}{r['auc']:7.3f}{100 * r['tpr_at_0.001']:9.2f}%{100 * r['tpr_at_0.01']:8.2f}%"
                     f"{q:>13}{r['seconds']:9.1f}")
    return "\n".join(lines)


def run(plan, inputs, member, names: list[str], budget: int | None = None) -> list[dict]:
    specs = []
    for name in names:
        spec = ATTACKS[name]
        if budget is not None and name in BOUNDARY:
            spec = spec.with_params({"budget": budget})
        specs.append(spec)
    outcomes = run_attacks(plan, inputs, specs=specs)
    return [row(o.name, member, o.scores, o.seconds, o.queries) for o in outcomes]


class _Float32(nn.Module):
    """ART's HopSkipJump hands the model float64 arrays; the target is float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class _SubPlan:
    """What run_attacks reads from a plan, for a subset of the audited records."""

    def __init__(self, plan, index: np.ndarray) -> None:
        self.config, self.membership, self.pool_y = plan.config, plan.membership[index], plan.pool_y[index]
        self.notes: list[str] = []


def art_peer(target, x: np.ndarray, y: np.ndarray, member: np.ndarray, args) -> dict:
    """ART's LabelOnlyDecisionBoundary on records x [n, 784]: its row, queries counted."""
    from art.attacks.inference.membership_inference import LabelOnlyDecisionBoundary
    from art.estimators.classification import PyTorchClassifier

    stack = target.stack
    module = nn.Sequential(nn.Linear(784, stack.hidden[0]), nn.ReLU(), nn.Linear(stack.hidden[0], stack.n_classes))
    with torch.no_grad():
        for layer, w, b in ((module[0], stack.weights[0][0], stack.biases[0][0]),
                            (module[2], stack.weights[1][0], stack.biases[1][0])):
            layer.weight.copy_(torch.from_numpy(w.T.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))
    counted = {"rows": 0}

    class CountingClassifier(PyTorchClassifier):
        def predict(self, x, batch_size: int = 128, training_mode: bool = False, **kwargs):
            counted["rows"] += len(x)
            return super().predict(x, batch_size=batch_size, training_mode=training_mode, **kwargs)

    clf = CountingClassifier(nn.Sequential(_Float32(), module).eval(), loss=nn.CrossEntropyLoss(), input_shape=(784,),
                             nb_classes=stack.n_classes, clip_values=(float(x.min()), float(x.max())))
    attack = LabelOnlyDecisionBoundary(clf, distance_threshold_tau=1e-6)  # ranking only
    onehot = np.eye(stack.n_classes, dtype=np.float32)[y]
    np.random.seed(0)  # ART's HopSkipJump draws from numpy's global generator
    started = time.perf_counter()
    probs = attack.infer(x, onehot, probabilities=True, max_iter=args.art_max_iter, max_eval=args.art_max_eval,
                         init_eval=args.art_init_eval, init_size=args.art_init_size, verbose=False)
    seconds = time.perf_counter() - started
    scores = probs[:, 1]
    out = row("ART LabelOnlyDecisionBoundary", member, scores, seconds, counted["rows"])
    out["tied_scores"] = int(len(scores) - len(np.unique(scores)))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small target and few records: checks the script")
    ap.add_argument("--references", type=int, default=16)
    ap.add_argument("--boundary-records", type=int, default=1000)
    ap.add_argument("--art-records", type=int, default=200)
    ap.add_argument("--art-max-iter", type=int, default=10)
    ap.add_argument("--art-max-eval", type=int, default=200)
    ap.add_argument("--art-init-eval", type=int, default=20)
    ap.add_argument("--art-init-size", type=int, default=100)
    ap.add_argument("--skip-art", action="store_true")
    ap.add_argument("--peer-only", action="store_true", help="only step 4 (e.g. at other ART settings)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "label_only.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # many small label queries: one thread is faster on a shared machine
    if args.quick:
        args.references, args.boundary_records, args.art_records, args.art_max_iter = 4, 200, 40, 3
    members, epochs = (500, 10) if args.quick else (2500, 30)
    cfg = make_config(dataset="fashion-mnist", target="mlp", members=members, reference_models=args.references,
                      attacks=CONFIDENCE, seed=0, epochs=epochs, cache=True, n_jobs=1)
    report: dict = {"protocol": "fmnist-mlp (target) with K reference models", "quick": args.quick,
                    "reference_models": args.references, "torch_threads": 1}
    t0 = time.perf_counter()
    plan = make_plan(cfg)
    target, refs = train_target_and_references(plan)
    inputs = compute_signals(signal_request(plan), target, refs)
    correct = inputs.target_logits[:, 0].argmax(1) == plan.pool_y
    report["target"] = {"train_accuracy": float(correct[plan.membership].mean()),
                        "test_accuracy": float(correct[~plan.membership].mean()), "records": len(correct),
                        "setup_s": time.perf_counter() - t0}
    print(f"target: train {report['target']['train_accuracy']:.3f} test {report['target']['test_accuracy']:.3f} "
          f"({len(correct)} records, {args.references} reference models)", flush=True)

    subset = np.sort(np.random.default_rng(5).permutation(len(correct))[: args.boundary_records])
    if not args.peer_only:
        tables(plan, inputs, subset, report)
    if not args.skip_art:
        report["peer"] = peer(plan, target, inputs, subset, args)
    report["total_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def tables(plan, inputs, subset: np.ndarray, report: dict) -> None:
    """Steps 2 and 3 of the module docstring, into report."""
    report["all_records"] = run(plan, inputs, plan.membership, CONFIDENCE + LABEL_ONLY + WHITE_BOX)
    for layer in ("layer0", "layer1"):  # the gradient norm of one layer (784x256, 256x10)
        spec = dataclasses.replace(ATTACKS["gradient-norm"].with_params({"layer": layer}),
                                   name=f"gradient-norm[{layer}]")
        o = run_attacks(plan, inputs, specs=[spec])[0]
        report["all_records"].append(row(o.name, plan.membership, o.scores, o.seconds, o.queries))
    print(f"\nall {inputs.n_records} records\n" + table(report["all_records"]), flush=True)
    sub_inputs, sub_plan = inputs.permuted(subset), _SubPlan(plan, subset)
    report["boundary_subset"] = {"records": len(subset), "rows": run(
        sub_plan, sub_inputs, sub_plan.membership, CONFIDENCE + LABEL_ONLY + WHITE_BOX + BOUNDARY)}
    print(f"\n{len(subset)} records (seeded subset)\n" + table(report["boundary_subset"]["rows"]), flush=True)



def peer(plan, target, inputs, subset: np.ndarray, args) -> dict:
    """Step 4 of the module docstring: ART and miaudit on the same records and budget."""
    art_index = subset[: args.art_records]
    x = plan.pool_x[art_index].reshape(len(art_index), -1)
    member = plan.membership[art_index]
    art = art_peer(target, x, plan.pool_y[art_index], member, args)
    budget = math.ceil(art["queries_per_record"])
    ours = run(_SubPlan(plan, art_index), inputs.permuted(art_index), member, ["label-only-boundary"], budget)[0]
    for r in (art, ours):
        r["seconds_per_100_records"] = 100 * r["seconds"] / len(art_index)
    out = {"records": len(art_index), "members": int(member.sum()), "budget_per_record": budget,
           "art_settings": {"max_iter": args.art_max_iter, "max_eval": args.art_max_eval,
                            "init_eval": args.art_init_eval, "init_size": args.art_init_size},
           "rows": [art, ours], "speedup": art["seconds"] / max(ours["seconds"], 1e-9)}
    print(f"\npeer on {len(art_index)} records, {budget} label queries per record\n" + table([art, ours]))
    print(f"seconds per 100 records: ART {art['seconds_per_100_records']:.1f}, miaudit "
          f"{ours['seconds_per_100_records']:.2f} ({out['speedup']:.0f}x)")
    return out


if __name__ == "__main__":
    main()
