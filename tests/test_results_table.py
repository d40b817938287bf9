"""The plain-text summary and the CLI table: intervals shown, the below-resolution mark explained."""
from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from miaudit.cli import results_table
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.report.results import (
    BELOW_RESOLUTION_MARK,
    CHANCE_MARK,
    AttackOutcome,
    AuditResult,
    TargetSummary,
    format_tpr,
)

NAMES = ("lira-online-local-offsets-moderated", "threshold-modified-entropy", "rmia")


def fake_result(n_members: int, n_non_members: int) -> AuditResult:
    rng = np.random.default_rng(0)
    n = n_members + n_non_members
    membership = np.r_[np.ones(n_members, bool), np.zeros(n_non_members, bool)]
    attacks = []
    for name, strength in zip(NAMES, (1.5, 0.6, 1.0)):
        scores = rng.normal(size=n) + strength * membership
        attacks.append(AttackOutcome(name, "black-box", scores, compute_metrics(scores, membership), 0.5))
    return AuditResult("0.1.0", {"dataset": "digits", "target": "mlp"},
                       TargetSummary("mlp", 0.99, 0.9, n_members, n_non_members), attacks, {"total_s": 1.0},
                       np.arange(n), membership, np.zeros(n, int))


def rendered_table(result: AuditResult) -> str:
    console = Console(width=150, record=True, file=open("/dev/null", "w"))
    console.print(results_table(result))
    return console.export_text()


@pytest.mark.parametrize("render", [AuditResult.summary, rendered_table], ids=["summary", "cli-table"])
def test_intervals_and_the_resolution_mark(render):
    small = fake_result(2500, 449)
    text = render(small)
    for a in small.attacks:
        m = a.metrics
        line = next(row for row in text.splitlines() if row.lstrip().startswith(a.name))
        assert f"{m.auc:.3f} [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}]" in line
        # 449 non-members cannot bound the TPR at 0.1% FPR from below: no interval printed
        assert f"{100 * m.tpr_at_fpr[0.001]:.1f}% [below res.]{BELOW_RESOLUTION_MARK}" in line
        lo, hi = m.tpr_at_fpr_ci[0.01]
        assert f"{100 * m.tpr_at_fpr[0.01]:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]" in line
        assert line.count(BELOW_RESOLUTION_MARK) == 1  # 1% of 449 allows 4 false positives: not marked
    assert f"{BELOW_RESOLUTION_MARK} fewer than 1/FPR non-members (449): TPR at zero false positives" in text
    assert "[below res.] fewer than 3.7/FPR non-members (449)" in text
    assert "95% intervals" in text
    assert all(len(row) <= 150 for row in text.splitlines())
    assert "\u2026" not in text  # nothing cut short
    large = render(fake_result(1500, 1500))
    assert BELOW_RESOLUTION_MARK not in large and "95% intervals" in large


def test_small_rates_keep_two_decimals():
    rng = np.random.default_rng(1)
    membership = np.r_[np.ones(2500, bool), np.zeros(449, bool)]
    m = compute_metrics(rng.normal(size=membership.size) - 1.0 * membership, membership)
    lo, hi = m.tpr_at_fpr_ci[0.01]
    assert hi < 0.01
    assert format_tpr(m, 0.01) == f"{100 * m.tpr_at_fpr[0.01]:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"
    assert format_tpr(m, 0.001) == f"{100 * m.tpr_at_fpr[0.001]:.2f}% [below res.]{BELOW_RESOLUTION_MARK}"


def test_results_json_has_the_interval_keys():
    d = json.loads(fake_result(2500, 449).to_json())
    a = d["attacks"][0]
    assert len(a["auc_ci"]) == 2 and a["auc_ci"][0] <= a["auc"] <= a["auc_ci"][1]
    assert a["tpr_at_fpr_false_positives"] == {"0.001": 0, "0.01": 4}
    assert a["tpr_at_fpr_below_resolution"] == {"0.001": True, "0.01": False}
    for level, (lo, hi) in a["tpr_at_fpr_ci"].items():
        assert lo <= a["tpr_at_fpr"][level] <= hi


@pytest.mark.parametrize("render", [AuditResult.summary, rendered_table], ids=["summary", "cli-table"])
def test_numbers_within_chance_are_marked(render):
    """500 members, 5,000 non-members: an attack without information (strength 0) gets accuracy ~0.83,
    which looks like leakage next to nothing; its accuracy and advantage carry the chance mark, the
    strong attack's advantage does not; the legend gives the baseline 0.909."""
    rng = np.random.default_rng(4)
    membership = np.r_[np.ones(500, bool), np.zeros(5000, bool)]
    attacks = [AttackOutcome(name, "black-box", s, compute_metrics(s, membership), 0.5)
               for name, s in (("noise", rng.normal(size=5500)), ("strong", rng.normal(size=5500) + 2 * membership))]
    result = AuditResult("0.1.0", {"dataset": "digits", "target": "mlp"}, TargetSummary("mlp", 0.99, 0.9, 500, 5000),
                         attacks, {"total_s": 1.0}, np.arange(5500), membership, np.zeros(5500, int))
    text = render(result)
    noise = next(row for row in text.splitlines() if row.lstrip().startswith("noise")).split()
    strong = next(row for row in text.splitlines() if row.lstrip().startswith("strong")).split()
    m = attacks[0].metrics
    assert f"{m.accuracy:.3f}{CHANCE_MARK}" in noise and f"{m.advantage:.3f}{CHANCE_MARK}" in noise
    assert f"{attacks[1].metrics.advantage:.3f}" in strong and not any(c.endswith(CHANCE_MARK) for c in strong)
    assert "accuracy of calling every record a non-member: 0.909" in text
