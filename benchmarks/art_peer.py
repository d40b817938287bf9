"""IBM ART peer for the ``fmnist-mlp`` benchmark: ShadowModels + MembershipInferenceBlackBox.

The target is the protocol's MLP 784-256-10; ART trains K shadow models with the same recipe on
attacker records disjoint from the audited pool, fits its black-box attack model ("rf", "nn", "lr")
on the shadow models' member / non-member logits and scores the pool's 5,000 records.

Run:  .venv/bin/python benchmarks/art_peer.py [--quick] [--threads N]
Needs the bench extra: ``pip install "adversarial-robustness-toolbox==1.20.*"`` (no torch upgrade).
"""
from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from art.attacks.inference.membership_inference import MembershipInferenceBlackBox, ShadowModels
from art.estimators.classification import PyTorchClassifier
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from miaudit.data import load_dataset, pool_splits
from miaudit.data.scaling import fit_scaler
from miaudit.errors import InputError

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "art_peer.json"
N_FEATURES = 784
N_CLASSES = 10
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
FPR_LEVELS = (0.001, 0.01)


# --------------------------------------------------------------------------- data + protocol
def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Train then test through miaudit's loader, standardized as miaudit's audit does it
    (input_scaling "auto"): x float32 [70000, 784], y int64 [70000]."""
    raw = load_dataset("fashion-mnist")
    ds = fit_scaler(raw.x).apply(raw)
    return ds.x.reshape(len(ds.x), N_FEATURES), ds.y


# --------------------------------------------------------------------------- target recipe
def build_mlp() -> nn.Module:
    """MLP 784-256-10 (ReLU) returning logits [n, 10]."""
    return nn.Sequential(nn.Linear(N_FEATURES, 256), nn.ReLU(), nn.Linear(256, N_CLASSES))


def train_target(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> nn.Module:
    """Plain torch recipe (Adam lr 1e-3, batch 64) on x float32 [n, 784], y int64 [n]."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_mlp()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for batch in order.split(BATCH_SIZE):
            optimizer.zero_grad()
            loss_fn(model(xt[batch]), yt[batch]).backward()
            optimizer.step()
    return model.eval()


class RecipeClassifier(PyTorchClassifier):
    """PyTorchClassifier whose ``fit(x, y)`` defaults to the target recipe (batch 64, ``fit_epochs``).

    ART's ShadowModels calls ``fit(x, y)`` with no options; ``clone_for_refitting`` keeps
    ``fit_batch_size`` / ``fit_epochs`` because they are listed in ``estimator_params``.
    """

    estimator_params = PyTorchClassifier.estimator_params + ["fit_batch_size", "fit_epochs"]

    def __init__(self, *args, fit_batch_size: int = BATCH_SIZE, fit_epochs: int = 30, **kwargs):
        super().__init__(*args, **kwargs)
        self.fit_batch_size = fit_batch_size
        self.fit_epochs = fit_epochs

    def fit(self, x, y, batch_size: int | None = None, nb_epochs: int | None = None, **kwargs) -> None:
        super().fit(x, y, batch_size=batch_size or self.fit_batch_size,
                    nb_epochs=nb_epochs or self.fit_epochs, **kwargs)


def art_classifier(module: nn.Module, epochs: int) -> RecipeClassifier:
    """Wrap a torch module (logits out) for ART, with an Adam lr 1e-3 optimizer for refitting."""
    return RecipeClassifier(
        model=module, loss=nn.CrossEntropyLoss(), input_shape=(N_FEATURES,), nb_classes=N_CLASSES,
        optimizer=torch.optim.Adam(module.parameters(), lr=LEARNING_RATE),
        clip_values=(0.0, 1.0), device_type="cpu", fit_epochs=epochs,
    )


def time_one_shadow(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> float:
    """Seconds for ART to train one shadow model as ShadowModels does: ``fit(x, y)`` of a fresh
    RecipeClassifier (the target's recipe) on x float32 [n, 784], y int64 [n]."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        shadow = art_classifier(build_mlp(), epochs)
        start = time.perf_counter()
        shadow.fit(x, y)
        return time.perf_counter() - start


# --------------------------------------------------------------------------- metrics
def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, level: float) -> float:
    """Highest TPR on the ROC curve with FPR <= level (labels bool [n], scores float [n])."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= level].max())


def score_row(name: str, labels: np.ndarray, scores: np.ndarray) -> dict:
    """AUC and TPR at each FPR level for one attack's membership scores [n]."""
    row = {"attack": name, "auc": float(roc_auc_score(labels, scores))}
    for level in FPR_LEVELS:
        row[f"tpr_at_{level}"] = tpr_at_fpr(labels, scores, level)
    return row


# --------------------------------------------------------------------------- the peer
def _check_inputs(x: np.ndarray, y: np.ndarray, pool: np.ndarray, member_mask: np.ndarray) -> None:
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise InputError(f"x: expected shape [n, {N_FEATURES}], got {list(x.shape)}")
    if y.shape != (len(x),):
        raise InputError(f"y: expected shape [{len(x)}], got {list(y.shape)}")
    if pool.ndim != 1 or pool.min() < 0 or pool.max() >= len(x) or len(np.unique(pool)) != len(pool):
        raise InputError("pool: expected distinct indices into x")
    if member_mask.shape != pool.shape or member_mask.dtype != bool:
        raise InputError(f"member_mask: expected bool [{len(pool)}], got {member_mask.dtype} {list(member_mask.shape)}")
    if member_mask.all() or not member_mask.any():
        raise InputError("member_mask: needs both members and non-members")


def attacker_indices(n_records: int, pool: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` indices [size] drawn from the records outside the pool (the attacker's data)."""
    outside = np.setdiff1d(np.arange(n_records), pool)
    if size > len(outside):
        raise InputError(f"attacker_records: {size} requested, {len(outside)} outside the pool")
    return np.random.default_rng(seed).permutation(outside)[:size]


@contextmanager
def _numpy_global_seed(seed: int):
    """Seed numpy's legacy global RNG (ART's default RandomForest has no random_state), then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def run_art_peer(x: np.ndarray, y: np.ndarray, pool: np.ndarray, member_mask: np.ndarray,
                 target_module: nn.Module | None, shadow_counts=(4, 16), attack_types=("rf", "nn", "lr"),
                 epochs: int = 30, seed: int = 0, *, attacker_records: int | None = None,
                 disjoint: bool = False) -> list[dict]:
    """ART shadow-model attack on the pool; one row per (shadow count K, attack model type).

    x float32 [n, 784] as the target sees them, y int64 [n]; pool int [m] indices into x; member_mask bool [m]
    (True = trained the target). target_module maps [b, 784] -> logits [b, 10]; None trains one with
    the recipe on x[pool[member_mask]]. Shadow data: ``attacker_records`` (default m) records outside
    the pool; each shadow trains on a random half of them (ART ``disjoint_datasets=False``), or with
    ``disjoint`` on its own slice of K * attacker_records records. Rows: attack "art-shadow-{K}-{type}",
    auc, tpr_at_0.001, tpr_at_0.01, seconds (shadow training + attack fit + infer, wall clock),
    shadow_seconds_per_model.
    """
    x, y, pool, member_mask = np.asarray(x, np.float32), np.asarray(y, np.int64), np.asarray(pool), \
        np.asarray(member_mask)
    _check_inputs(x, y, pool, member_mask)
    if target_module is None:
        members = pool[member_mask]
        target_module = train_target(x[members], y[members], epochs, seed)
    target = art_classifier(target_module.eval(), epochs)
    x_audit, y_audit = x[pool], y[pool]
    per_shadow = attacker_records or len(pool)

    rows = []
    for k in shadow_counts:
        attacker = attacker_indices(len(x), pool, per_shadow * k if disjoint else per_shadow, seed + k)
        with torch.random.fork_rng(), _numpy_global_seed(seed + k):  # ART and its default RF use global RNGs
            torch.manual_seed(seed + k)
            template = art_classifier(build_mlp(), epochs)
            shadows = ShadowModels(template, num_shadow_models=k, disjoint_datasets=disjoint,
                                   random_state=seed + k)
            start = time.perf_counter()
            (in_x, in_y, in_pred), (out_x, out_y, out_pred) = shadows.generate_shadow_dataset(
                x[attacker], y[attacker])
            shadow_seconds = time.perf_counter() - start
            for attack_type in attack_types:
                start = time.perf_counter()
                attack = MembershipInferenceBlackBox(target, attack_model_type=attack_type)
                attack.fit(in_x, in_y, out_x, out_y, pred=in_pred, test_pred=out_pred)
                scores = attack.infer(x_audit, y_audit, probabilities=True).ravel()
                attack_seconds = time.perf_counter() - start
                row = score_row(f"art-shadow-{k}-{attack_type}", member_mask, scores)
                row["seconds"] = shadow_seconds + attack_seconds
                row["shadow_seconds_per_model"] = shadow_seconds / k
                rows.append(row)
    return rows


# --------------------------------------------------------------------------- CLI
def accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a logits module on x float32 [n, 784], y [n]."""
    with torch.no_grad():
        return float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def format_table(rows: list[dict]) -> str:
    """Fixed-width text table of the result rows."""
    lines = [f"{'attack':<22}{'auc':>8}{'tpr@0.1%':>10}{'tpr@1%':>9}{'seconds':>10}{'s/shadow':>10}"]
    for r in rows:
        lines.append(f"{r['attack']:<22}{r['auc']:>8.4f}{r['tpr_at_0.001']:>10.4f}{r['tpr_at_0.01']:>9.4f}"
                     f"{r['seconds']:>10.1f}{r['shadow_seconds_per_model']:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs, pool of 1,000, 2 and 4 shadows: a smoke run")
    parser.add_argument("--disjoint", action="store_true", help="ART disjoint_datasets=True")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default results/art_peer.json, --quick: art_peer_quick.json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs, pool_size, shadow_counts = (3, 1000, (2, 4)) if args.quick else (30, 5000, (4, 16))
    out = args.out or (RESULTS_PATH.with_name("art_peer_quick.json") if args.quick else RESULTS_PATH)

    x, y = load_fashion_mnist()
    pool, member_mask = pool_splits(len(x), pool_size, seed=0)
    start = time.perf_counter()
    target = train_target(x[pool[member_mask]], y[pool[member_mask]], epochs, seed=0)
    target_seconds = time.perf_counter() - start
    rows = run_art_peer(x, y, pool, member_mask, target, shadow_counts=shadow_counts, epochs=epochs, seed=0,
                        disjoint=args.disjoint)

    best = {}
    for r in rows:
        k = r["attack"].split("-")[2]
        if k not in best or r["auc"] > best[k]["auc"]:
            best[k] = r
    report = {
        "protocol": "fmnist-mlp" + ("-quick" if args.quick else ""),
        "peer": "adversarial-robustness-toolbox 1.20 ShadowModels + MembershipInferenceBlackBox",
        "config": {"epochs": epochs, "pool": pool_size, "members": int(member_mask.sum()),
                   "attacker_records_per_shadow": pool_size, "disjoint": args.disjoint,
                   "torch_threads": torch.get_num_threads()},
        "target": {"train_accuracy": accuracy(target, x[pool[member_mask]], y[pool[member_mask]]),
                   "test_accuracy": accuracy(target, x[pool[~member_mask]], y[pool[~member_mask]]),
                   "train_seconds": target_seconds},
        "attacks": rows,
        "best_per_shadow_count": {k: r["attack"] for k, r in best.items()},
    }
    print(f"target: train acc {report['target']['train_accuracy']:.4f}, "
          f"non-member acc {report['target']['test_accuracy']:.4f}, {target_seconds:.1f} s")
    print(format_table(rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
