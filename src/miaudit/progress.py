"""Progress bars (rich) that the library and CLI share; silent when disabled."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressBoard:
    """One rich Progress shown on stderr; ``task(...)`` yields an ``update(done)`` callback."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None

    def __enter__(self) -> ProgressBoard:
        if self.enabled:
            self._progress = Progress(TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yield update(done) setting the bar to ``done`` of ``total``; completes it on exit."""
        if self._progress is None:
            yield lambda done: None
            return
        task_id = self._progress.add_task(description, total=max(total, 1))
        try:
            yield lambda done: self._progress.update(task_id, completed=done) if self._progress else None
        finally:
            if self._progress is not None:
                self._progress.update(task_id, completed=max(total, 1))
