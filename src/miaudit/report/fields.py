"""The report's access to the interval and ε-audit fields of AttackMetrics.

FALLBACKS (all of them live here, nowhere else in report/): these AttackMetrics fields come from the
metrics and ε-audit work landing beside the report — auc_ci, tpr_at_fpr_ci, tpr_at_fpr_false_positives,
tpr_at_fpr_below_resolution, epsilon_method, epsilon_valid, epsilon_assumptions. Until every one of
them exists, each accessor below reads the field with getattr and falls back as its docstring says.
Once they all exist, each body becomes the plain attribute read.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from miaudit.metrics import AttackMetrics

Interval = tuple[float, float]

FALLBACK_EPSILON_METHOD = "held-out Clopper-Pearson"
FALLBACK_EPSILON_ASSUMPTIONS = ("treats the records of one training run as independent trials, "
                                "which they are not")


def _get(m: AttackMetrics, name: str, default: Any) -> Any:
    """FALLBACK: m.<name>, or ``default`` while the field does not exist yet."""
    return getattr(m, name, default)


def auc_ci(m: AttackMetrics) -> Interval | None:
    """The 95% interval on the AUC; None when the metrics carry none."""
    ci = _get(m, "auc_ci", None)
    return None if ci is None else (float(ci[0]), float(ci[1]))


def tpr_ci(m: AttackMetrics, level: float) -> Interval | None:
    """The 95% (Clopper-Pearson) interval on TPR at FPR ``level``; None when the metrics carry none."""
    ci = (_get(m, "tpr_at_fpr_ci", None) or {}).get(level)
    return None if ci is None else (float(ci[0]), float(ci[1]))


def false_positives(m: AttackMetrics, level: float) -> int:
    """The false positives TPR at FPR ``level`` rests on (fallback: floor(level * non-members))."""
    given = (_get(m, "tpr_at_fpr_false_positives", None) or {}).get(level)
    return int(given) if given is not None else math.floor(level * m.n_non_members + 1e-9)


def below_resolution(m: AttackMetrics, level: float) -> bool:
    """True when ``level`` is below 1 / non-members (fallback: computed from n_non_members)."""
    given = (_get(m, "tpr_at_fpr_below_resolution", None) or {}).get(level)
    return bool(given) if given is not None else level * m.n_non_members < 1.0


def epsilon_method(m: AttackMetrics) -> str:
    return str(_get(m, "epsilon_method", FALLBACK_EPSILON_METHOD))


def epsilon_valid(m: AttackMetrics) -> bool:
    """True when epsilon_lower_bound is a valid DP lower bound (fallback: False, an estimate)."""
    return bool(_get(m, "epsilon_valid", False))


def epsilon_assumptions(m: AttackMetrics) -> str:
    return str(_get(m, "epsilon_assumptions", FALLBACK_EPSILON_ASSUMPTIONS))
