"""The CNN target names (no torch): the presets and ``cnn-spec:<layers>`` (layer lists in cnn_spec.py)."""
from __future__ import annotations

SPEC_PREFIX = "cnn-spec:"
PRESETS = ("cnn", "small-cnn", "mnist-cnn")
DROPOUT_PRESETS = ("cnn", "small-cnn")  # the torch nets (nets.py) with dropout layers; the others are layer lists


def is_cnn_name(name: str) -> bool:
    """True for the CNN presets and for ``cnn-spec:...`` targets."""
    return name in PRESETS or name.startswith(SPEC_PREFIX)
