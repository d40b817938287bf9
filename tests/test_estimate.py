"""The run-time estimate printed before an audit whose attacks will take minutes."""
from __future__ import annotations

from miaudit.attacks.registry import attack_specs
from miaudit.audit.config import make_config
from miaudit.audit.estimate import estimate_attacks, runtime_notice
from miaudit.audit.plan import make_plan
from miaudit.audit.run import print_runtime_notice


def test_label_only_searches_dominate_a_forest_audit_of_10k_rows():
    # issue 22: a forest over 10k rows, --attacks all, K = 8: 18 min 51 s, 95% of it label-only searches
    every = estimate_attacks(attack_specs(["all"]), 5000, 8, target="forest", cores=2)
    assert 5 * 60 < every.wall_s < 60 * 60
    assert every.label_only_s > 0.9 * sum(every.seconds.values())
    scores = estimate_attacks(attack_specs(["auto"]), 5000, 8, target="forest", cores=2)
    assert scores.label_only_s == 0 and scores.wall_s < 60
    notice = runtime_notice(attack_specs(["all"]), 5000, 8, 1, "forest", 2, ["all"])
    assert "label-only-boundary-lira" in notice and "--attacks auto" in notice
    assert runtime_notice(attack_specs(["auto"]), 5000, 8, 1, "forest", 2, ["auto"]) is None


def test_the_estimate_grows_with_records_and_reference_models():
    specs = attack_specs(["label-only-noise-lira", "lira-online"])
    base = estimate_attacks(specs, 1000, 8).seconds
    more = estimate_attacks(specs, 2000, 16).seconds
    assert all(more[n] > 1.9 * base[n] for n in base)


def test_the_audit_prints_it_before_any_training(capsys):
    plan = make_plan(make_config(dataset="digits", target="forest", reference_models=8, attacks="all", n_jobs=1))
    print_runtime_notice(plan)
    err = capsys.readouterr().err
    assert "estimated attack time" in err and "898 audited records" in err
    print_runtime_notice(make_plan(make_config(dataset="digits", target="forest", reference_models=8, n_jobs=1)))
    assert capsys.readouterr().err == ""
