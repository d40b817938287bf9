"""The Shokri attacks streamed (:mod:`miaudit.attacks.shokri`): the attack models train on at most
MAX_TRAINING_ROWS (model, record) rows of the reference models, drawn by a seeded key of (record id,
model) (:func:`miaudit.attacks.shokri.balanced_rows`), so the K x N shadow predictions are never needed
at once.

Pass 1 reads the membership masks and ids only: per side (member, non-member), the MAX_TRAINING_ROWS / 2
rows of smallest key so far (a running selection, O(MAX_TRAINING_ROWS)) and the side's count. Pass 2
gathers those rows' logits (MAX_TRAINING_ROWS x C) and the attack model is fitted as in memory, on the
same rows in the same order. Pass 3 scores the target's outputs chunk by chunk (per-row predictions).
"""
from __future__ import annotations

import numpy as np

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.sampling import identity_keys, order_by_identity
from miaudit.attacks.shokri import MAX_TRAINING_ROWS, ShokriAttackModel, attack_features
from miaudit.attacks.streamed.passes import per_chunk
from miaudit.errors import InputError

_FIELDS = ("key", "id", "model", "record")


def _first(rows: dict[str, np.ndarray], cap: int) -> dict[str, np.ndarray]:
    """The ``cap`` rows first in (key, id, model) order, in that order."""
    order = order_by_identity(rows["key"], rows["id"], rows["model"])[:cap]
    return {f: v[order] for f, v in rows.items()}


def training_rows(store, seed: int, name: str, max_rows: int = MAX_TRAINING_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(model [2m], record [2m]) of :func:`miaudit.attacks.shokri.balanced_rows` over the store's chunks:
    m members and m non-members, m = min(smaller side, max_rows / 2), ordered by identity."""
    k = store.shape[0]
    cap = max_rows // 2
    empty = {"key": np.zeros(0, np.uint64), "id": np.zeros(0, np.int64), "model": np.zeros(0, np.int64),
             "record": np.zeros(0, np.int64)}
    kept, counts = {True: empty, False: empty}, {True: 0, False: 0}
    for start, stop in store.blocks():
        is_in = store.reference_in(start, stop)
        ids = np.asarray(store.group["record_ids"][start:stop])
        keys = identity_keys(ids, k, seed)
        models, records = np.nonzero(np.ones(is_in.shape, bool))  # every (model, record) of the chunk, k-major
        for side in (True, False):
            pick = is_in[models, records] == side
            counts[side] += int(pick.sum())
            chunk = {"key": keys[models[pick], records[pick]], "id": ids[records[pick]], "model": models[pick],
                     "record": records[pick] + start}
            kept[side] = _first({f: np.concatenate([kept[side][f], chunk[f]]) for f in _FIELDS}, cap)
    m = min(counts[True], counts[False], cap)
    if m == 0:
        raise InputError(f"{name}: the reference models' known records are all members or all non-members")
    both = _first({f: np.concatenate([kept[True][f][:m], kept[False][f][:m]]) for f in _FIELDS}, 2 * m)
    return both["model"], both["record"]


def _shokri(store, classifier: str, per_class: bool, seed: int) -> AttackScores:
    name = f"shokri-{classifier}"
    k, n, c = store.shape
    if k == 0 or n == 0:
        raise InputError(f"{name}: needs at least 1 reference (shadow) model")
    models, records = training_rows(store, seed, name)
    logits = np.zeros((len(records), c), np.float32)
    labels, is_member = np.zeros(len(records), np.int64), np.zeros(len(records), bool)
    for start, stop, x in store.chunks():
        here = (records >= start) & (records < stop)
        logits[here] = x.reference_logits[models[here], records[here] - start, 0]
        labels[here] = x.labels[records[here] - start]
        is_member[here] = x.reference_in[models[here], records[here] - start]
    model = ShokriAttackModel(classifier, per_class, c, seed)
    model.fit(attack_features(logits, labels), is_member)
    scores = per_chunk(store, lambda x: model.predict_proba(attack_features(x.target_logits[:, 0], x.labels))[:, 1])
    return AttackScores(scores, scores >= 0.5, 0.5)


def shokri_function(classifier: str):
    """The streamed shokri-``classifier`` (store, per_class=True, seed=0) -> AttackScores."""
    def streamed(store, per_class: bool = True, seed: int = 0) -> AttackScores:
        return _shokri(store, classifier, per_class, seed)

    streamed.__doc__ = f":func:`miaudit.attacks.shokri.shokri_{classifier.replace('-', '_')}` over the store's chunks."
    return streamed
