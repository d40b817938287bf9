"""SignalSource: the signal matrix as the attacks stage reads it, wherever it lives.

Three sources: :class:`MemorySource` (an in-memory AttackInputs: the audit's own signals),
:class:`StoreSource` (a chunked :class:`~miaudit.signals.store.SignalStore` on disk, ``--signal-chunk``:
attacks stream over its record chunks) and :class:`PredictionsSource` (a predictions file as
``targets.predictions.load_predictions`` reads it: a MemorySource with that file's runnability rules).
N audited records, K reference models, Z population records. A source holds nothing that depends on
the audited records' membership: that truth stays with the flow that scores the attacks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from miaudit.attacks.inputs import AttackInputs
from miaudit.attacks.registry import AttackSpec
from miaudit.attacks.streamed import STREAMED
from miaudit.signals.store import SignalStore
from miaudit.targets.predictions import Predictions, unmet_need


@dataclass(frozen=True)
class Offer:
    """What a source can offer the attacks: K reference models, whether some trained on audited records
    (IN models), Z population records, whether the audited model can be queried (has_model) or read
    (has_white_box), whether the records themselves are there, and whether attacks stream over chunks."""

    n_references: int
    has_in_models: bool
    n_population: int
    has_model: bool = False
    has_white_box: bool = False
    has_records: bool = False
    streamed: bool = False


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
    def offer(self) -> Offer: ...

    def unmet_need(self, spec: AttackSpec) -> str | None:
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
    def offer(self) -> Offer:
        from miaudit.attacks.white_box import white_box_available  # torch: only when asked

        x = self.inputs
        has_model = x.target_model is not None and x.records is not None
        return Offer(x.n_reference, x.has_in_models, int(x.population_labels.shape[0]), has_model,
                     white_box_available(x.target_model), x.records is not None and x.population_records is not None)

    def unmet_need(self, spec: AttackSpec) -> str | None:
        return spec.unmet_need_of(self.inputs)

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
        self.offer = Offer(k, has_in, store.n_population, streamed=True)

    def unmet_need(self, spec: AttackSpec) -> str | None:
        if spec.name not in STREAMED:
            return f"{spec.name}: needs the signal matrix in memory (streamed: {', '.join(STREAMED)})"
        o = self.offer
        return spec.unmet_need(o.n_references, o.has_in_models, o.n_population)

    def describe(self) -> dict:
        return {**self.store.describe(), "kept": self.kept}


class PredictionsSource(MemorySource):
    """Precomputed outputs (``--predictions``): no model to query or read, no records; what else each
    attack needs is decided by :func:`miaudit.targets.predictions.unmet_need` (e.g. shokri-* masks)."""

    def __init__(self, predictions: Predictions) -> None:
        super().__init__(predictions.attack_inputs())
        self.predictions = predictions
        p = predictions
        self._offer = Offer(p.n_reference, bool(p.reference_in.any()), p.n_population)

    @property
    def offer(self) -> Offer:
        return self._offer

    def unmet_need(self, spec: AttackSpec) -> str | None:
        return unmet_need(self.predictions, spec)
