"""The Ray backend of the reference-training loop (references.py): every missing chunk a Ray task.

Every chunk trains with its family's ``train_chunk`` and the same per-model seeds as locally, so the models
and every number derived from them match the local backend. A task receives the TrainingJob (the shared
data) by object-store reference and its own chunk's masks (chunk_size x n bools), and returns its models'
states: float32 arrays for stacks, fitted models otherwise.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from miaudit.models.family import TrainingJob
from miaudit.models.ray_backend import run_chunks, torch_threads
from miaudit.models.ray_signals import RayPlacement


class RayBackend:
    """Chunks of every family as Ray tasks on the cluster at ``address`` (else a local Ray instance);
    a stack's logits run on Ray afterwards too (``placement``)."""

    chunks_every_family = True

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def run(self, job: TrainingJob, chunks: list[list[int]], masks: np.ndarray, seeds: Sequence[int],
            partial: Callable[[int], None]) -> Iterator[tuple[list[int], list]]:
        # a stack's models depend (in float rounding) on how its chunk is split over worker threads and on the
        # intra-op threads of a one-thread split, so every task trains with this process's torch threads
        # (stack.py: min(chunk, torch threads) workers), whatever Ray gives it
        shared = {"job": job, "threads": torch.get_num_threads()}
        chunk_args = lambda chunk: {"masks": masks[chunk], "seeds": [int(seeds[k]) for k in chunk],  # noqa: E731
                                    "indices": list(chunk)}
        yield from run_chunks(train_chunk_task, shared, chunks, chunk_args, self.address)

    def placement(self, chunk_size: int) -> RayPlacement:
        return RayPlacement(self.address, chunk_size)


def train_chunk_task(shared: dict, masks: np.ndarray, seeds: list[int], indices: list[int]) -> list:
    """One Ray task: the states of a chunk's models (float32 arrays for stacks)."""
    job: TrainingJob = shared["job"]
    if not job.family.is_torch:
        return job.family.train_chunk(job, masks, seeds, None, indices)
    with torch_threads(shared["threads"]):
        states = job.family.train_chunk(job, masks, seeds, None, indices)
    return [_float32(s) for s in states] if job.family.stacked else states


def _float32(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.asarray(a, np.float32) for name, a in state.items()}
