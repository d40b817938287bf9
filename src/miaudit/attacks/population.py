"""Attack-P, the population attack of Ye et al. (2022), "Enhanced Membership Inference Attacks
against Machine Learning Models".

No reference models: the target's loss on an audited record is compared with the target's losses
on population records (attacker data the target did not train on). score(x) = fraction of
population losses >= loss(x), i.e. the record's loss percentile counted from the top; a record the
target fits better than most non-members scores close to 1.

Decision: with ``alpha=None`` (default) none (decision None: metrics call the top n_members records
members, the audit's actual prior); with ``alpha`` in (0, 1) the paper's rule, member when the loss is below the
population's alpha-quantile (score > 1 - alpha), which fixes the false-positive rate near alpha.
Losses are cross-entropy averaged over queries.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.params import AttackParams
from miaudit.errors import InputError
from miaudit.signals.functions import loss
from miaudit.signals.inputs import AttackInputs


class PopulationParams(AttackParams):
    """Parameters of population (Attack-P)."""

    alpha: float | None = Field(None, gt=0, lt=1, description="member when the loss is below the population's "
                                                              "alpha-quantile (None: no decision rule)")


def population(inputs: AttackInputs, alpha: float | None = None) -> AttackScores:
    """Attack-P scores in [0, 1] for the N audited records (see module docstring for the decision)."""
    n_population = int(inputs.population_labels.shape[0])
    if n_population < 1:
        raise InputError("population: needs population records (attacker data no model trained on), got 0")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise InputError(f"population: alpha must lie in (0, 1), got {alpha}")
    record_loss = loss(inputs.target_logits, inputs.labels[:, None]).mean(axis=-1)  # [N]
    population_loss = np.sort(loss(inputs.population_target_logits, inputs.population_labels[:, None]).mean(axis=-1))
    at_least = n_population - np.searchsorted(population_loss, record_loss, side="left")
    scores = at_least / n_population
    if alpha is None:
        return AttackScores(scores)
    threshold = 1.0 - alpha
    return AttackScores(scores, scores > threshold, threshold)
