"""Noise robustness, the cheaper stand-in for the boundary distance in Choquette-Choo et al. (2021):
a record far from the decision boundary keeps its label under larger random noise. Score = the
fraction of noisy copies labelled correctly, over ``per_level`` copies at each of the noise sizes
``levels`` (times the standard deviation of the audited records' features, all features pooled):
an estimate of the area under the record's robustness curve.

The noise is drawn record by record in the order of the records' identities (seeded), and the same
noisy copies go to the target and to every reference model.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field, PositiveFloat, field_validator

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.label_only_augmentation import stable_fraction
from miaudit.attacks.params import AttackParams
from miaudit.attacks.reference_ratio import (
    oracle_for,
    reference_labels,
    reference_ratio_scores,
    require_model,
)
from miaudit.attacks.sampling import identity_order
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

LEVELS = (0.1, 0.2, 0.4, 0.8, 1.6)
PER_LEVEL = 10


class NoiseParams(AttackParams):
    """Parameters of label-only-noise and its -lira variant."""

    levels: tuple[PositiveFloat, ...] = Field(LEVELS, min_length=1, description="noise sizes, each > 0, in "
                                                                                "units of the pooled feature std")
    per_level: int = Field(PER_LEVEL, ge=1, description="noisy copies per record at each level")

    @field_validator("levels", mode="before")
    @classmethod
    def _split(cls, v):
        return [float(x) for x in v.split(",")] if isinstance(v, str) else v


def noisy_copies(x: np.ndarray, seed: int, order: np.ndarray, levels=LEVELS, per_level: int = PER_LEVEL):
    """Yield float32 copies of x [n, ...] with Gaussian noise: per_level copies at each level (in
    units of the pooled feature standard deviation), drawn in the identity order ``order``."""
    levels = tuple(float(v) for v in levels)
    if not levels or min(levels) <= 0 or per_level < 1:
        raise InputError(f"label-only-noise: needs positive levels and per_level >= 1, got {levels}, {per_level}")
    x = np.asarray(x, np.float32)
    scale = float(x[order].std()) or 1.0
    rng = np.random.default_rng([seed, 43])
    for level in levels:
        for _ in range(per_level):
            draw = np.empty_like(x)
            draw[order] = rng.standard_normal(x.shape, np.float32)
            yield x + np.float32(level * scale) * draw


def label_only_noise(inputs: AttackInputs, seed: int = 0, levels=LEVELS, per_level: int = PER_LEVEL) -> AttackScores:
    """Score = fraction of noisy copies labelled correctly, in [0, 1]; decision None.
    Queries: N x len(levels) x per_level (50 by default)."""
    x = require_model(inputs, "label-only-noise")
    n_copies = len(tuple(levels)) * per_level
    oracle = oracle_for(inputs, "label-only-noise", budget=n_copies * inputs.n_records)
    labels = np.asarray(inputs.labels)
    order = identity_order(inputs.record_ids, inputs.n_records)
    copies = noisy_copies(x, seed, order, levels, per_level)
    hits = sum((oracle.predict(v) == labels).astype(np.float64) for v in copies)
    return AttackScores(hits / n_copies, params={"copies": n_copies}, queries=oracle.queries)


def label_only_noise_lira(inputs: AttackInputs, seed: int = 0, levels=LEVELS,
                          per_level: int = PER_LEVEL) -> AttackScores:
    """label_only_noise's fraction scored against the same fraction under each reference model,
    per record (:mod:`miaudit.attacks.reference_ratio`)."""
    name = "label-only-noise-lira"
    x = require_model(inputs, name)
    if inputs.reference_models is None:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    n_copies = len(tuple(levels)) * per_level
    oracle = oracle_for(inputs, name, budget=n_copies * inputs.n_records)
    labels = np.asarray(inputs.labels)
    order = identity_order(inputs.record_ids, inputs.n_records)
    target = np.zeros(inputs.n_records)
    reference = np.zeros((inputs.n_reference, inputs.n_records))
    for v in noisy_copies(x, seed, order, levels, per_level):
        target += oracle.predict(v) == labels
        reference += reference_labels(inputs, v) == labels[None]
    return reference_ratio_scores(stable_fraction(target / n_copies, n_copies),
                                  stable_fraction(reference / n_copies, n_copies), inputs.reference_in, name,
                                  {"copies": n_copies}, oracle.queries)
