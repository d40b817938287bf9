"""What every target read from a model file shares: batched inference on (flattened) records,
logits from the file's output kind, the load-time check on probe records, and pickling by
reloading the file."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from miaudit.errors import InputError
from miaudit.models.contract import (
    as_logits,
    check_output_shape,
    one_line,
    probe_records,
    resolve_output,
    run_batched,
)
from miaudit.models.wrappers import TargetOutputs


class FileTarget(TargetOutputs):
    """A model file behind the Target protocol; subclasses give ``_run(x) -> [n, C]`` raw outputs.

    x float32 [n, *feature_shape] is flattened to [n, d] first when ``flatten``; with fixed_batch the
    model receives batches of exactly that size. ``output_kind``: "logits" or "probabilities".
    """

    batch_size = 4096
    _retry = True  # raw_outputs retries a failed run in smaller batches

    def __init__(self, name: str, n_classes: int, *, flatten: bool = False, fixed_batch: int | None = None,
                 output_kind: str = "logits", reload: tuple[Callable, tuple] | None = None) -> None:
        self.name, self.n_classes = name, int(n_classes)
        self.flatten, self.fixed_batch, self.output_kind = flatten, fixed_batch, output_kind
        self._reload = reload

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def raw_outputs(self, x: np.ndarray) -> np.ndarray:
        """The model's own outputs [n, C] (logits or probabilities, per output_kind)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.flatten:
            x = x.reshape(len(x), -1)
        try:
            return run_batched(self._run, x, self.batch_size, self.fixed_batch)
        except InputError:
            raise
        except Exception as err:  # the model's own failure, e.g. on batches larger than it was built for
            if not self._retry or self.fixed_batch or len(x) <= 1:
                raise
            return self._in_smaller_batches(x, err)

    def _in_smaller_batches(self, x: np.ndarray, err: Exception) -> np.ndarray:
        """raw_outputs in batches halved until the model runs them (then kept at that size, with one
        warning line); InputError naming the file when it fails even on one record at a time."""
        size = min(self.batch_size, len(x)) // 2
        while size >= 1:
            try:
                out = run_batched(self._run, x, size, None)
            except Exception as smaller_err:
                err, size = smaller_err, size // 2
                continue
            warnings.warn(f"{self.name}: the model fails on batches of {min(self.batch_size, len(x))} records "
                          f"({one_line(err)}); sending it batches of {size}", RuntimeWarning, stacklevel=2)
            self.batch_size = size
            return out
        raise InputError(f"{self.name}: the model fails on {len(x)} records, in batches of any size down to one "
                         f"({one_line(err)})")

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 [n, C]: the logits, or log-probabilities for a probability output."""
        return as_logits(self.raw_outputs(x), self.output_kind)

    def check(self, feature_shape: Sequence[int], output: str, field: str, probe: np.ndarray | None = None) -> None:
        """Run the probe records (given, or ``probe_records(feature_shape)``) and settle output_kind
        from ``output`` ("auto" | "logits" | "probabilities"); InputError on a mismatch."""
        x = probe_records(feature_shape) if probe is None else np.asarray(probe, np.float32)
        self._retry = False  # a probe failure is the loader's to name
        try:
            values = check_output_shape(self.raw_outputs(x), len(x), self.n_classes, field)
        finally:
            self._retry = True
        self.output_kind = resolve_output(values, output, field)

    def __reduce__(self):
        if self._reload is None:
            raise TypeError(f"{type(self).__name__} {self.name!r} was not loaded from a file and cannot be pickled")
        loader, args = self._reload
        return loader, (*args, self.output_kind)
