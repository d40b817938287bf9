"""miaudit's `invert` against IBM ART's MIFace on the same MNIST classifier.

One MLP 784-256-10 (miaudit's trainer, 5,000 MNIST records, 10 epochs, standardized inputs with the
standardization inside the inverted module, so both tools descend on pixels in [0, 1]). Both start
from the zero image, take at most the same number of steps at the same learning rate, and invert
all 10 classes in one batch, on one torch thread. miaudit stops a class at p >= 0.99 by default
(cost_threshold 0.01); ART's MIFace, with its threshold 0.99, runs all max_iter steps whenever
p > 0.01, so a miaudit row with cost_threshold 0 runs its full budget too (stopped only when the
cost stops falling for `window` steps). ART runs twice: on the logits module (what
PyTorchClassifier gets from most users; its class_gradient is then the gradient of the logit) and
on the module followed by a softmax (the probability Fredrikson et al.'s cost is written in).
Reported: the probability the classifier gives each class at its reconstruction (mean and min
over the 10 classes), and seconds per class. Writes results/inversion.json (+ a small PNG).

Run:  .venv/bin/python benchmarks/inversion.py [--max-iter 2000] [--epochs 10]
Needs the bench extra: ``pip install "adversarial-robustness-toolbox==1.20.*"``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from miaudit.inversion import Standardize, as_torch_module, invert
from miaudit.inversion.miface import Inversion

RESULTS = Path(__file__).resolve().parent / "results"


def train_target(epochs: int, members: int, seed: int = 0) -> tuple[nn.Module, float]:
    """(logits module on [n, 1, 28, 28] pixels in [0, 1], test accuracy)."""
    from miaudit.data import load_dataset
    from miaudit.data.scaling import fit_scaler
    from miaudit.models.recipe import TrainingRecipe
    from miaudit.models.registry import fit_single, model_spec

    ds = load_dataset("mnist")
    order = np.random.default_rng([seed, 31]).permutation(len(ds))
    train, test = order[:members], order[members:members + 5000]
    scaler = fit_scaler(ds.x[train], "standard")
    model = fit_single(model_spec("mlp", (256,)), scaler.transform(ds.x[train]), ds.y[train], 10,
                       TrainingRecipe(epochs=epochs, seed=seed), seed)
    accuracy = model.accuracy(scaler.transform(ds.x[test]), ds.y[test])
    return nn.Sequential(Standardize(scaler.mean, scaler.scale), as_torch_module(model)).eval(), accuracy


def class_probabilities(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """float [10]: p(class c | reconstruction c)."""
    with torch.no_grad():
        p = torch.softmax(module(torch.from_numpy(np.asarray(x, np.float32))), dim=1).numpy()
    return p[np.arange(len(x)), np.arange(len(x))]


def run_art(module: nn.Module, softmax_output: bool, max_iter: int, window: int, lr: float) -> tuple[np.ndarray, float]:
    from art.attacks.inference.model_inversion import MIFace
    from art.estimators.classification import PyTorchClassifier

    net = nn.Sequential(module, nn.Softmax(dim=1)) if softmax_output else module
    classifier = PyTorchClassifier(model=net, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                   clip_values=(0.0, 1.0), device_type="cpu")
    attack = MIFace(classifier, max_iter=max_iter, window_length=window, threshold=0.99, learning_rate=lr,
                    batch_size=10, verbose=False)
    started = time.perf_counter()
    x = attack.infer(None, y=np.arange(10))
    return x, time.perf_counter() - started


def run_miaudit(module: nn.Module, objective: str, max_iter: int, window: int, lr: float,
                threshold: float = 0.01) -> tuple[Inversion, float]:
    started = time.perf_counter()
    result = invert(module, 10, (1, 28, 28), max_iter=max_iter, window=window, cost_threshold=threshold, lr=lr,
                    objective=objective)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=2000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--members", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, accuracy = train_target(args.epochs, args.members)
    print(f"target: MLP 784-256-10, {args.members} MNIST records, {args.epochs} epochs, test acc {accuracy:.3f}")
    rows, images = [], {}
    for tool, setting, run in [
        ("miaudit", "objective=probability (1 - p)", lambda: run_miaudit(module, "probability", args.max_iter,
                                                                          args.window, args.lr)),
        ("miaudit", "objective=log-probability", lambda: run_miaudit(module, "log-probability", args.max_iter,
                                                                      args.window, args.lr)),
        ("miaudit", "log-probability, cost_threshold=0", lambda: run_miaudit(
            module, "log-probability", args.max_iter, args.window, args.lr, threshold=0.0)),
        ("art", "MIFace on logits", lambda: run_art(module, False, args.max_iter, args.window, args.lr)),
        ("art", "MIFace on softmax output", lambda: run_art(module, True, args.max_iter, args.window, args.lr)),
    ]:
        out, seconds = run()
        x = out.reconstructions if isinstance(out, Inversion) else out
        p = class_probabilities(module, x)
        steps = out.iterations.tolist() if isinstance(out, Inversion) else None
        rows.append({"tool": tool, "setting": setting, "mean_probability": float(p.mean()),
                     "min_probability": float(p.min()), "probabilities": p.tolist(),
                     "seconds_per_class": seconds / 10, "steps": steps})
        images[f"{tool}: {setting}"] = (x, p)
        print(f"{tool:<8} {setting:<36} reached p mean {p.mean():.3f} min {p.min():.3f}   "
              f"{seconds / 10:.3f} s per class" + (f"   steps {min(steps)}-{max(steps)}" if steps else ""), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "inversion.json").write_text(json.dumps(
        {"target": "mlp 784-256-10 on MNIST", "members": args.members, "epochs": args.epochs,
         "test_accuracy": accuracy, "max_iter": args.max_iter, "window": args.window, "lr": args.lr,
         "torch_threads": 1, "runs": rows}, indent=2))
    _figure(images, RESULTS / "inversion_peer.png")


def _figure(images: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Rows = tool settings, columns = classes, each image stretched to its own range."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.5, 1.3 * len(images) + 0.4), dpi=50)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(images), 10, squeeze=False)
    for i, (name, (x, p)) in enumerate(images.items()):
        for c in range(10):
            ax = axes[i, c]
            ax.imshow(x[c, 0], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{c}: p={p[c]:.2f}", fontsize=7)
            if c == 0:
                ax.set_ylabel(name.replace(": ", "\n"), fontsize=6)
    fig.suptitle("MIFace on one MNIST MLP: miaudit vs ART (each image stretched to its own range)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
