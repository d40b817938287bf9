"""`miaudit invert`: train an image classifier for several epoch budgets, invert every class of
each, and draw the reconstructions (one grid per budget, and all budgets in one figure)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from miaudit.data import load_dataset
from miaudit.data.scaling import fit_scaler
from miaudit.errors import InputError
from miaudit.inversion.miface import Inversion, Standardize, as_torch_module, check_settings, invert
from miaudit.models.families import find_family
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.registry import fit_single, model_spec
from miaudit.progress import ProgressBoard


@dataclass
class BudgetInversion:
    """The inversion of one target: its epoch budget, test accuracy and per-class results."""

    epochs: int
    test_accuracy: float
    inversion: Inversion
    seconds: float


def parse_epochs(text: str) -> list[int]:
    """'1,10,100' -> [1, 10, 100]; InputError for anything but positive integers."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise InputError(f"--epochs: positive integers separated by commas, got {text!r}")
    return [int(p) for p in parts]


def run_inversion(dataset: str = "mnist", target: str = "mlp", epochs: list[int] = (1, 10, 100),
                  members: int = 5000, hidden: tuple[int, ...] = (256,), seed: int = 0,
                  data_dir: str | None = None, board: ProgressBoard | None = None,
                  **invert_args) -> list[BudgetInversion]:
    """Train ``target`` on ``members`` records of an image dataset once per epoch budget (same seed,
    same records), then invert every class of it in pixel space [0, 1] (the model's input
    standardization is part of the inverted module)."""
    family = find_family(target)
    if family is None or not family.white_box:
        raise InputError(f"--target: inversion needs gradients, use a torch model (mlp, cnn, small-cnn, mnist-cnn "
                         f"or cnn-spec:<layers>; got {target!r})")
    spec = model_spec(target, hidden)
    ds = load_dataset(dataset, data_dir=data_dir)
    if not ds.is_image:
        raise InputError(f"--dataset: invert draws images; {ds.name} is tabular (features {ds.feature_shape}); "
                         f"use miaudit.inversion.invert from Python")
    if members < ds.n_classes or members >= len(ds):
        raise InputError(f"--members: between {ds.n_classes} and {len(ds) - 1} records, got {members}")
    check_settings(ds.n_classes, ds.feature_shape, **invert_args)
    order = np.random.default_rng([seed, 31]).permutation(len(ds))
    train, test = order[:members], order[members:members + 5000]
    scaler = fit_scaler(ds.x[train], "standard")
    x_train = scaler.transform(ds.x[train])
    x_test = scaler.transform(ds.x[test])
    out = []
    board = board or ProgressBoard(False)
    for e in epochs:
        recipe = TrainingRecipe(epochs=e, seed=seed)
        with board.task(f"training {target} for {e} epochs", 100) as update:
            model = fit_single(spec, x_train, ds.y[train], ds.n_classes, recipe, seed, dataset_name=ds.name,
                               progress=lambda f: update(round(100 * f)))
        accuracy = model.accuracy(x_test, ds.y[test])
        module = nn.Sequential(Standardize(scaler.mean, scaler.scale), as_torch_module(model))
        t = time.perf_counter()
        with board.task(f"inverting {ds.n_classes} classes", 1):
            result = invert(module, ds.n_classes, ds.feature_shape, **invert_args)
        out.append(BudgetInversion(e, accuracy, result, time.perf_counter() - t))
    return out


def write_figures(results: list[BudgetInversion], out: Path, title: str, class_names=None) -> dict[str, Path]:
    """inversion_<E>epochs.png per budget, inversion.png (rows = budgets, columns = classes) and
    inversion.json (accuracy, reached probabilities, iterations, seconds); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for r in results:
        name = f"inversion_{r.epochs}epochs.png"
        paths[name] = _grid([r], out / name, f"{title}, {r.epochs} epochs", class_names)
    paths["inversion.png"] = _grid(results, out / "inversion.png", title, class_names)
    summary = [{"epochs": r.epochs, "test_accuracy": r.test_accuracy, "seconds": r.seconds,
                "classes": r.inversion.classes.tolist(), "probabilities": r.inversion.probabilities.tolist(),
                "iterations": r.inversion.iterations.tolist()} for r in results]
    paths["inversion.json"] = out / "inversion.json"
    paths["inversion.json"].write_text(json.dumps({"title": title, "budgets": summary}, indent=2))
    return paths


def _grid(results: list[BudgetInversion], path: Path, title: str, class_names) -> Path:
    """One row of reconstructions per result, each labelled with its class and reached probability."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = len(results[0].inversion.classes)
    fig = Figure(figsize=(1.1 * columns + 0.9, 1.25 * len(results) + 0.5), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(results), columns, squeeze=False)
    for i, r in enumerate(results):
        for j, (image, c, p) in enumerate(zip(r.inversion.reconstructions, r.inversion.classes,
                                              r.inversion.probabilities, strict=True)):
            ax = axes[i, j]
            pixels = image.transpose(1, 2, 0) if image.shape[0] == 3 else image.reshape(image.shape[-2:])
            low, high = float(pixels.min()), float(pixels.max())  # each image stretched to its own range
            ax.imshow(pixels, cmap="gray", vmin=low, vmax=high if high > low else low + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            name = class_names[c] if class_names else str(c)
            ax.set_title(f"{name}: p={p:.2f}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{r.epochs} ep\nacc {r.test_accuracy:.2f}", fontsize=7)
    fig.suptitle(f"{title} (each image stretched to its own min..max)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path
