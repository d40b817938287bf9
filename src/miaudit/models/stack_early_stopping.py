"""Per-model early stopping for an MLP stack (models/stack.py): each model's validation records and
its best weights, kept while the rest of the stack trains on."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from miaudit.models.recipe import TrainingRecipe, validation_split


def validation_masks(masks: np.ndarray, recipe: TrainingRecipe, seeds: Sequence[int]) -> np.ndarray:
    """bool [K, n]: model k's validation records (recipe.validation_split of its own subset, seeded
    by seeds[k]); all False without early stopping."""
    held_out = np.zeros_like(masks)
    if recipe.patience:
        for k, (mask, seed) in enumerate(zip(masks, seeds, strict=True)):
            subset = np.flatnonzero(mask)
            held_out[k, subset[validation_split(len(subset), recipe, int(seed))[1]]] = True
    return held_out


class StackEarlyStopping:
    """Per-model early stopping of a stack: after each epoch every model still running computes its
    mean cross-entropy on its own validation records; a lower one saves that model's weights, and
    ``patience`` epochs without one stop it (its saved weights are final, whatever the stack does
    after). Model k ends exactly as it would trained alone."""

    def __init__(self, net, held_out: np.ndarray, patience: int) -> None:
        self.net, self.patience = net, patience
        k = len(held_out)
        sizes = held_out.sum(axis=1)
        width = max(1, int(sizes.max()))
        index = np.zeros((k, width), np.int64)
        weight = np.zeros((k, width), np.float32)
        for i, rows in enumerate(held_out):
            chosen = np.flatnonzero(rows)
            index[i, : len(chosen)] = chosen
            weight[i, : len(chosen)] = 1.0 / max(1, len(chosen))
        device = net.weights[0].device
        self.index, self.weight = torch.from_numpy(index).to(device), torch.from_numpy(weight).to(device)
        self.params = net.weights + net.biases
        self.best = [p.detach().clone() for p in self.params]
        self.best_loss = np.full(k, np.inf)
        self.waited = np.zeros(k, np.int64)
        self.running = sizes > 0

    def epoch_done(self, xt: torch.Tensor, yt: torch.Tensor) -> bool:
        """Update every running model's best weights; True once no model is running."""
        loss = self._validation_loss(xt, yt)
        better = self.running & (loss < self.best_loss)
        rows = torch.from_numpy(np.flatnonzero(better)).to(self.index.device)
        for p, b in zip(self.params, self.best, strict=True):
            b[rows] = p.detach()[rows]
        self.best_loss[better] = loss[better]
        self.waited[better] = 0
        self.waited[self.running & ~better] += 1
        self.running &= self.waited < self.patience
        return not self.running.any()

    def restore_best(self) -> None:
        with torch.no_grad():
            for p, b in zip(self.params, self.best, strict=True):
                p.copy_(b)

    def _validation_loss(self, xt: torch.Tensor, yt: torch.Tensor) -> np.ndarray:
        """float64 [K]: each model's mean (unsmoothed) cross-entropy on its validation records, fp32."""
        with torch.no_grad():
            h = xt[self.index].float()
            n_layers = len(self.net.weights)
            for layer, (w, b) in enumerate(zip(self.net.weights, self.net.biases, strict=True)):
                h = torch.baddbmm(b, h, w)
                if layer < n_layers - 1:
                    h.relu_()
            logp = torch.log_softmax(h, dim=-1)
            nll = -logp.gather(-1, yt[self.index].unsqueeze(-1)).squeeze(-1)
            return (nll * self.weight).sum(dim=1).double().cpu().numpy()
