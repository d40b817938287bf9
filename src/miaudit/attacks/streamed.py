"""Attacks that stream over the record chunks of a :class:`miaudit.signals.store.SignalStore`: one
chunk of records (all K models) in memory at a time, the same scores as in memory (to float rounding).

Streamable (STREAMED): lira-online, lira-offline (the paper's variances, with the leave-one-model-out
threshold), rmia (the paper's), population, base-online and base-offline (per-record functions of
the models' outputs; base-offline only when every record has an OUT model, its fallback needing all
records). Their scores are per-record functions over models;
what they need from all records is computed once and cached on the store:
- LiRA's global scale per side (the std of all phi of that side; also the fallback of per-example
  variances) and, for lira-offline's threshold, the same with each held-out model left out: a first
  pass keeps per-model counts, means and sums of squared deviations (merged chunk by chunk, Chan et
  al.), from which any subset of models gives its std;
- RMIA's population likelihood ratios LR_z and Attack-P's population losses: from the population
  arrays, read once.
Not streamable: the threshold attacks (their thresholds are calibrated on all K x N reference
scores), Shokri (attack models trained on all of them), the moderated / tempered-offset variants
(a variance prior fitted to all records, population neighbours and temperatures picked on all of
them), label-only and white-box attacks (they query models), bavaria-* (NIG priors fitted to all records),
rmia-offline (a chosen on all shadow records) and qmia, qmia-pinball (their regressor reads the population records'
features, which the store does not hold).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.attacks.base import (
    OFFLINE_SCALE,
    TEMPERATURE,
    base_scores,
    log_mean_probability,
)
from miaudit.attacks.calibration import balanced_accuracy_threshold
from miaudit.attacks.inputs import AttackInputs, AttackScores
from miaudit.attacks.lira import (
    CALIBRATION_MODELS,
    fit_predictives,
    offline_scores,
    online_scores,
    resolve_variance,
    scaled_confidence,
)
from miaudit.attacks.rmia import log_true_class_probability, marginal
from miaudit.errors import InputError
from miaudit.signals.functions import loss


@dataclass
class SideStats:
    """Per-model moments of phi on one side (IN or OUT) over the records seen so far:
    n int [K] values, mean [K, Q], m2 [K, Q] sum of squared deviations from the mean."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, phi: np.ndarray, mask: np.ndarray) -> SideStats:
        """Moments of phi [K, b, Q] where mask [K, b]."""
        w = mask[:, :, None].astype(np.float64)
        n = mask.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nan_to_num((phi * w).sum(axis=1) / n[:, None])
        m2 = (((phi - mean[:, None]) * w) ** 2).sum(axis=1)
        return cls(n, mean, m2)

    def merge(self, other: SideStats) -> SideStats:
        n = self.n + other.n
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n > 0, other.n / np.maximum(n, 1), 0.0)[:, None]
        delta = other.mean - self.mean
        return SideStats(n, self.mean + delta * share, self.m2 + other.m2 + delta ** 2 * self.n[:, None] * share)

    def scale(self, models: np.ndarray) -> np.ndarray:
        """The std (ddof=0) of all values of the models ``models`` (bool [K]) pooled: [Q], NaN if none."""
        n = self.n[models].astype(np.float64)
        total = n.sum()
        if total == 0:
            return np.full(self.mean.shape[1], np.nan)
        mean = (n[:, None] * self.mean[models]).sum(axis=0) / total
        m2 = self.m2[models].sum(axis=0) + (n[:, None] * (self.mean[models] - mean) ** 2).sum(axis=0)
        return np.sqrt(m2 / total)


def _phis(x: AttackInputs) -> tuple[np.ndarray, np.ndarray]:
    """phi of the target [b, Q] and of the references [K, b, Q] on a chunk's records."""
    return (scaled_confidence(x.target_logits, x.labels[:, None]),
            scaled_confidence(x.reference_logits, x.labels[None, :, None]))


def side_stats(store) -> dict[str, SideStats]:
    """{"in", "out"}: per-model moments of phi over all records, one pass over the chunks, cached."""
    if "side_stats" not in store.cache:
        stats: dict[str, SideStats] | None = None
        for _, _, x in store.chunks():
            _, phi = _phis(x)
            part = {"in": SideStats.of(phi, x.reference_in), "out": SideStats.of(phi, ~x.reference_in)}
            stats = part if stats is None else {s: stats[s].merge(part[s]) for s in part}
        store.cache["side_stats"] = stats
    return store.cache["side_stats"]


def _scales(stats: dict[str, SideStats], models: np.ndarray) -> dict[str, np.ndarray]:
    return {side: stats[side].scale(models) for side in ("in", "out")}


def _check_references(store, name: str) -> int:
    k = store.shape[0]
    if k < 1:
        raise InputError(f"{name}: needs at least 1 reference model (--reference-models), got 0")
    return k


def _lira_setup(store, name: str, variance: str) -> tuple[int, str, dict[str, SideStats]]:
    """(K, the resolved variance, the store's per-side moments) for a streamed LiRA attack."""
    k = _check_references(store, name)
    variance = resolve_variance(variance, k)
    if variance not in ("global", "per-example"):
        raise InputError(f"{name}: streamed with variance 'paper', 'global' or 'per-example', got {variance!r}")
    return k, variance, side_stats(store)


def lira_online(store, variance: str = "paper") -> AttackScores:
    """:func:`miaudit.attacks.lira.lira_online` (no local offsets) over the store's record chunks."""
    k, variance, stats = _lira_setup(store, "lira-online", variance)
    if not stats["in"].n.any():
        raise InputError("lira-online: needs reference models trained on the audited records "
                         "(reference_data='pool')")
    scales = _scales(stats, np.ones(k, bool))
    parts = []
    for _, _, x in store.chunks():
        phi_t, phi_r = _phis(x)
        pred_in, pred_out = fit_predictives(phi_r, x.reference_in, variance, scales)
        parts.append(online_scores(phi_t, pred_in, pred_out))
    scores = np.concatenate(parts)
    return AttackScores(scores, scores > 0.0, 0.0, {"variance": variance, "neighbors": 0})


def lira_offline(store, variance: str = "paper") -> AttackScores:
    """:func:`miaudit.attacks.lira.lira_offline` (no local offsets) over the store's record chunks,
    its leave-one-model-out threshold included (the held-out models' scores are kept: 16 x N)."""
    k, variance, stats = _lira_setup(store, "lira-offline", variance)
    if not stats["out"].n.any():
        raise InputError("lira-offline: needs reference models not trained on the audited records")
    everyone = np.ones(k, bool)
    held = [] if k < 2 else [h for h in range(min(k, CALIBRATION_MODELS)) if stats["out"].n[np.arange(k) != h].any()]
    others = {h: np.arange(k) != h for h in held}
    scales = {"all": _scales(stats, everyone), **{h: _scales(stats, others[h]) for h in held}}
    parts: list[np.ndarray] = []
    held_scores: dict[int, list[np.ndarray]] = {h: [] for h in held}
    held_in: dict[int, list[np.ndarray]] = {h: [] for h in held}
    for _, _, x in store.chunks():
        phi_t, phi_r = _phis(x)
        _, pred_out = fit_predictives(phi_r, x.reference_in, variance, scales["all"])
        parts.append(offline_scores(phi_t, pred_out))
        for h in held:
            _, out_h = fit_predictives(phi_r[others[h]], x.reference_in[others[h]], variance, scales[h])
            held_scores[h].append(offline_scores(phi_r[h], out_h))
            held_in[h].append(x.reference_in[h])
    scores = np.concatenate(parts)
    params = {"variance": variance, "neighbors": 0}
    threshold = None
    if held:
        members = np.concatenate([np.concatenate(held_in[h]) for h in held])
        if members.any() and not members.all():
            threshold = balanced_accuracy_threshold(
                np.concatenate([np.concatenate(held_scores[h]) for h in held]), members)
    if threshold is None:
        return AttackScores(scores, params=params)
    return AttackScores(scores, scores >= threshold, threshold, params)


def rmia(store, gamma: float = 2.0, offline_a: float = 0.3) -> AttackScores:
    """:func:`miaudit.attacks.rmia.rmia` over the store's record chunks; LR_z of the whole
    population computed once."""
    _check_references(store, "rmia")
    pop_t, pop_r, pop_y = store.population()
    if len(pop_y) < 1:
        raise InputError("rmia: needs population records (attacker data no model trained on), got 0")
    key = ("rmia_log_lr_z", float(offline_a))
    if key not in store.cache:
        log_pz_target = log_true_class_probability(pop_t[:, None], pop_y)
        pz_ref = np.exp(log_true_class_probability(pop_r[:, :, None], pop_y))
        all_out = np.ones(pz_ref.shape, bool)
        store.cache[key] = np.sort(log_pz_target - np.log(marginal(pz_ref, ~all_out, all_out, offline_a)))
    log_lr_z = store.cache[key]
    parts = []
    for _, _, x in store.chunks():
        px_ref = np.exp(log_true_class_probability(x.reference_logits, x.labels))
        log_lr_x = log_true_class_probability(x.target_logits, x.labels) - np.log(
            marginal(px_ref, x.reference_in, ~x.reference_in, offline_a))
        parts.append(np.searchsorted(log_lr_z, log_lr_x - np.log(gamma), side="right") / len(log_lr_z))
    return AttackScores(np.concatenate(parts), params={"temperature": 1.0, "neighbors": 0, "a": float(offline_a)})


def population(store) -> AttackScores:
    """:func:`miaudit.attacks.population.population` (alpha None) over the store's record chunks."""
    pop_t, _, pop_y = store.population()
    if len(pop_y) < 1:
        raise InputError("population: needs population records (attacker data no model trained on), got 0")
    if "population_loss" not in store.cache:
        store.cache["population_loss"] = np.sort(loss(pop_t[:, None], pop_y[:, None]).mean(axis=-1))
    pop_loss = store.cache["population_loss"]
    parts = []
    for _, _, x in store.chunks():
        record_loss = loss(x.target_logits, x.labels[:, None]).mean(axis=-1)
        parts.append((len(pop_loss) - np.searchsorted(pop_loss, record_loss, side="left")) / len(pop_loss))
    return AttackScores(np.concatenate(parts))


def _base(store, online: bool, temperature: float, offline_scale: float) -> np.ndarray:
    """BASE scores [N] chunk by chunk (:mod:`miaudit.attacks.base`)."""
    name = "base-online" if online else "base-offline"
    _check_references(store, name)
    parts = []
    for _, _, x in store.chunks():
        log_t = log_true_class_probability(x.target_logits / temperature, x.labels)
        log_r = log_true_class_probability(x.reference_logits / temperature, x.labels)
        use = np.ones(log_r.shape, bool) if online else ~x.reference_in
        if not use.any(axis=0).all():
            raise InputError(f"{name}: streamed only when every record has an OUT reference model; "
                             "use more reference models or --signal-chunk 0 (in memory)")
        parts.append(base_scores(log_t, log_mean_probability(log_r, use), 1.0 if online else offline_scale))
    return np.concatenate(parts)


def base_online(store, temperature: float = TEMPERATURE) -> AttackScores:
    """:func:`miaudit.attacks.base.base_online` over the store's record chunks."""
    scores = _base(store, True, temperature, 1.0)
    return AttackScores(scores, scores > 0.0, 0.0, {"temperature": float(temperature)})


def base_offline(store, temperature: float = TEMPERATURE, offline_scale: float = OFFLINE_SCALE) -> AttackScores:
    """:func:`miaudit.attacks.base.base_offline` over the store's record chunks."""
    scores = _base(store, False, temperature, offline_scale)
    return AttackScores(scores, params={"temperature": float(temperature), "offline_scale": float(offline_scale)})


STREAMED: dict[str, Callable[..., AttackScores]] = {
    "lira-online": lira_online, "lira-offline": lira_offline, "rmia": rmia, "population": population,
    "base-online": base_online, "base-offline": base_offline}
"""Attack name -> its streamed function (store -> AttackScores)."""


def streamable_names(names: list[str]) -> list[str]:
    """The attack names to run streamed: "all" / "auto" become every streamable attack; a name that cannot
    stream is an InputError naming the ones that can."""
    out: list[str] = []
    for name in names:
        chosen = list(STREAMED) if name in ("all", "auto") else [name]
        for n in chosen:
            if n not in STREAMED:
                raise InputError(f"--attacks: {n} cannot stream over signal chunks (--signal-chunk); "
                                 f"these can: {', '.join(STREAMED)}")
            if n not in out:
                out.append(n)
    return out


def run_streamed(name: str, store) -> AttackScores:
    """The attack ``name`` (one of STREAMED) over ``store``."""
    if name not in STREAMED:
        streamable_names([name])
    return STREAMED[name](store)
