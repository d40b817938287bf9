"""What every attack reads: the signal matrix (AttackInputs).

Shapes: N audited records, K reference models, Q queries per record (Q=1 without augmentation),
C classes, Z population records (attacker data, member of no model), R records with known
membership for the reference models (in "pool" mode these are the N audited records themselves).
All logits are float32; models without logits give log-probabilities (same softmax).
"""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.errors import InputError

_LOCKS_LOCK = threading.Lock()


@dataclass(frozen=True)
class AttackInputs:
    """Model outputs on records, the signal matrix every attack maps to membership scores.

    target_logits:     [N, Q, C] the audited model on the audited records.
    labels:            [N] int true labels of the audited records.
    reference_logits:  [K, N, Q, C] each reference model on the audited records.
    reference_in:      [K, N] bool, True where record n was in model k's training set
                       (all False when the references were trained on attacker data only).
    shadow_logits:     [K, R, Q, C] each reference model on records whose membership the attacker knows.
    shadow_in:         [K, R] bool membership of those records in each reference model.
    shadow_labels:     [R] int labels of those records.
    population_target_logits:    [Z, Q, C] the audited model on population records.
    population_reference_logits: [K, Z, Q, C] the reference models on population records.
    population_labels: [Z] int.
    record_ids:        int64 [N] distinct stable identity of each audited record (e.g. its dataset
                       index), or None: positions. Attacks that subsample records draw them by
                       identity, so permuting the records permutes the scores.
    shadow_ids:        int64 [R] the same for the shadow records (in pool mode the audited records'
                       ids), or None: positions.

    For attacks that query models themselves (label-only, white-box), None when absent (e.g. an
    audit of precomputed predictions); the attack specs say which attacks need them:
    records:           [N, *feature_shape] float32 the audited records as the models see them.
    target_model:      the audited model (a Target: ``logits(x)``; a TorchTarget / StackTarget also
                       opens its parameters). Label-only attacks reach it only through
                       :class:`miaudit.attacks.label_oracle.LabelOracle`.
    reference_models:  the K reference models (a ReferenceModels: ``logits(x) -> [K, m, C]``), the
                       same models as ``reference_logits``; the attacker's own, queried freely.
    population_records: [Z, *feature_shape] float32 the population records as the models see them
                       (QMIA regresses the target's score on them), or None.
    """

    target_logits: np.ndarray
    labels: np.ndarray
    reference_logits: np.ndarray
    reference_in: np.ndarray
    shadow_logits: np.ndarray
    shadow_in: np.ndarray
    shadow_labels: np.ndarray
    population_target_logits: np.ndarray
    population_reference_logits: np.ndarray
    population_labels: np.ndarray
    record_ids: np.ndarray | None = None
    shadow_ids: np.ndarray | None = None
    records: np.ndarray | None = None
    target_model: Any = field(default=None, repr=False, compare=False)
    reference_models: Any = field(default=None, repr=False, compare=False)
    population_records: np.ndarray | None = field(default=None, repr=False, compare=False)
    _shared: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """What several attacks derive from these inputs alike (population neighbours), computed once."""

    def __post_init__(self) -> None:
        n, q, c = self.target_logits.shape
        k = self.reference_logits.shape[0]
        checks = {
            "labels": (self.labels.shape, (n,)),
            "reference_logits": (self.reference_logits.shape, (k, n, q, c)),
            "reference_in": (self.reference_in.shape, (k, n)),
            "shadow_in": (self.shadow_in.shape, (k, self.shadow_logits.shape[1])),
            "shadow_labels": (self.shadow_labels.shape, (self.shadow_logits.shape[1],)),
            "population_reference_logits": (
                self.population_reference_logits.shape,
                (k, self.population_target_logits.shape[0], q, c),
            ),
            "population_labels": (self.population_labels.shape, (self.population_target_logits.shape[0],)),
        }
        for name, (got, want) in checks.items():
            if tuple(got) != tuple(want):
                raise InputError(f"attack inputs: {name} has shape {tuple(got)}, expected {tuple(want)}")
        for name, ids, size in (("record_ids", self.record_ids, n), ("shadow_ids", self.shadow_ids,
                                                                     self.shadow_logits.shape[1])):
            if ids is None:
                continue
            ids = np.asarray(ids)
            if ids.shape != (size,) or not np.issubdtype(ids.dtype, np.integer):
                raise InputError(f"attack inputs: {name} must be integers of shape ({size},), "
                                 f"got {ids.dtype} {ids.shape}")
            if len(np.unique(ids)) != size:
                raise InputError(f"attack inputs: {name} must be distinct")
            object.__setattr__(self, name, ids.astype(np.int64, copy=False))
        if self.records is not None and len(self.records) != n:
            raise InputError(f"attack inputs: records has {len(self.records)} rows for {n} audited records")
        if self.population_records is not None and len(self.population_records) != len(self.population_labels):
            raise InputError(f"attack inputs: population_records has {len(self.population_records)} rows for "
                             f"{len(self.population_labels)} population records")
        if self.reference_models is not None and self.reference_models.n_models != k:
            raise InputError(f"attack inputs: {self.reference_models.n_models} reference models for "
                             f"{k} reference logits")

    @property
    def n_records(self) -> int:
        return int(self.target_logits.shape[0])

    @property
    def n_reference(self) -> int:
        return int(self.reference_logits.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.target_logits.shape[2])

    @property
    def has_in_models(self) -> bool:
        """True when some reference model trained on some audited record (online attacks possible)."""
        return bool(self.reference_in.any())

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the shared results (they hold locks and are recomputed on demand)."""
        return {**self.__dict__, "_shared": {}}

    def shared(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """compute(), once per inputs and key: what several attacks derive alike (population
        neighbours, LiRA's signals). Thread-safe: attacks run concurrently on the same inputs."""
        with _LOCKS_LOCK:  # one lock per key: other keys are computed meanwhile
            lock = self._shared.setdefault(("lock", key), threading.Lock())
        with lock:
            if key not in self._shared:
                self._shared[key] = compute()
            return self._shared[key]

    @property
    def shadow_records_are_audited(self) -> bool:
        """Pool mode: the records with known reference membership are the audited records."""
        if self.shadow_logits is self.reference_logits and self.shadow_labels is self.labels:
            return True
        return self.shared(("shadow_records_are_audited",), lambda: (
            self.shadow_logits.shape == self.reference_logits.shape
            and np.array_equal(self.shadow_labels, self.labels)
            and np.array_equal(self.shadow_logits, self.reference_logits)))

    def permuted(self, order: np.ndarray) -> AttackInputs:
        """The same inputs with the audited records in ``order`` (int [N]); the shadow records move
        with them when they are the audited records (pool mode). Scores of any attack follow."""
        ids = np.arange(self.n_records) if self.record_ids is None else self.record_ids
        changes = dict(target_logits=self.target_logits[order], labels=self.labels[order],
                       reference_logits=self.reference_logits[:, order], reference_in=self.reference_in[:, order],
                       record_ids=ids[order])
        if self.records is not None:
            changes["records"] = self.records[order]
        if self.shadow_records_are_audited:
            changes.update(shadow_logits=changes["reference_logits"], shadow_in=changes["reference_in"],
                           shadow_labels=changes["labels"], shadow_ids=ids[order])
        return dataclasses.replace(self, **changes)

    def select_references(self, index) -> AttackInputs:
        """The same inputs restricted to reference models ``index`` (a slice or int array over K)."""
        refs = None if self.reference_models is None else select_models(self.reference_models, index)
        return AttackInputs(self.target_logits, self.labels, self.reference_logits[index],
                            self.reference_in[index], self.shadow_logits[index], self.shadow_in[index],
                            self.shadow_labels, self.population_target_logits,
                            self.population_reference_logits[index], self.population_labels,
                            self.record_ids, self.shadow_ids, self.records, self.target_model, refs,
                            self.population_records)

    @classmethod
    def target_only(cls, target_logits: np.ndarray, labels: np.ndarray,
                    population_logits: np.ndarray | None = None,
                    population_labels: np.ndarray | None = None,
                    record_ids: np.ndarray | None = None, records: np.ndarray | None = None,
                    target_model: Any = None, population_records: np.ndarray | None = None) -> AttackInputs:
        """Inputs with no reference models (K=0): for threshold, population, label-only and white-box
        attacks.

        target_logits may be [N, C] or [N, Q, C]; record_ids, records, target_model, population_records as
        for the class.
        """
        t = target_logits if target_logits.ndim == 3 else target_logits[:, None, :]
        n, q, c = t.shape
        if population_logits is None:
            p = np.zeros((0, q, c), np.float32)
            pl = np.zeros(0, np.int64)
        else:
            p = population_logits if population_logits.ndim == 3 else population_logits[:, None, :]
            pl = population_labels
        return cls(t, labels, np.zeros((0, n, q, c), np.float32), np.zeros((0, n), bool),
                   np.zeros((0, 0, q, c), np.float32), np.zeros((0, 0), bool), np.zeros(0, np.int64),
                   p, np.zeros((0, len(p), q, c), np.float32), pl, record_ids, np.zeros(0, np.int64),
                   records, target_model, population_records=population_records)


def select_models(models: Any, index) -> Any:
    """The reference models ``index`` (a slice or int array over K) of a ReferenceModels."""
    import dataclasses as dc

    chosen = np.arange(models.n_models)[index]
    if hasattr(models.models, "select"):  # an MLPStack or CNNStack
        part = models.models.select([int(k) for k in np.atleast_1d(chosen)])
    else:
        part = [models.models[int(k)] for k in np.atleast_1d(chosen)]
    flops = None if models.model_flops is None else models.model_flops[np.atleast_1d(chosen)]
    return dc.replace(models, models=part, model_flops=flops)
