"""How well an attack's scores separate members from non-members.

Rates (AUC, TPR, FPR, accuracy, ...) are fractions in [0, 1]; epsilon is in nats (natural log).
ROC curves come from ``sklearn.metrics.roc_curve``; intervals on the AUC and the TPRs from
:mod:`miaudit.metrics.intervals`; the one-run epsilon audit from :mod:`miaudit.metrics.dp_audit`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import metrics as skm

from miaudit.errors import InputError
from miaudit.metrics.calibration import decide, prior_threshold
from miaudit.metrics.dp_audit import STEINKE, EpsilonAudit, one_run_epsilon
from miaudit.metrics.intervals import (
    advantage_null_quantile,
    allowed_false_positives,
    auc_score_interval,
    delong_auc_se,
    normal_interval,
    tpr_at_fpr_intervals,
    tpr_at_fpr_mixture_intervals,
    tpr_ci_below_resolution,
)

DEFAULT_FPR_LEVELS = (0.001, 0.01)
MAX_ROC_POINTS = 200


@dataclass(frozen=True, eq=False)
class AttackMetrics:
    """Metrics of one attack on N audited records.

    tpr_at_fpr: {FPR level: highest TPR on the ROC with FPR <= level}; always has 0.001 and 0.01.
    tpr_at_fpr_false_positives: {level: false positives the level allows on this audit, the largest k
    with k / n_non_members <= level}: the number of non-members the TPR at that level rests on.
    tpr_at_fpr_below_resolution: {level: level < 1 / n_non_members}, i.e. the TPR is at zero false
    positives, whatever the level says.
    tpr_at_fpr_ci: {level: (lo, hi)} interval at ``ci_confidence`` on the TPR at a true FPR of exactly
    the level, threshold error included (:func:`miaudit.metrics.intervals.tpr_at_fpr_mixture_intervals`,
    widened to hold the point TPR): the interval every table and the report show.
    tpr_at_fpr_ci_below_resolution: {level: too few non-members to bound that TPR from below
    (:func:`miaudit.metrics.intervals.tpr_ci_below_resolution`); the lower end is then 0 whatever the scores}.
    tpr_at_fpr_joint_ci: {level: (lo, hi)} the conservative Bonferroni interval on the same TPR
    (:func:`miaudit.metrics.intervals.tpr_at_fpr_intervals`): coverage >= ``ci_confidence`` guaranteed, about
    1.5x wider; kept in results.json, not shown.
    auc_ci: (lo, hi) DeLong interval at ``ci_confidence`` of the AUC (normal, clipped to [0, 1]; (0, 1)
    with fewer than 2 members or non-members; zero width when the groups are perfectly separated).
    accuracy / precision / recall / f1 / decision_advantage: at the attack's hard decision.
    accuracy_baseline: max(n_members, n_non_members) / N, the accuracy of calling every record the
    majority group; balanced_accuracy: (TPR + TNR) / 2 at the decision, 0.5 by chance.
    advantage: max over the ROC of TPR - FPR (membership advantage, Yeom et al.); advantage_null_95:
    its 95th percentile for scores without membership information (one-sided KS null).
    epsilon_lower_bound: empirical DP epsilon (nats) from the one-run audit ``epsilon_audit``
    (:mod:`miaudit.metrics.dp_audit`) at ``epsilon_confidence``, ``delta``: a lower bound when
    ``epsilon_valid`` (membership drawn by fair coins), else an estimate.
    roc_fpr, roc_tpr: float64 [T] the full ROC curve, FPR ascending.
    per_class: {class label: {"n_members", "n_non_members", "auc", "auc_ci", "accuracy", "advantage",
    "advantage_null_95", "tpr_at_fpr_<level>", "tpr_at_fpr_<level>_below_resolution"...}}; auc_ci is
    Newcombe's score interval (:func:`miaudit.metrics.intervals.auc_score_interval`, for few records per class);
    auc / auc_ci / tpr / advantage are None when one group is empty; below_resolution: the level allows
    no false positive among the class's non-members (the TPR is at zero false positives).
    """

    auc: float
    tpr_at_fpr: dict[float, float]
    accuracy: float
    precision: float
    recall: float
    f1: float
    advantage: float
    decision_advantage: float
    epsilon_lower_bound: float
    epsilon_confidence: float
    delta: float
    n_members: int
    n_non_members: int
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    auc_ci: tuple[float, float]
    tpr_at_fpr_ci: dict[float, tuple[float, float]]
    tpr_at_fpr_joint_ci: dict[float, tuple[float, float]]
    tpr_at_fpr_false_positives: dict[float, int]
    tpr_at_fpr_below_resolution: dict[float, bool]
    tpr_at_fpr_ci_below_resolution: dict[float, bool]
    accuracy_baseline: float
    balanced_accuracy: float
    advantage_null_95: float
    ci_confidence: float
    epsilon_audit: EpsilonAudit
    per_class: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def epsilon_method(self) -> str:
        return self.epsilon_audit.method

    @property
    def epsilon_valid(self) -> bool:
        return self.epsilon_audit.valid

    @property
    def epsilon_assumptions(self) -> str:
        return self.epsilon_audit.assumptions

    def __post_init__(self) -> None:
        unit = {"auc": self.auc, "accuracy": self.accuracy, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "advantage": self.advantage,
                "accuracy_baseline": self.accuracy_baseline, "balanced_accuracy": self.balanced_accuracy,
                "advantage_null_95": self.advantage_null_95}
        unit.update({f"tpr_at_fpr[{k}]": v for k, v in self.tpr_at_fpr.items()})
        for name, value in unit.items():
            _check_range(name, value, 0.0, 1.0)
        _check_range("decision_advantage", self.decision_advantage, -1.0, 1.0)
        _check_range("epsilon_lower_bound", self.epsilon_lower_bound, 0.0, math.inf)
        _check_range("epsilon_confidence", self.epsilon_confidence, 0.0, 1.0)
        _check_range("delta", self.delta, 0.0, 1.0)
        for level in DEFAULT_FPR_LEVELS:
            if level not in self.tpr_at_fpr:
                raise ValueError(f"AttackMetrics.tpr_at_fpr lacks the FPR level {level}")
        if self.n_members < 1 or self.n_non_members < 1:
            raise ValueError(f"AttackMetrics needs members and non-members, got "
                             f"{self.n_members} and {self.n_non_members}")
        if self.roc_fpr.shape != self.roc_tpr.shape or self.roc_fpr.ndim != 1:
            raise ValueError("AttackMetrics.roc_fpr and roc_tpr must be 1-D arrays of equal length")
        for name, arr in (("roc_fpr", self.roc_fpr), ("roc_tpr", self.roc_tpr)):
            if arr.size and not (np.all(arr >= 0.0) and np.all(arr <= 1.0)):
                raise ValueError(f"AttackMetrics.{name} has values outside [0, 1]")
        _check_range("ci_confidence", self.ci_confidence, 0.0, 1.0)
        _check_interval("auc_ci", self.auc_ci, self.auc)
        for name, d in (("tpr_at_fpr_ci", self.tpr_at_fpr_ci), ("tpr_at_fpr_joint_ci", self.tpr_at_fpr_joint_ci),
                        ("tpr_at_fpr_false_positives", self.tpr_at_fpr_false_positives),
                        ("tpr_at_fpr_below_resolution", self.tpr_at_fpr_below_resolution),
                        ("tpr_at_fpr_ci_below_resolution", self.tpr_at_fpr_ci_below_resolution)):
            if set(d) != set(self.tpr_at_fpr):
                raise ValueError(f"AttackMetrics.{name} levels {sorted(d)} differ from tpr_at_fpr's")
        for level, value in self.tpr_at_fpr.items():
            _check_interval(f"tpr_at_fpr_ci[{level}]", self.tpr_at_fpr_ci[level], value)
            _check_interval(f"tpr_at_fpr_joint_ci[{level}]", self.tpr_at_fpr_joint_ci[level], value)
            k = self.tpr_at_fpr_false_positives[level]
            if not (isinstance(k, int) and 0 <= k <= self.n_non_members):
                raise ValueError(f"AttackMetrics.tpr_at_fpr_false_positives[{level}] = {k!r}, expected "
                                 f"a count in [0, {self.n_non_members}]")
            if self.tpr_at_fpr_below_resolution[level] is not (k == 0):
                raise ValueError(f"AttackMetrics.tpr_at_fpr_below_resolution[{level}] must be True "
                                 f"exactly when the level allows no false positive")

    def to_dict(self) -> dict[str, Any]:
        """The results.json fields of this attack: plain Python numbers, None for missing values."""
        fpr, tpr = downsample_roc(self.roc_fpr, self.roc_tpr)
        return {
            "auc": _plain(self.auc),
            "tpr_at_fpr": {_level_key(k): _plain(v) for k, v in sorted(self.tpr_at_fpr.items())},
            "auc_ci": _plain(self.auc_ci),
            "tpr_at_fpr_ci": {_level_key(k): _plain(v) for k, v in sorted(self.tpr_at_fpr_ci.items())},
            "tpr_at_fpr_joint_ci": {_level_key(k): _plain(v) for k, v in sorted(self.tpr_at_fpr_joint_ci.items())},
            "tpr_at_fpr_false_positives": {_level_key(k): int(v) for k, v in
                                           sorted(self.tpr_at_fpr_false_positives.items())},
            "tpr_at_fpr_below_resolution": {_level_key(k): bool(v) for k, v in
                                            sorted(self.tpr_at_fpr_below_resolution.items())},
            "tpr_at_fpr_ci_below_resolution": {_level_key(k): bool(v) for k, v in
                                               sorted(self.tpr_at_fpr_ci_below_resolution.items())},
            "ci_confidence": _plain(self.ci_confidence),
            "accuracy": _plain(self.accuracy),
            "accuracy_baseline": _plain(self.accuracy_baseline),
            "balanced_accuracy": _plain(self.balanced_accuracy),
            "precision": _plain(self.precision),
            "recall": _plain(self.recall),
            "f1": _plain(self.f1),
            "advantage": _plain(self.advantage),
            "advantage_null_95": _plain(self.advantage_null_95),
            "decision_advantage": _plain(self.decision_advantage),
            "epsilon_lower_bound": _plain(self.epsilon_lower_bound),
            "epsilon_confidence": _plain(self.epsilon_confidence),
            "epsilon_method": self.epsilon_method,
            "epsilon_valid": self.epsilon_valid,
            "epsilon_assumptions": self.epsilon_assumptions,
            "epsilon_audit": self.epsilon_audit.to_dict(),
            "delta": _plain(self.delta),
            "n_members": int(self.n_members),
            "n_non_members": int(self.n_non_members),
            "per_class": {str(c): {k: _plain(v) for k, v in row.items()} for c, row in self.per_class.items()},
            "roc": {"fpr": [_plain(v) for v in fpr], "tpr": [_plain(v) for v in tpr]},
        }


def compute_metrics(scores: np.ndarray, membership: np.ndarray, decision: np.ndarray | None = None,
                    labels: np.ndarray | None = None, fpr_levels=DEFAULT_FPR_LEVELS, delta: float = 1e-5,
                    confidence: float = 0.95, ci_confidence: float = 0.95, coin_flips: bool = False,
                    epsilon_method: str = STEINKE) -> AttackMetrics:
    """All metrics of one attack.

    scores: float [N], higher = member; membership: bool [N] true membership; decision: bool [N]
    hard calls (None: the top n_members scores are called members, :func:`prior_threshold` at the
    audit's own member fraction, which the auditor knows); labels: int [N] class of each record
    (None: no per-class breakdown). fpr_levels are added to the always-reported 0.001 and 0.01.
    confidence: of the epsilon bound; ci_confidence: of the AUC and TPR intervals. coin_flips: the
    membership was drawn by independent fair coins, which makes the one-run epsilon (``epsilon_method``,
    :mod:`miaudit.metrics.dp_audit`) a lower bound; else it is reported as an estimate.
    """
    scores = np.asarray(scores, dtype=np.float64)
    membership = np.asarray(membership)
    n = scores.shape[0] if scores.ndim == 1 else -1
    if n < 0:
        raise InputError(f"scores: expected a 1-D array, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise InputError("scores: NaN or inf score")
    if membership.shape != (n,):
        raise InputError(f"membership: shape {membership.shape}, expected ({n},)")
    membership = membership.astype(bool)
    n_members = int(membership.sum())
    if n_members == 0 or n_members == n:
        raise InputError(f"membership: need both members and non-members, got {n_members} members of {n}")
    if decision is None:
        decision = decide(scores, prior_threshold(scores, n_members / n))
    decision = np.asarray(decision)
    if decision.shape != (n,):
        raise InputError(f"decision: shape {decision.shape}, expected ({n},)")
    decision = decision.astype(bool)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InputError(f"labels: shape {labels.shape}, expected ({n},)")
    levels = _checked_levels(fpr_levels)
    if not 0.0 <= delta < 1.0:
        raise InputError(f"delta: {delta} is not in [0, 1)")
    for name, value in (("confidence", confidence), ("ci_confidence", ci_confidence)):
        if not 0.0 < value < 1.0:
            raise InputError(f"{name}: {value} is not in (0, 1)")

    fpr, tpr, _ = skm.roc_curve(membership, scores, drop_intermediate=False)
    n_non = n - n_members
    allowed = {level: allowed_false_positives(level, n_non) for level in levels}
    found = {level: true_positives_at(fpr, tpr, n_members, n_non, k) for level, k in allowed.items()}
    pos, neg = scores[membership], scores[~membership]
    tpr_ci = {level: (min(lo, found[level] / n_members), max(hi, found[level] / n_members))
              for level, (lo, hi) in zip(levels, tpr_at_fpr_mixture_intervals(pos, neg, levels, ci_confidence))}
    auc = float(skm.roc_auc_score(membership, scores))
    eps = one_run_epsilon(scores, membership, delta, confidence, coin_flips=coin_flips, method=epsilon_method)
    tp_d, fp_d = int((decision & membership).sum()), int((decision & ~membership).sum())
    precision, recall, f1, _ = skm.precision_recall_fscore_support(membership, decision, average="binary",
                                                                   zero_division=0)
    return AttackMetrics(
        auc=auc,
        tpr_at_fpr={level: found[level] / n_members for level in levels},
        accuracy=float(skm.accuracy_score(membership, decision)),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        advantage=float(np.max(tpr - fpr)),
        decision_advantage=tp_d / n_members - fp_d / n_non,
        accuracy_baseline=max(n_members, n_non) / n,
        balanced_accuracy=0.5 * (1.0 + tp_d / n_members - fp_d / n_non),
        advantage_null_95=advantage_null_quantile(n_members, n_non, 0.95),
        epsilon_lower_bound=eps.epsilon,
        epsilon_audit=eps,
        epsilon_confidence=float(confidence),
        delta=float(delta),
        n_members=n_members,
        n_non_members=n_non,
        roc_fpr=_frozen(fpr),
        roc_tpr=_frozen(tpr),
        auc_ci=normal_interval(auc, delong_auc_se(scores, membership), ci_confidence),
        tpr_at_fpr_ci=tpr_ci,
        tpr_at_fpr_joint_ci=dict(zip(levels, tpr_at_fpr_intervals(pos, neg, levels, ci_confidence))),
        tpr_at_fpr_false_positives=allowed,
        tpr_at_fpr_below_resolution={level: k == 0 for level, k in allowed.items()},
        tpr_at_fpr_ci_below_resolution={lv: tpr_ci_below_resolution(lv, n_non, ci_confidence) for lv in levels},
        ci_confidence=float(ci_confidence),
        per_class={} if labels is None else per_class_metrics(scores, membership, decision, labels, levels,
                                                              ci_confidence),
    )


def true_positives_at(fpr: np.ndarray, tpr: np.ndarray, n_members: int, n_non_members: int,
                      max_false_positives: int) -> int:
    """Members found by the lowest ROC threshold that lets at most ``max_false_positives`` non-members
    through (fpr, tpr: float [T] from roc_curve on n_members members and n_non_members non-members)."""
    ok = np.rint(fpr * n_non_members) <= max_false_positives
    return int(np.rint(tpr[ok].max() * n_members)) if ok.any() else 0


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """Highest TPR among ROC points with FPR <= level (fpr, tpr: float [T] from roc_curve)."""
    ok = fpr <= level
    return float(tpr[ok].max()) if ok.any() else 0.0


def per_class_metrics(scores: np.ndarray, membership: np.ndarray, decision: np.ndarray,
                      labels: np.ndarray, levels=DEFAULT_FPR_LEVELS,
                      ci_confidence: float = 0.95) -> dict[int, dict[str, Any]]:
    """{class label: metrics on that class's records}; arrays are [N] as in compute_metrics."""
    conf = ci_confidence
    out: dict[int, dict[str, Any]] = {}
    for c in np.unique(labels):
        sel = labels == c
        s, m, d = scores[sel], membership[sel], decision[sel]
        n_in, n_out = int(m.sum()), int(sel.sum()) - int(m.sum())
        row: dict[str, Any] = {"n_members": n_in, "n_non_members": n_out,
                               "accuracy": float(skm.accuracy_score(m, d))}
        both = 0 < n_in < m.size
        fpr, tpr = skm.roc_curve(m, s)[:2] if both else (None, None)
        row["auc"] = float(skm.roc_auc_score(m, s)) if both else None
        row["auc_ci"] = auc_score_interval(row["auc"], n_in, n_out, conf) if both else None
        row["advantage"] = float(np.max(tpr - fpr)) if both else None
        row["advantage_null_95"] = advantage_null_quantile(n_in, n_out) if both else None
        for level in levels:
            row[f"tpr_at_fpr_{_level_key(level)}"] = tpr_at_fpr(fpr, tpr, level) if both else None
            row[f"tpr_at_fpr_{_level_key(level)}_below_resolution"] = (
                allowed_false_positives(level, n_out) == 0 if both else None)
        out[int(c)] = row
    return out


def downsample_roc(fpr: np.ndarray, tpr: np.ndarray, max_points: int = MAX_ROC_POINTS):
    """At most ``max_points`` ROC points, spaced evenly in log-FPR; keeps the FPR = 0 end and (1, 1).

    Each kept point is a real ROC point: the highest-TPR one with FPR <= a log-spaced grid value,
    so TPR at low FPR is preserved. Returns (fpr, tpr) float64 arrays.
    """
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if fpr.size <= max_points:
        return fpr, tpr
    positive = fpr[fpr > 0]
    grid = np.geomspace(positive.min(), 1.0, max_points - 3)
    picks = np.searchsorted(fpr, grid, side="right") - 1
    last_zero = np.searchsorted(fpr, 0.0, side="right") - 1
    keep = np.unique(np.concatenate([[0, last_zero, fpr.size - 1], picks]))
    return fpr[keep], tpr[keep]


def _checked_levels(fpr_levels) -> tuple[float, ...]:
    levels = set(DEFAULT_FPR_LEVELS)
    for level in fpr_levels:
        if not 0.0 < float(level) <= 1.0:
            raise InputError(f"fpr_levels: {level} is not in (0, 1]")
        levels.add(float(level))
    return tuple(sorted(levels))


def _check_interval(name: str, interval, value: float) -> None:
    if not (isinstance(interval, tuple) and len(interval) == 2
            and all(isinstance(v, (int, float)) for v in interval)
            and 0.0 <= interval[0] <= value <= interval[1] <= 1.0):
        raise ValueError(f"AttackMetrics.{name} = {interval!r}, expected (lo, hi) with 0 <= lo <= {value!r} <= hi <= 1")


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (isinstance(value, (int, float)) and lo <= value <= hi):
        raise ValueError(f"AttackMetrics.{name} = {value!r}, expected a number in [{lo}, {hi}]")


def _level_key(level: float) -> str:
    return str(float(level))


def _plain(value: Any) -> Any:
    """A JSON-safe Python value: numpy numbers become int / float, NaN and inf None, tuples lists."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a
