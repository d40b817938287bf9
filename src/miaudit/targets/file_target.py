"""What every target read from a model file shares: batched inference on (flattened) records,
logits from the file's output kind, the load-time check on probe records, and pickling by
reloading the file."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from miaudit.models.wrappers import _TargetOutputs
from miaudit.targets.contract import as_logits, check_output_shape, probe_records, resolve_output, run_batched


class FileTarget(_TargetOutputs):
    """A model file behind the Target protocol; subclasses give ``_run(x) -> [n, C]`` raw outputs.

    x float32 [n, *feature_shape] is flattened to [n, d] first when ``flatten``; with fixed_batch the
    model receives batches of exactly that size. ``output_kind``: "logits" or "probabilities".
    """

    batch_size = 4096

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
        return run_batched(self._run, x, self.batch_size, self.fixed_batch)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 [n, C]: the logits, or log-probabilities for a probability output."""
        return as_logits(self.raw_outputs(x), self.output_kind)

    def check(self, feature_shape: Sequence[int], output: str, field: str, probe: np.ndarray | None = None) -> None:
        """Run the probe records (given, or ``probe_records(feature_shape)``) and settle output_kind
        from ``output`` ("auto" | "logits" | "probabilities"); InputError on a mismatch."""
        x = probe_records(feature_shape) if probe is None else np.asarray(probe, np.float32)
        values = check_output_shape(self.raw_outputs(x), len(x), self.n_classes, field)
        self.output_kind = resolve_output(values, output, field)

    def __reduce__(self):
        if self._reload is None:
            raise TypeError(f"{type(self).__name__} {self.name!r} was not loaded from a file and cannot be pickled")
        loader, args = self._reload
        return loader, (*args, self.output_kind)
