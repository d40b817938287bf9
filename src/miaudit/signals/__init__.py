"""The signal stage: every model's outputs on the audited, shadow and population records (the signal matrix).

functions.py: per-record signals from logits (loss, confidence, entropy, ...); matrix.py: the signal matrix in
memory (AttackInputs); store.py: the signal matrix in a chunked Zarr store (``--signal-chunk``).
The signal functions are re-exported here (``from miaudit.signals import loss``); modules of the package import
from the submodules, never from this file.
"""
from miaudit.signals.functions import (
    entropy,
    logit_scaled_confidence,
    loss,
    max_confidence,
    modified_entropy,
    probabilities,
    tempered_scaled_confidence,
    true_class_confidence,
)

__all__ = ["entropy", "logit_scaled_confidence", "loss", "max_confidence", "modified_entropy", "probabilities",
           "tempered_scaled_confidence", "true_class_confidence"]
