"""The plan's record sets: no membership in the records' order, coin-flip membership for the epsilon audit."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.errors import InputError


def _plan(**settings):
    return make_plan(make_config(dataset="digits", target="logreg", reference_models=0,
                                 attacks=["threshold-loss"], **settings))


def test_membership_is_not_in_the_records_order():
    plan = _plan(members=400)
    position = np.arange(len(plan.membership))
    # members first (the old layout) gives a point-biserial correlation of -0.87 here
    r, p = stats.pearsonr(position, plan.membership)
    assert abs(r) < 0.1 and p > 0.001
    assert plan.membership.sum() == 400
    # every record keeps its own label and index: the pool is one permutation of members + non-members
    again = _plan(members=400)
    np.testing.assert_array_equal(plan.record_index, again.record_index)
    np.testing.assert_array_equal(plan.membership, again.membership)
    assert len(set(plan.record_index.tolist())) == len(plan.record_index)


def test_pool_records_are_the_dataset_records_at_their_index():
    from miaudit.data import load_dataset

    plan = _plan(members=300, input_scaling="none")
    ds = load_dataset("digits")
    np.testing.assert_array_equal(plan.pool_y, ds.y[plan.record_index])
    np.testing.assert_array_equal(plan.pool_x, ds.x[plan.record_index])


def test_coin_flip_membership_is_a_fair_coin_per_record():
    plan = _plan(members=400, coin_flip_members=True)
    n = len(plan.membership)
    assert n == 800
    k = int(plan.membership.sum())
    assert stats.binomtest(k, n, 0.5).pvalue > 0.001
    counts = {int(_plan(members=400, coin_flip_members=True, seed=s).membership.sum()) for s in range(4)}
    assert len(counts) > 1  # a coin per record, not a fixed number of members
    # the non-members are exactly the audited records outside the coin's members
    assert len(plan.test_y) == n - k
    np.testing.assert_array_equal(plan.test_x, plan.pool_x[~plan.membership])
    assert any("fair coin" in note for note in plan.notes)


def test_coin_flips_refuse_out_of_domain_non_members():
    with pytest.raises(InputError, match="coin-flip-members"):
        _plan(members=100, coin_flip_members=True, nonmember_dataset="breast-cancer")


def test_reference_seeds_are_valid_random_states_for_every_seed():
    from miaudit.audit.run import reference_seeds

    for seed in (0, 83_175, 2**32 - 1):  # 83,175 * 100,003 passed 2**32 and crashed sklearn models
        seeds = reference_seeds(make_config(seed=seed, reference_models=8))
        assert all(0 <= s < 2**32 for s in seeds) and len(set(seeds)) == 8


def _threat_models(**settings):
    plan = make_plan(make_config(dataset="digits", target="logreg", reference_models=2, population=100, **settings))
    return {s.threat_model for s in plan.attacks}, plan


def test_the_default_attacks_read_scores_and_leave_label_only_searches_to_be_asked_for():
    models, plan = _threat_models()
    assert plan.config.attacks == ["auto"]
    assert "black-box" in models and "label-only" not in models
    assert any("7 label-only ones" in n and "--attacks all" in n for n in plan.notes)
    choice = plan.attack_choice  # results.json's attack_choice block
    assert choice["ran"] == [s.name for s in plan.attacks] and choice["rung"] == "few-reference"
    assert set(choice["candidates"]) <= set(choice["ran"]) and "label-only-boundary" not in choice["candidates"]
    assert "label-only searches" in choice["why"]
    assert "label-only" in _threat_models(attacks="all")[0]  # 'all' keeps its meaning
    named, _ = _threat_models(attacks="auto,label-only-gap")
    assert "label-only" in named
    labels, _ = _threat_models(output_defense="label")  # a target that releases only labels
    assert "label-only" in labels


def _half_members_table(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,label,is_member"] + [f"{x:.3f},{z:.3f},{i % 3},{i % 2}"
                                      for i, (x, z) in enumerate(rng.standard_normal((300, 2)))]
    (tmp_path / "half.csv").write_text("\n".join(rows) + "\n")
    return dict(dataset=str(tmp_path / "half.csv"), member_column="is_member", target="logreg", reference_models=2)


def test_a_50_50_member_file_says_how_to_supply_a_population(tmp_path):
    table = _half_members_table(tmp_path)
    plan = make_plan(make_config(**table))
    assert len(plan.population_x) == 0
    note = next(n for n in plan.notes if n.startswith("no population records"))
    assert "--non-members N" in note and "skipped rmia, rmia-tempered-offsets, population" in note
    assert "ran without local offsets: lira-online-moderated-offsets, lira-offline-moderated-offsets" in note
    with pytest.raises(InputError, match=r"^rmia: needs population records .*--non-members N"):
        make_plan(make_config(**table, attacks="rmia,lira-online"))  # named: refused before any training
    fewer = make_plan(make_config(**table, attacks="rmia", non_members=100))  # the hint works
    assert len(fewer.population_x) == 50 and [s.name for s in fewer.attacks] == ["rmia"]
