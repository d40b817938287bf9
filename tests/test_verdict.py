"""The verdict (issue 21): a leakage test with power in the tail, bands from the estimated leak, and a
headline attack chosen without the audited records' membership labels."""
from __future__ import annotations

import re

import numpy as np
import pytest

from miaudit.attacks.choice import choose_attack, pseudo_target, pseudo_target_indices, rule_choice
from miaudit.attacks.registry import attack_specs
from miaudit.audit.run import audit
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.metrics.leak_test import leak_test, tail_rank_test
from miaudit.report.html import render_html
from miaudit.report.results import AttackOutcome, AuditResult, TargetSummary
from miaudit.signals.inputs import AttackInputs

BADGE = re.compile(r'<span class="badge">([^<]+)</span>')
HEADLINE = re.compile(r"(?:Strongest|Headline) attack:</b> ([\w-]+)")


def one_attack_result(scores: np.ndarray, membership: np.ndarray) -> AuditResult:
    n = len(scores)
    m = compute_metrics(scores, membership)
    return AuditResult("0", {"dataset": "sim", "target": "sim"}, TargetSummary("sim", 1.0, 0.5, int(membership.sum()),
                       int((~membership).sum())), [AttackOutcome("lira-online", "black-box", scores, m, 0.0)],
                       {}, np.arange(n), membership, np.zeros(n, int))


def tail_leak(seed: int, n_members: int, n_non_members: int, leaked: int):
    """N(0, 1) scores; ``leaked`` members moved above every non-member."""
    rng = np.random.default_rng(seed)
    membership = np.r_[np.ones(n_members, bool), np.zeros(n_non_members, bool)]
    scores = rng.normal(size=len(membership))
    top = rng.choice(n_members, leaked, replace=False)
    scores[top] = scores[~membership].max() + 1.0 + rng.exponential(size=leaked)
    return scores, membership


def badge(scores, membership) -> str:
    page = render_html(one_attack_result(scores, membership), b"png", b"png")
    return BADGE.search(page).group(1)


def test_tail_leak_is_never_called_no_leakage():
    # 75 of 2,500 members above every non-member: chance ~1e-23 without leakage (was "none" in 112 of 200)
    for seed in range(8):
        assert badge(*tail_leak(seed, 2500, 2500, 75)) != "No measurable leakage"
    scores, membership = tail_leak(0, 2500, 2500, 75)
    test = leak_test(scores, membership)
    assert test.rejects and test.tail_hits >= 75 and test.p_value < 1e-18


def test_band_does_not_depend_on_the_number_of_non_members():
    # the same 10%-at-zero-false-positive leak (was "Moderate" at 2,500 non-members, "High" at 5,000)
    for seed in range(3):
        titles = {badge(*tail_leak(seed, 2500, n0, 250)) for n0 in (2500, 5000, 10000)}
        assert titles == {"High leakage"}


def test_pure_noise_is_no_measurable_leakage_in_most_audits():
    rng = np.random.default_rng(7)
    membership = np.r_[np.ones(449, bool), np.zeros(449, bool)]
    calls = [leak_test(rng.normal(size=898), membership).rejects for _ in range(300)]
    assert sum(calls) <= 9  # level 1%: 3 expected of 300; 9 is far out in the binomial tail
    assert badge(np.random.default_rng(1).normal(size=898), membership) == "No measurable leakage"


def test_tail_rank_test_is_the_exact_hypergeometric_tail():
    # 3 members above every non-member (k = 0) of 5 + 5: P = (5/10)(4/9)(3/8)
    members, non = np.array([9.0, 8.0, 7.0, 0.0, 0.0]), np.array([1.0, 0.5, 0.2, 0.1, 0.0])
    hits, p = tail_rank_test(members, non, 0)
    assert hits == 3 and p == pytest.approx(5 / 10 * 4 / 9 * 3 / 8)


def _prediction_arrays(seed: int, n: int = 600, k: int = 8, c: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    difficulty = rng.normal(size=n)
    masks = rng.random((k, n)) < 0.5
    membership = rng.random(n) < 0.5

    def logits(inside):
        z = rng.normal(scale=0.5, size=(n, c)).astype(np.float32)
        z[np.arange(n), labels] += 1.0 + difficulty + 1.5 * inside
        return z

    return {"labels": labels, "membership": membership.astype(np.int8), "target_logits": logits(membership),
            "reference_logits": np.stack([logits(m) for m in masks]), "reference_masks": masks.astype(np.int8)}


def test_headline_attack_does_not_change_when_the_membership_labels_are_permuted(tmp_path):
    arrays = _prediction_arrays(0)
    attacks = ["threshold-loss", "threshold-confidence", "threshold-entropy", "lira-online", "lira-offline"]
    heads = []
    for i in range(4):
        a = dict(arrays)
        if i:
            a["membership"] = np.random.default_rng(i).permutation(arrays["membership"])
        path = tmp_path / f"p{i}.npz"
        np.savez(path, **a)
        result = audit(predictions=str(path), attacks=attacks, progress=False)
        heads.append(HEADLINE.search(render_html(result, b"png", b"png")).group(1))
        if i == 0:
            first = result
    assert len(set(heads)) == 1, heads
    assert first.to_dict()["verdict"]["chosen_by"] == "pseudo-targets"
    assert first.to_dict()["verdict"]["attack"] == heads[0]


def _inputs(seed: int = 0, n: int = 50, k: int = 5) -> AttackInputs:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(k, n, 1, 3)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    pop_ref = rng.normal(size=(k, 7, 1, 3)).astype(np.float32)
    mask = rng.random((k, n)) < 0.5
    return AttackInputs(rng.normal(size=(n, 1, 3)).astype(np.float32), labels, ref, mask, ref, mask, labels,
                        rng.normal(size=(7, 1, 3)).astype(np.float32), pop_ref, rng.integers(0, 3, 7))


def test_pseudo_target_is_reference_k_against_the_others():
    x = _inputs()
    view, membership = pseudo_target(x, 2)
    others = [0, 1, 3, 4]
    np.testing.assert_array_equal(view.target_logits, x.reference_logits[2])
    np.testing.assert_array_equal(view.population_target_logits, x.population_reference_logits[2])
    np.testing.assert_array_equal(membership, x.reference_in[2])
    np.testing.assert_array_equal(view.reference_logits, x.reference_logits[others])
    np.testing.assert_array_equal(view.reference_in, x.reference_in[others])
    np.testing.assert_array_equal(view.population_reference_logits, x.population_reference_logits[others])
    assert view.shadow_records_are_audited and view.shadow_logits is view.reference_logits
    assert pseudo_target_indices(x, 4) == [0, 1, 3, 4]


def test_choice_falls_back_to_the_rule_without_in_models():
    x = _inputs()
    offline = AttackInputs.target_only(x.target_logits, x.labels)
    specs = attack_specs(["threshold-loss", "label-only-gap", "population"])
    assert choose_attack(specs, offline).chosen_by == "rule"
    assert rule_choice(["threshold-loss", "label-only-gap", "population"]).chosen == "population"
    assert choose_attack(specs, None).chosen == "population"


def test_a_p_value_that_underflows_is_not_printed_as_zero():
    """A total leak's p-value underflows to 0.0 in float64: the page and console say "< 1e-300", never "p = 0"."""
    from miaudit.metrics.leak_test import leak_test, p_phrase

    scores = np.arange(6000.0)
    test = leak_test(scores, scores >= 3000)
    assert test.p_value == 0.0 and test.rejects
    assert p_phrase(test.p_value) == "< 1e-300" and "p = 0" not in test.describe()
    assert p_phrase(0.0123) == "= 0.012" and p_phrase(3.4e-9) == "= 3.4e-09"
