"""ReferenceModels: the K trained reference models, as one collection (logits, select, one model as a Target)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from miaudit.errors import InputError
from miaudit.models.cnn_models import CNNStack
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.ray_signals import logits_on_ray
from miaudit.models.target import Target
from miaudit.models.wrappers import StackTarget, TorchTarget


def collection_model(models, k: int, name: str = "reference") -> Target:
    """Model k of a collection (an MLPStack, a CNNStack or a list of Targets) as a Target: a StackTarget
    for an MLP stack, a TorchTarget (a plain module: white-box attacks read its parameters) for a CNN stack."""
    if isinstance(models, MLPStack):
        return StackTarget(name, models.select(k))
    if isinstance(models, CNNStack):
        return TorchTarget(name, models.module(k), models.n_classes)
    return models[k]


@dataclass
class ReferenceModels:
    """The K trained models. ``models`` is one MLPStack (mlp), one CNNStack (CNNs trained stacked) or a
    list of K Targets (other families).

    trained: models trained by this call (the rest came from the cache); train_seconds: wall time spent
    training them; train_flops: their training FLOPs (6 x MACs x samples for mlp; 0 where not counted);
    precision: the resolved training precision, which an MLP stack's inference uses too;
    model_flops: float64 [K] training FLOPs of each model, 0 for models from the cache (stacks only).
    ray: a RayPlacement when the stack trained on Ray: its logits are computed there too (ray_signals).
    """

    spec: Any
    models: MLPStack | CNNStack | list
    trained: int
    train_seconds: float
    train_flops: float
    precision: str = "float32"
    model_flops: np.ndarray | None = None
    device: str = "cpu"
    ray: Any = None

    @property
    def stacked(self) -> bool:
        """True when the K models are one stack (MLPStack or CNNStack)."""
        return isinstance(self.models, (MLPStack, CNNStack))

    @property
    def n_models(self) -> int:
        return self.models.n_models if self.stacked else len(self.models)

    def model(self, k: int, name: str = "reference") -> Target:
        """Reference model k as a Target (``logits(x) -> [m, C]``; torch ones open their parameters)."""
        return collection_model(self.models, k, name)

    @property
    def mlp_stack(self) -> MLPStack | None:
        """The MLPStack holding all K models (white-box attacks compute their gradients at once), else None."""
        return self.models if isinstance(self.models, MLPStack) else None

    def split(self, k: int) -> tuple[ReferenceModels, ReferenceModels]:
        """(models [0, k), models [k, K)) of a stack; the training seconds are shared out in
        proportion to the training FLOPs of the models each part trained (they trained at once)."""
        if not self.stacked or self.model_flops is None or not 0 < k < self.n_models:
            raise InputError(f"split: needs an MLP stack of more than {k} models")
        parts = []
        for index in (range(k), range(k, self.n_models)):
            flops = self.model_flops[list(index)]
            share = flops.sum() / self.train_flops if self.train_flops else 0.0
            parts.append(ReferenceModels(self.spec, self.models.select(list(index)), int((flops > 0).sum()),
                                         self.train_seconds * share, float(flops.sum()), self.precision, flops,
                                         self.device, self.ray))
        return parts[0], parts[1]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 [K, m, C]: every model's logits (log-probabilities for sklearn) on x [m, ...]."""
        if self.ray is not None and self.stacked:
            return logits_on_ray(self.models, x, self.ray, self.precision, self.device, torch.get_num_threads())
        if self.stacked:
            return self.models.logits(x, precision=self.precision, device=self.device)
        return np.stack([np.asarray(m.logits(x), np.float32) for m in self.models])
