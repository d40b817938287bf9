"""The data-augmentation label-only attack of Choquette-Choo et al. (2021), "Label-Only Membership
Inference Attacks": members keep their correct label under small changes more often than
non-members. Score = fraction of the augmented copies of a record (the record itself included)
that the target labels correctly.

Copies: images [n, c, h, w]: the record, its mirror image, shifts by 1 and 2 pixels in each of the
four directions, and rotations by +-ROTATION_DEGREES (pixels brought in take the records' smallest
value, the background); tabular [n, d]: the record, then ``copies - 1`` random copies in which each
feature taking only two values among the audited records flips to its other value with probability
``flip`` and every other feature moves by Gaussian noise of ``noise`` times its standard deviation.
Random copies are drawn record by record in the order of the records' identities (seeded).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field
from scipy import ndimage

from miaudit.attacks.inputs import AttackScores
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

ROTATION_DEGREES = (8.0, 15.0)
SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0), (0, 2), (0, -2), (2, 0), (-2, 0))


class AugmentationParams(AttackParams):
    """Parameters of label-only-augmentation and its -lira variant (tabular copies; images: fixed flips,
    shifts and rotations)."""

    copies: int = Field(16, ge=1, description="tabular copies per record, the record itself included")
    flip: float = Field(0.05, ge=0, le=1, description="tabular: chance of flipping each 0/1 feature")
    noise: float = Field(0.1, ge=0, description="tabular: Gaussian noise on the other features, in their std")


def augmented_copies(x: np.ndarray, seed: int, order: np.ndarray, copies: int = 16, flip: float = 0.05,
                     noise: float = 0.1) -> list[np.ndarray]:
    """The copies of x [n, ...] (module docstring), each shaped like x; the first is x itself.
    order: the identity order of the records (random copies drawn in it)."""
    if not 0.0 <= flip <= 1.0 or noise < 0 or copies < 1:
        raise InputError(f"label-only-augmentation: needs copies >= 1, flip in [0, 1], noise >= 0; "
                         f"got {copies}, {flip}, {noise}")
    x = np.asarray(x, np.float32)
    if x.ndim == 4:
        return _image_copies(x)
    flat = x.reshape(len(x), -1)
    rng = np.random.default_rng([seed, 41])
    two_valued, other = _two_valued_columns(flat)
    std = flat[order].std(axis=0)  # in identity order: the same bits whatever the records' order
    out = [x]
    for _ in range(copies - 1):
        flips = np.empty(flat.shape, bool)
        flips[order] = rng.random(flat.shape) < flip
        moves = np.empty(flat.shape, np.float32)
        moves[order] = rng.standard_normal(flat.shape).astype(np.float32)
        copy = flat + noise * std * moves * ~two_valued
        copy = np.where(flips & two_valued, other, copy)
        out.append(copy.reshape(x.shape).astype(np.float32))
    return out


def _two_valued_columns(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bool [d] columns with exactly two distinct values, float32 [n, d] each entry's other value
    in such columns, the entry itself elsewhere)."""
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    two = (lo < hi) & ((flat == lo) | (flat == hi)).all(axis=0)
    other = np.where(flat == lo, hi, lo).astype(np.float32)
    return two, np.where(two, other, flat)


def _image_copies(x: np.ndarray) -> list[np.ndarray]:
    background = float(x.min()) if x.size else 0.0
    out = [x, np.ascontiguousarray(x[..., ::-1])]
    for dy, dx in SHIFTS:
        out.append(_shift(x, dy, dx, background))
    for angle in ROTATION_DEGREES:
        for sign in (1, -1):
            out.append(ndimage.rotate(x, sign * angle, axes=(-1, -2), reshape=False, order=1, mode="constant",
                                      cval=background).astype(np.float32))
    return out


def _shift(x: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    out = np.full_like(x, fill)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def label_only_augmentation(inputs: AttackInputs, seed: int = 0, copies: int = 16, flip: float = 0.05,
                            noise: float = 0.1) -> AttackScores:
    """Score = fraction of augmented copies labelled correctly, in [0, 1]; decision None.
    Queries: N x the number of copies (14 for images)."""
    views = _views(inputs, seed, copies, flip, noise)
    oracle = oracle_for(inputs, "label-only-augmentation", budget=len(views) * inputs.n_records)
    labels = np.asarray(inputs.labels)
    correct = np.mean([oracle.predict(v) == labels for v in views], axis=0)
    return AttackScores(correct, params={"copies": len(views)}, queries=oracle.queries)


def label_only_augmentation_lira(inputs: AttackInputs, seed: int = 0, copies: int = 16, flip: float = 0.05,
                                 noise: float = 0.1) -> AttackScores:
    """label_only_augmentation's fraction scored against the same fraction under each reference
    model, per record (:mod:`miaudit.attacks.reference_ratio`); the same copies for every model."""
    name = "label-only-augmentation-lira"
    views = _views(inputs, seed, copies, flip, noise)
    if inputs.reference_models is None:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    oracle = oracle_for(inputs, name, budget=len(views) * inputs.n_records)
    labels = np.asarray(inputs.labels)
    target = np.mean([oracle.predict(v) == labels for v in views], axis=0)
    reference = np.mean([reference_labels(inputs, v) == labels[None] for v in views], axis=0)
    return reference_ratio_scores(stable_fraction(target, len(views)), stable_fraction(reference, len(views)),
                                  inputs.reference_in, name, {"copies": len(views)}, oracle.queries)


def stable_fraction(fraction: np.ndarray, copies: int) -> np.ndarray:
    """The log-odds of a fraction of ``copies`` with half a count added to each side (finite)."""
    hits = fraction * copies
    return np.log((hits + 0.5) / (copies - hits + 0.5))


def _views(inputs: AttackInputs, seed: int, copies: int, flip: float, noise: float) -> list[np.ndarray]:
    x = require_model(inputs, "label-only-augmentation")
    return augmented_copies(x, seed, identity_order(inputs.record_ids, inputs.n_records), copies, flip, noise)
