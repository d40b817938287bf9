"""Disjoint index sets: target members, target non-members, attacker data; reference-model masks."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.errors import InputError


def balanced_masks(n_models: int, n_records: int, seed: int) -> np.ndarray:
    """bool [n_models, n_records]: every record is IN for exactly half of the models.

    Each column holds floor(K/2) or ceil(K/2) Trues (exactly K/2 for even K) and each row holds
    about half of the records, so every model trains on ~n_records/2 records.
    """
    if n_models < 1:
        raise ValueError("balanced_masks needs at least one model")
    rng = np.random.default_rng(seed)
    # Column-wise permutations of a fixed half-true pattern, then balance rows by pairing models:
    # model 2j and 2j+1 take complementary halves, so rows have exactly n/2 (±1) and columns K/2.
    masks = np.zeros((n_models, n_records), dtype=bool)
    for j in range(0, n_models - 1, 2):
        perm = rng.permutation(n_records)
        half = perm[: n_records // 2]
        masks[j, half] = True
        masks[j + 1] = ~masks[j]
    if n_models % 2:
        masks[-1, rng.permutation(n_records)[: n_records // 2]] = True
    return masks


def keep_classes(ds: Dataset, classes: Sequence[int]) -> Dataset:
    """The records of ``classes`` only, relabelled in the given order: classes[i] -> i (names kept)."""
    wanted = list(classes)
    if not wanted:
        raise InputError("--keep-classes: no classes given")
    for c in wanted:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= c < ds.n_classes:
            raise InputError(f"--keep-classes: {c!r} is not a class of {ds.name} (classes 0..{ds.n_classes - 1})")
    if len(set(wanted)) != len(wanted):
        raise InputError(f"--keep-classes: a class is listed twice in {wanted}")
    relabel = np.full(ds.n_classes, -1, np.int64)
    relabel[wanted] = np.arange(len(wanted))
    keep = np.flatnonzero(relabel[ds.y] >= 0)
    if keep.size == 0:
        raise InputError(f"--keep-classes: {ds.name} has no records of classes {wanted}")
    names = tuple(ds.class_names[c] for c in wanted) if ds.class_names else ()
    return Dataset(ds.name, ds.x[keep], relabel[ds.y[keep]], len(wanted), names)


@dataclass(frozen=True)
class Splits:
    """Index sets into one dataset, int64 [size each]: target members, non-members, attacker data."""

    members: np.ndarray
    non_members: np.ndarray
    attacker: np.ndarray

    def check(self, n_records: int) -> None:
        """InputError if a set has duplicates or indices outside [0, n_records), or two sets overlap."""
        sets = {"members": self.members, "non-members": self.non_members, "attacker": self.attacker}
        for name, index in sets.items():
            if index.size and (index.min() < 0 or index.max() >= n_records):
                raise InputError(f"splits: {name} index out of range 0..{n_records - 1}")
            if np.unique(index).size != index.size:
                raise InputError(f"splits: {name} contain duplicate records")
        names = list(sets)
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                shared = np.intersect1d(sets[first], sets[second])
                if shared.size:
                    raise InputError(f"splits: {first} and {second} overlap ({shared.size} records, "
                                     f"e.g. record {shared[0]})")

    def summary(self) -> str:
        return (f"{self.members.size} members, {self.non_members.size} non-members, "
                f"{self.attacker.size} attacker records")


def make_splits(n_records: int, members: int, non_members: int | None = None, attacker: int | None = None,
                seed: int = 0, dataset_name: str = "the dataset") -> Splits:
    """Disjoint random index sets drawn from one ``np.random.default_rng(seed).permutation(n_records)``.

    Members are its first ``members`` entries, then ``non_members`` (default: as many as members), then
    ``attacker`` (default: every remaining record).
    """
    non_members = members if non_members is None else non_members
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1:
        raise InputError(f"--members: need at least 1 member, got {members!r}")
    if isinstance(non_members, bool) or not isinstance(non_members, (int, np.integer)) or non_members < 0:
        raise InputError(f"--non-members: must be a count >= 0, got {non_members!r}")
    if attacker is not None and (not isinstance(attacker, (int, np.integer)) or attacker < 0):
        raise InputError(f"--attacker: must be a count >= 0, got {attacker!r}")
    needed = members + non_members + (attacker or 0)
    if needed > n_records:
        parts = f"{members} members + {non_members} non-members"
        parts += f" + {attacker} attacker records" if attacker else ""
        raise InputError(f"--members: {parts} need {needed} records, {dataset_name} has {n_records}")
    order = np.random.default_rng(seed).permutation(n_records).astype(np.int64)
    end = n_records if attacker is None else needed
    first_out = members + non_members
    return Splits(order[:members], order[members:first_out], order[first_out:end])


def pool_splits(n_records: int, pool_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark protocol: (pool_index int64 [pool_size], member_mask bool [pool_size]).

    pool = first pool_size entries of default_rng(seed).permutation(n_records); members = a random
    half of the pool (pool_size // 2 records), drawn with default_rng(seed + 1).permutation(pool_size).
    """
    if not 2 <= pool_size <= n_records:
        raise InputError(f"pool size: need 2..{n_records} records, got {pool_size}")
    pool_index = np.random.default_rng(seed).permutation(n_records)[:pool_size].astype(np.int64)
    member_mask = np.zeros(pool_size, bool)
    member_mask[np.random.default_rng(seed + 1).permutation(pool_size)[: pool_size // 2]] = True
    return pool_index, member_mask


def user_splits(membership: np.ndarray, members: int | None = None, non_members: int | None = None,
                seed: int = 0) -> Splits:
    """Splits from the user's own membership bool [n]: every member (or a seeded random ``members`` of
    them), ``non_members`` non-members drawn at random (default: as many as the members, at most all),
    and the remaining non-members as attacker data (population records no model trained on)."""
    membership = np.asarray(membership, bool)
    rng = np.random.default_rng(seed)
    ins, outs = np.flatnonzero(membership), np.flatnonzero(~membership)
    if members is not None:
        if members > ins.size:
            raise InputError(f"--members: {members} requested, the user's split has {ins.size} members")
        ins = np.sort(rng.permutation(ins)[:members])
    wanted = min(ins.size, outs.size) if non_members is None else non_members
    if wanted > outs.size:
        raise InputError(f"--non-members: {wanted} requested, the user's split has {outs.size} non-members")
    outs = rng.permutation(outs)
    audited, attacker = np.sort(outs[:wanted]), np.sort(outs[wanted:])
    return Splits(ins.astype(np.int64), audited.astype(np.int64), attacker.astype(np.int64))


def shadow_sets(available: int, k: int, members: int, rng: np.random.Generator, notes: list[str]):
    """Index sets for K shadow models on attacker data: each trains on `members` records and
    keeps as many out. Disjoint slices when the data allows, else independent random draws.

    Returns (record indices [R], masks bool [K, R], indices of records no shadow trains on).
    """
    if k == 0:
        return np.zeros(0, np.int64), np.zeros((0, 0), bool), np.arange(available)
    per_model = 2 * members
    if available < 2:
        raise InputError("--reference-data attacker: no attacker data left for shadow models")
    if per_model > available:
        per_model = available
        notes.append(f"shadow models train on {available // 2} records each (less attacker data than members)")
    order = rng.permutation(available)
    if k * per_model <= available:
        slices = [order[i * per_model:(i + 1) * per_model] for i in range(k)]
    else:
        notes.append("attacker data too small for disjoint shadow sets: shadow sets overlap")
        slices = [rng.permutation(available)[:per_model] for _ in range(k)]
    used = np.unique(np.concatenate(slices))
    position = {int(r): i for i, r in enumerate(used)}
    masks = np.zeros((k, len(used)), bool)
    for j, sl in enumerate(slices):
        ins = sl[: per_model // 2]
        masks[j, [position[int(r)] for r in ins]] = True
    trained_on = used[masks.any(axis=0)]
    unused = np.setdiff1d(np.arange(available), trained_on)
    return used, masks, unused
