"""What an attack returns: AttackScores, its verdict on the N audited records (what it reads, the
signal matrix AttackInputs, is in :mod:`miaudit.signals.inputs`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AttackScores:
    """One attack's verdict on the N audited records.

    scores:   float64 [N], higher means "more likely a member".
    decision: bool [N] hard member / non-member call at the attack's own threshold, chosen without
              looking at the true membership of the audited records (e.g. calibrated on reference
              models, see :mod:`miaudit.metrics.calibration`). None means "no natural threshold":
              metrics calls the top n_members records members, the audit's actual prior.
    threshold: the score threshold behind ``decision`` (None with decision None).
    params: settings the attack chose for itself from the data (e.g. a fitted temperature), for
            the report; JSON-friendly scalars.
    queries: records the attack sent to the audited model itself (label-only attacks), None for
             attacks that read only the precomputed signals.
    """

    scores: np.ndarray
    decision: np.ndarray | None = None
    threshold: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    queries: int | None = None

    def __post_init__(self) -> None:
        if self.scores.ndim != 1:
            raise ValueError(f"scores must be 1-D, got shape {self.scores.shape}")
        if not np.all(np.isfinite(self.scores)):
            raise ValueError("attack produced NaN or inf scores")
        if self.decision is not None and self.decision.shape != self.scores.shape:
            raise ValueError("decision and scores differ in shape")
