"""Attacks streamed over the record chunks of a :class:`miaudit.signals.store.SignalStore`: one chunk of
records (all K models) in memory at a time, the in-memory scores (to float rounding, rtol 1e-9).

Streaming is a property of the attack: every attack of :data:`miaudit.attacks.registry.ATTACKS` is in
exactly one of ``STREAMED`` (name -> its streamed function, store -> AttackScores) and ``NOT_STREAMED``
(name -> why not, one line). A streamed function makes passes over the chunks (:mod:`.passes`): a first
pass reduces each chunk to a small summary (moments, per-record numbers, a fitted prior, a running
selection), cached on the store where several attacks share it; the last pass scores each chunk. One
module per attack family; each module's docstring says what it keeps (never the K x N x C logits; K x N
scalars only for the exact calibrations of the threshold attacks and gradient-norm-lira).

The store holds the models' outputs; the audit attaches what it holds in memory anyway (the records, the
target and reference models: ``SignalStore.attach``), so the attacks that read records, query the models
or take their gradients stream too (:mod:`.records`: qmia, qmia-pinball, label-only-gap, gradient-norm*).
Not streamed, and why: label-only-augmentation, -noise, -boundary and their -lira variants draw their
seeded random copies / noise / search directions over all records in identity order, so a chunk's draws
would depend on the other records (chunk by chunk they would give other scores, not rtol 1e-9).
Streamed with a limit (an InputError says so; --signal-chunk 0 runs them in memory): the four LiRA
attacks when some record has no reference model on a side and no record has models on both sides (the
in-memory location fallback then takes the median of all the side's values, K x N of them).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.streamed.base import base_offline, base_online
from miaudit.attacks.streamed.bavaria import bavaria_n_offline, bavaria_n_online, bavaria_offline, bavaria_online
from miaudit.attacks.streamed.lira import lira_offline, lira_online
from miaudit.attacks.streamed.lira_moderated import lira_offline_moderated_offsets, lira_online_moderated_offsets
from miaudit.attacks.streamed.passes import side_stats
from miaudit.attacks.streamed.records import (
    gradient_norm,
    gradient_norm_lira,
    label_only_gap,
    qmia,
    qmia_pinball,
)
from miaudit.attacks.streamed.rmia import population, rmia, rmia_offline
from miaudit.attacks.streamed.rmia_tempered import rmia_tempered_offsets
from miaudit.attacks.streamed.shokri import shokri_function
from miaudit.attacks.streamed.threshold import (
    threshold_confidence,
    threshold_entropy,
    threshold_loss,
    threshold_modified_entropy,
)
from miaudit.errors import InputError

__all__ = ["NOT_STREAMED", "STREAMED", "run_streamed", "side_stats", "streamable_names",
           "streamed_parameters"]

STREAMED: dict[str, Callable[..., AttackScores]] = {
    "lira-online": lira_online, "lira-offline": lira_offline, "rmia": rmia, "population": population,
    "base-online": base_online, "base-offline": base_offline,
    "threshold-confidence": threshold_confidence, "threshold-loss": threshold_loss,
    "threshold-entropy": threshold_entropy, "threshold-modified-entropy": threshold_modified_entropy,
    "bavaria-online": bavaria_online, "bavaria-offline": bavaria_offline, "bavaria-n-online": bavaria_n_online,
    "bavaria-n-offline": bavaria_n_offline, "rmia-offline": rmia_offline,
    "lira-online-moderated-offsets": lira_online_moderated_offsets,
    "lira-offline-moderated-offsets": lira_offline_moderated_offsets, "rmia-tempered-offsets": rmia_tempered_offsets,
    **{f"shokri-{kind}": shokri_function(kind) for kind in ("lr", "dt", "linear-svm", "rbf-svm", "rf", "mlp")},
    "qmia": qmia, "qmia-pinball": qmia_pinball, "label-only-gap": label_only_gap,
    "gradient-norm": gradient_norm, "gradient-norm-lira": gradient_norm_lira}
"""Attack name -> its streamed function (store -> AttackScores)."""

_DRAWS = "its random draws run over all records in identity order: a chunk's would depend on the others"
NOT_STREAMED: dict[str, str] = {name: _DRAWS for name in (
    "label-only-augmentation", "label-only-augmentation-lira", "label-only-boundary", "label-only-boundary-lira",
    "label-only-noise", "label-only-noise-lira")}
"""Attack name -> why it does not stream (one line)."""


def streamable_names(names: list[str]) -> list[str]:
    """The attack names to run streamed: "all" / "auto" become every streamable attack; a name that cannot
    stream is an InputError saying why (NOT_STREAMED)."""
    out: list[str] = []
    for name in names:
        chosen = list(STREAMED) if name in ("all", "auto") else [name]
        for n in chosen:
            if n not in STREAMED:
                why = NOT_STREAMED.get(n, "not a known attack")
                raise InputError(f"--attacks: {n} cannot stream over signal chunks (--signal-chunk): {why}")
            if n not in out:
                out.append(n)
    return out


def streamed_parameters(name: str) -> set[str]:
    """The attack parameters the streamed form of ``name`` takes (its keywords but the store and the seed)."""
    return set(inspect.signature(STREAMED[name]).parameters) - {"store", "seed"}


def run_streamed(name: str, store, seed: int = 0, params: dict | None = None) -> AttackScores:
    """The attack ``name`` (one of STREAMED) over ``store``; ``seed``: the audit's, for the streamed
    functions that take one (the seeded attacks, as :meth:`miaudit.attacks.registry.AttackSpec.run` passes it);
    ``params``: parameter values the config gives (--attack-param), added to the verdict's params as in memory."""
    if name not in STREAMED:
        streamable_names([name])
    function, given = STREAMED[name], dict(params or {})
    if missing := sorted(set(given) - streamed_parameters(name)):
        raise InputError(f"--attack-param {name}.{missing[0]}: its streamed form takes no such parameter "
                         "(use --signal-chunk 0)")
    seeded = {"seed": seed} if "seed" in inspect.signature(function).parameters else {}
    verdict = function(store, **seeded, **given)
    return replace(verdict, params={**given, **verdict.params}) if given else verdict
