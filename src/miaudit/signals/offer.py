"""SourceOffer: what a source of signals offers the attacks, the one thing their runnability check
(:meth:`miaudit.attacks.registry.AttackSpec.unmet_need_in`) reads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from miaudit.signals.inputs import AttackInputs


@dataclass(frozen=True)
class SourceOffer:
    """What a source of signals offers the attacks (:meth:`AttackSpec.unmet_need_in` reads it).

    n_references: reference models K; has_in_models: some trained on the audited records;
    n_population: population records Z; has_model: the audited model can be queried on the audited
    records; white_box: its parameters are readable (a torch target); has_reference_models: the
    reference models themselves, not only their outputs; has_records: the audited and population
    records' features; streamed: the signals are read chunk by chunk from disk (--signal-chunk).
    """

    n_references: int
    has_in_models: bool
    n_population: int
    has_model: bool = False
    white_box: bool = False
    has_reference_models: bool = False
    has_records: bool = False
    streamed: bool = False

    @classmethod
    def of_inputs(cls, inputs: AttackInputs) -> SourceOffer:
        """What a signal matrix in memory holds."""
        from miaudit.models.wrappers import white_box_available  # torch: off the import path of signals/

        return cls(inputs.n_reference, inputs.has_in_models, int(inputs.population_labels.shape[0]),
                   has_model=inputs.target_model is not None and inputs.records is not None,
                   white_box=white_box_available(inputs.target_model),
                   has_reference_models=inputs.reference_models is not None,
                   has_records=inputs.records is not None and inputs.population_records is not None)


class NeedsOffer(Protocol):
    """Anything that says why it cannot run on an offer (an AttackSpec), or None when it can."""

    name: str

    def unmet_need_in(self, offer: SourceOffer) -> str | None: ...
