"""Will an audit fit in memory? An estimate from the record counts, checked before any training."""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from miaudit.errors import InputError

_FLOAT32 = 4
_ADAM_COPIES = 4  # weights, gradients and Adam's two moments of each model in the stack in flight


@dataclass(frozen=True)
class AuditSize:
    """The shapes that decide an audit's memory.

    k: reference models; records: N audited + Z population + R shadow-training records whose
    logits every model produces; queries Q; classes C; parameters: per model (0 when not
    estimated, as for scikit-learn models); chunk: models trained at once.
    """

    k: int
    records: int
    queries: int
    classes: int
    parameters: int = 0
    chunk: int = 1

    def per_model_bytes(self) -> int:
        """Signals [records, Q, C] float32 and the kept weights of one model."""
        return _FLOAT32 * (self.records * self.queries * self.classes + self.parameters)

    def total_bytes(self) -> int:
        """The target and K reference models' signals and weights, plus one training chunk's state."""
        training = _FLOAT32 * _ADAM_COPIES * self.parameters * min(self.chunk, self.k + 1)
        return (self.k + 1) * self.per_model_bytes() + training


def mlp_parameters(n_features: int, hidden: tuple[int, ...], n_classes: int) -> int:
    """Weights and biases of an MLP n_features -> hidden... -> n_classes."""
    widths = (n_features, *hidden, n_classes)
    return sum(a * b + b for a, b in pairwise(widths))


def available_memory() -> int | None:
    """Bytes this process can still allocate: the smaller of MemAvailable and the cgroup's headroom
    (None where neither is known)."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        cap = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cap != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            limits.append(int(cap) - used)
    except (OSError, ValueError):
        pass
    if not limits and hasattr(os, "sysconf"):
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return max(0, min(limits)) if limits else None


def check_audit_size(size: AuditSize, dataset: str, available: int | None = None) -> None:
    """InputError when the audit's estimated memory exceeds what is available, naming the setting to lower."""
    free = available_memory() if available is None else available
    need = size.total_bytes()
    if free is None or need <= free:
        return
    per_model = max(1, size.per_model_bytes())
    training = need - (size.k + 1) * size.per_model_bytes()
    fits = min(size.k, max(0, (free - training) // per_model - 1))
    weights = f" and {size.parameters:,} weights per model" if size.parameters else ""
    if fits >= 1:
        field, advice = "--reference-models", f"at most {fits} reference models fit"
    elif size.parameters > size.records * size.queries * size.classes:
        field, advice = "--hidden", "use narrower hidden layers"
    else:
        field, advice = "--population", "use fewer --population records or --queries"
    raise InputError(
        f"{field}: {size.k} reference models on {dataset} need about {_gb(need)} (signals: {size.k + 1} models x "
        f"{size.records:,} records x {size.queries} queries x {size.classes} classes float32{weights}), more "
        f"than the {_gb(free)} of memory available; {advice}")


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"
