"""The statistics of an audit: per-attack metrics (attack_metrics), their confidence intervals (intervals),
the one-run ε audit (dp_audit, fdp_curves) and the verdict's test of "no leakage" (leak_test).

``from miaudit.metrics import compute_metrics, AttackMetrics`` keeps working: the names of attack_metrics are
re-exported here. Modules of the package import from the submodules, never from this file.
"""
from miaudit.metrics.attack_metrics import (
    DEFAULT_FPR_LEVELS,
    MAX_ROC_POINTS,
    AttackMetrics,
    compute_metrics,
    downsample_roc,
    per_class_metrics,
    tpr_at_fpr,
    true_positives_at,
)

__all__ = ["DEFAULT_FPR_LEVELS", "MAX_ROC_POINTS", "AttackMetrics", "compute_metrics", "downsample_roc",
           "per_class_metrics", "tpr_at_fpr", "true_positives_at"]
