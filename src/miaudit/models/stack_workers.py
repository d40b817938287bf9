"""Worker threads for train_mlp_stack: independent training jobs on W Python threads.

The small batched ops of a training step gain little from a second intra-op thread, but they
release the GIL, so W Python threads with one intra-op thread each, every one training its own
sub-stack, get more out of the cores. Only the calling thread reports progress; a job's error is
re-raised in the caller after every thread has ended. Every thread that runs jobs flushes denormals
to zero meanwhile (denormals.py: the setting is per thread), then restores its own setting.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

import torch

from miaudit.models.denormals import flush_denormals

T = TypeVar("T")
POLL_SECONDS = 0.05  # how often the calling thread polls progress while the workers run


class Cancelled(Exception):
    """Raised inside a job by check() once another job has failed or the caller was interrupted."""


class StepCounter:
    """Batched steps done by groups of models trained in slices (thread-safe).

    A slice of n models adds n per optimizer step; group g counts (model-steps done) // (models in g),
    i.e. the steps a single stack of the whole group would have taken. steps is monotone and ends at
    the sum over groups of their steps.
    """

    def __init__(self, group_sizes: Sequence[int]) -> None:
        self._sizes = [int(n) for n in group_sizes]
        self._done = [0] * len(self._sizes)
        self._lock = threading.Lock()

    def add(self, group: int, models: int) -> None:
        with self._lock:
            self._done[group] += models

    @property
    def steps(self) -> int:
        with self._lock:
            return sum(d // n for d, n in zip(self._done, self._sizes, strict=True))


def run_jobs(jobs: Sequence[Callable[[Callable[[], None]], T]], workers: int,
             poll: Callable[[], None]) -> list[T]:
    """[job(check) for job in jobs], run on ``workers`` threads (in the caller when 1); results in job order.

    Jobs call check() between steps. With workers == 1 the jobs run one after another in the calling
    thread and check() is poll(), with torch's thread settings untouched. With more workers, torch
    uses one intra-op thread meanwhile (restored afterwards), poll() runs in the calling thread every
    POLL_SECONDS, and check() raises Cancelled once a job has failed; the first error is re-raised
    here after every worker thread has ended. Jobs run with denormals flushed to zero (flush_denormals).
    """
    if workers <= 1:
        with flush_denormals():
            return [job(poll) for job in jobs]
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise Cancelled

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # worker threads start after this and pick it up
    pool = ThreadPoolExecutor(workers, thread_name_prefix="miaudit-stack")
    try:
        futures = [pool.submit(_flushing, job, check) for job in jobs]
        pending: set[Future] = set(futures)
        while pending and not _failures(futures):
            pending = wait(pending, POLL_SECONDS, FIRST_EXCEPTION).not_done
            poll()
    finally:  # on an error here or in a job (or Ctrl-C): stop the other jobs, wait for every thread
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(previous)
    failures = _failures(futures)
    if failures:
        raise failures[0]
    return [f.result() for f in futures]


def _flushing(job: Callable[[Callable[[], None]], T], check: Callable[[], None]) -> T:
    """job(check) with denormals flushed to zero in this (worker) thread, its setting restored after."""
    with flush_denormals():
        return job(check)


def _failures(futures: list[Future]) -> list[BaseException]:
    """The errors of the finished jobs that failed by themselves (not cancelled, in job order)."""
    done = [f for f in futures if f.done() and not f.cancelled()]
    return [err for f in done if (err := f.exception()) is not None and not isinstance(err, Cancelled)]
