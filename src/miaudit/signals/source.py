"""SignalSource: the signal matrix as the attacks stage reads it, wherever it lives.

Three sources: :class:`MemorySource` (an in-memory AttackInputs: the audit's own signals),
:class:`StoreSource` (a chunked :class:`~miaudit.signals.store.SignalStore` on disk, ``--signal-chunk``:
attacks stream over its record chunks) and ``targets.predictions.PredictionsSource`` (a predictions file:
a MemorySource with that file's runnability rules).
N audited records, K reference models, Z population records. A source holds nothing that depends on
the audited records' membership: that truth stays with the flow that scores the attacks.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from miaudit.signals.inputs import AttackInputs
from miaudit.signals.offer import NeedsOffer, SourceOffer
from miaudit.signals.store import SignalStore


class SignalSource(Protocol):
    """The attacks stage's input. labels int64 [N]; record_ids int64 [N] (None: positions);
    target_correct bool [N] (the target's top class is the label, on the record itself);
    inputs: the in-memory AttackInputs, or None; store: the SignalStore of chunk-wise attacks, or None."""

    labels: np.ndarray
    record_ids: np.ndarray | None
    target_correct: np.ndarray
    inputs: AttackInputs | None
    store: SignalStore | None

    @property
    def offer(self) -> SourceOffer: ...

    def unmet_need(self, spec: NeedsOffer) -> str | None:
        """Why ``spec`` cannot run on this source ("name: needs ..."), or None when it can."""

    def describe(self) -> dict:
        """Membership-independent metadata: the results.json "signals" block ({} in memory)."""


class MemorySource:
    """The signal matrix in memory (AttackInputs); every attack runs on it, in threads."""

    store = None

    def __init__(self, inputs: AttackInputs, target_correct: np.ndarray | None = None) -> None:
        self.inputs = inputs
        self.labels = inputs.labels
        self.record_ids = inputs.record_ids
        # query 0 is the record itself
        self.target_correct = (inputs.target_logits[:, 0].argmax(1) == inputs.labels if target_correct is None
                               else target_correct)

    @property
    def offer(self) -> SourceOffer:
        return SourceOffer.of_inputs(self.inputs)

    def unmet_need(self, spec: NeedsOffer) -> str | None:
        return spec.unmet_need_in(self.offer)

    def describe(self) -> dict:
        return {}


class StoreSource:
    """The signal matrix in a SignalStore (pool mode, Q = 1); only the attacks of
    :data:`miaudit.attacks.streamed.STREAMED` run on it, one record chunk at a time. kept: the store stays
    on disk after the audit (False: a temporary directory)."""

    inputs = None

    def __init__(self, store: SignalStore, target_correct: np.ndarray, kept: bool = True) -> None:
        self.store, self.kept = store, kept
        self.labels = store.labels()
        self.record_ids = store.record_ids()
        self.target_correct = target_correct
        k = store.shape[0]  # IN models: read the masks chunk by chunk, never all K x N at once
        has_in = bool(k) and any(store.reference_in(a, b).any() for a, b in store.blocks())
        from miaudit.models.wrappers import white_box_available  # torch: off the import path of signals/

        records = store.records is not None and store.population_records is not None
        self.offer = SourceOffer(k, has_in, store.n_population, has_model=records and store.target_model is not None,
                                 white_box=white_box_available(store.target_model),
                                 has_reference_models=store.reference_models is not None, has_records=records,
                                 streamed=True)

    def unmet_need(self, spec: NeedsOffer) -> str | None:
        return spec.unmet_need_in(self.offer)

    def describe(self) -> dict:
        return {**self.store.describe(), "kept": self.kept}
