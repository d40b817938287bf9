"""Reference-model chunks as Ray tasks (``--backend ray``).

The training data go to the object store once (``ray.put``); every task gets the reference and trains
one chunk with the same stacked trainer as the local backend, returning its models' states (float32
arrays). The driver yields each chunk as soon as it finishes (``ray.wait``), so the caller saves it to
the model cache at once: a killed driver loses only the chunks in flight. Tasks still running when the
caller stops reading (an error, Ctrl-C) are cancelled; a task's InputError is raised as itself.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from miaudit.errors import InputError
from miaudit.extras import require


def ray_module():
    """The imported ray package; InputError "backend: needs ray: pip install miaudit[ray]" without it."""
    return require("ray", "ray", "backend")


def connect(address: str | None = None) -> Any:
    """The ray module, connected: to the cluster at ``address``, else to the instance this process
    already runs, else to a new local instance with this process's usable cores (no dashboard)."""
    ray = ray_module()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=_usable_cores(), include_dashboard=False, log_to_driver=False)
    return ray


def run_chunks(train_chunk: Callable[..., list], shared: dict, chunks: Sequence[list[int]],
               chunk_args: Callable[[list[int]], dict], address: str | None = None,
               cpus_per_task: int = 1) -> Iterator[tuple[list[int], list]]:
    """(chunk, train_chunk(shared, **chunk_args(chunk))) for every chunk, in the order they finish, each
    run as a Ray task. ``shared`` (the training data and settings) is put in the object store once and
    every task gets its reference; chunk_args(chunk) is the chunk's own (small) arguments.
    ``train_chunk`` must be a module-level function (tasks pickle it by reference)."""
    if not chunks:
        return
    ray = connect(address)
    shared_ref = ray.put(shared)
    task = ray.remote(num_cpus=cpus_per_task, max_retries=1)(_run_task)
    pending = {task.remote(train_chunk, shared_ref, **chunk_args(list(chunk))): list(chunk) for chunk in chunks}
    try:
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                chunk = pending.pop(ref)
                try:
                    models = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    if isinstance(err.cause, InputError):  # the task's one-line message, not Ray's traceback
                        raise err.cause from None
                    raise
                yield chunk, models
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def _run_task(train_chunk: Callable[..., list], shared: dict, **args: Any) -> list:
    return train_chunk(shared, **args)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch.set_num_threads(n) for the block, the previous setting restored after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
