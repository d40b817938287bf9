"""The gap attack, label-only: a record is called a member when the target labels it correctly
(Yeom et al. 2018; the label-only baseline of Choquette-Choo et al. 2021). Its AUC is
1/2 + (train accuracy - test accuracy) / 2 on a balanced audit."""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.reference_ratio import oracle_for
from miaudit.signals.inputs import AttackInputs


def label_only_gap(inputs: AttackInputs, seed: int = 0) -> AttackScores:
    """Score 1.0 where the target's label equals the true label, else 0.0; decision = correct.
    One label query per record (seed unused: nothing is random)."""
    oracle = oracle_for(inputs, "label-only-gap", budget=inputs.n_records)
    correct = oracle.predict(inputs.records) == np.asarray(inputs.labels)
    return AttackScores(correct.astype(np.float64), correct, 0.5, queries=oracle.queries)
