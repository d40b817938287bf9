"""The ModelFamily contract: what every kind of model miaudit trains answers, and the TrainingJob it trains.

A family (mlp, stacked CNN, one-at-a-time torch, scikit-learn, ...) says which target names it takes,
what can be done with its models (torch? white-box? exported to which suffix? DP-SGD?) and how to train
them: one model (``fit``), or a chunk of K models (``train_chunk``: masks bool [K, n], K seeds) returning
one cacheable state per model, from which ``collection`` builds the reference models. The families are
listed once, in families.py. This module imports neither torch nor scikit-learn.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainingJob:
    """Everything shared by the models of one training call (picklable: a Ray task receives it).

    family: the ModelFamily; spec: the ModelSpec (name, hidden widths); x float32 [n, ...], y int [n];
    n_classes; recipe (TrainingRecipe); precision: resolved ("n/a" for scikit-learn); device: "cpu" / "cuda".
    """

    family: ModelFamily
    spec: Any
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    recipe: Any
    precision: str
    device: str = "cpu"

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in np.shape(self.x)[1:])


class ModelFamily(ABC):
    """One kind of model. Class attributes answer the questions asked before any training:

    name: the family's name; target_names: the target names it takes (listed in ``--target`` help);
    is_torch: trained with torch; white_box: its parameters are readable by gradient attacks;
    export_suffix: ".onnx" / ".skops" for --save-target, None when it cannot be exported;
    dp: DP-SGD applies; stacked: K models train at once (chunks of chunk_size);
    worker_fit: for families fitted in worker processes (joblib), a picklable module-level
    ``fit(name, x, y, seed) -> fitted`` that loads no torch (``from_worker`` wraps its result);
    code_modules: the modules whose code decides a trained model (the cache key's training code).
    """

    name: str = ""
    target_names: tuple[str, ...] = ()
    is_torch: bool = False
    white_box: bool = False
    export_suffix: str | None = None
    dp: bool = False
    stacked: bool = False
    worker_fit: Callable | None = None
    code_modules: tuple[str, ...] = ()

    def accepts(self, name: str) -> bool:
        """Does this family take the target name?"""
        return name in self.target_names

    def trains(self, recipe) -> bool:
        """Does this family train its models under ``recipe`` (else the next family taking the name does)?"""
        return True

    def check_input(self, spec, x: np.ndarray, dataset_name: str | None = None) -> None:
        """InputError when x [n, ...] cannot train a model of spec (e.g. tabular data for a CNN); default: none."""
        return None

    @abstractmethod
    def fit(self, spec, x: np.ndarray, y: np.ndarray, n_classes: int, recipe, seed: int, precision: str = "auto",
            progress: Callable[[float], None] | None = None, device: str = "cpu"):
        """One trained model (a Target) on x [n, ...], y int [n]; progress(fraction done)."""

    def train_chunk(self, job: TrainingJob, masks: np.ndarray, seeds: Sequence[int],
                    progress: Callable[[int], None] | None = None, indices: Sequence[int] | None = None) -> list:
        """The cacheable state of each of K models, model j on the records of masks[j] (bool [K, n]) with
        seeds[j]; progress(steps done) for stacked families; indices[j]: model j's index among all the
        reference models (for names and messages). Default: ``fit`` one model at a time, the state being
        the Target itself."""
        return [self.fit(job.spec, job.x[m], job.y[m], job.n_classes, job.recipe, int(seed), job.precision,
                         device=job.device)
                for m, seed in zip(masks, seeds, strict=True)]

    def from_worker(self, job: TrainingJob, fitted, index: int) -> object:
        """The cacheable state of reference model ``index``, which ``worker_fit`` returned."""
        return fitted

    def state_check(self, job: TrainingJob) -> Callable[[object], bool]:
        """Is a cached object a state of a model of this job? Default: a Target (has ``logits``)."""
        return lambda state: hasattr(state, "logits")

    def train_flops(self, job: TrainingJob, n_samples: int) -> float:
        """Training FLOPs of one model over n_samples samples (records x epochs); 0 where not counted."""
        return 0.0

    def collection(self, job: TrainingJob, states: list):
        """The reference-model collection of the K states: an MLPStack / CNNStack for stacked families,
        else the list of K Targets."""
        return list(states)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
