"""The ladder's attacks (QMIA, BASE, BaVarIA, RMIA offline with a chosen on a pseudo-target) and the
ladder's candidate lists."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from miaudit.attacks import base, bavaria, lira, qmia, rmia, rmia_offline
from miaudit.attacks.ladder import ladder_candidates
from miaudit.attacks.registry import ATTACKS
from miaudit.data.splits import balanced_masks
from miaudit.errors import InputError
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.signals.inputs import AttackInputs

NEW = ("qmia", "qmia-pinball", "base-online", "base-offline", "bavaria-online", "bavaria-offline", "bavaria-n-online",
       "bavaria-n-offline", "rmia-offline")


def log_prob_logits(p: np.ndarray) -> np.ndarray:
    """Logits [..., 2] (log-probabilities) giving class 0 the probability p [...]."""
    return np.stack([np.log(p), np.log1p(-p)], axis=-1)[..., None, :].astype(np.float64)


def pool_inputs(k: int, n: int, z: int = 400, c: int = 5, seed: int = 0) -> tuple[AttackInputs, np.ndarray]:
    """Pool-mode inputs (balanced masks) whose IN models are more confident on the true class, the
    target a member of half the records, and that membership [N]."""
    rng = np.random.default_rng(seed)
    labels, pop_y = rng.integers(0, c, n), rng.integers(0, c, z)
    member = rng.random(n) < 0.5
    ref_in = balanced_masks(k, n, seed + 1)
    hard, pop_hard = rng.normal(0, 1.5, n), rng.normal(0, 1.5, z)
    spread = np.exp(rng.normal(0, 0.5, n))  # records differ in how much their confidence varies

    def logits(is_in, y, h, s):
        out = rng.normal(0, 1, (*is_in.shape, c))
        boost = 2.0 + h + (1.5 * is_in + rng.normal(0, 1, is_in.shape)) * s
        index = np.broadcast_to(y, is_in.shape)[..., None]
        np.put_along_axis(out, index, np.take_along_axis(out, index, -1) + boost[..., None], -1)
        return out.astype(np.float32)[..., None, :]

    t, r = logits(member, labels, hard, spread), logits(ref_in, labels, hard, spread)
    pt = logits(np.zeros(z, bool), pop_y, pop_hard, 1.0)
    pr = logits(np.zeros((k, z), bool), pop_y, pop_hard, 1.0)
    ids = rng.permutation(10 * n)[:n]
    return AttackInputs(t, labels, r, ref_in, r, ref_in, labels, pt, pr, pop_y, ids, ids), member


def test_new_attacks_are_registered_with_their_needs():
    for name in NEW:
        assert name in ATTACKS and ATTACKS[name].threat_model == "black-box"
    assert ATTACKS["qmia"].unmet_need(0, False, 100, has_model=True) is None  # no reference model needed
    assert ATTACKS["qmia"].unmet_need(0, False, 0, has_model=True) is not None
    assert "records themselves" in ATTACKS["qmia"].unmet_need(0, False, 100)  # predictions only
    assert ATTACKS["base-online"].unmet_need(4, False, 100) is not None  # online: IN models needed
    assert ATTACKS["bavaria-offline"].unmet_need(1, False, 0) is None
    no_records, _ = pool_inputs(4, 50)
    assert "records themselves" in ATTACKS["qmia"].unmet_need_of(no_records)


def test_base_scores_of_a_case_worked_by_hand():
    """One record, two reference models, T = 1: the target gives its label 0.6, model 0 (IN) 0.5,
    model 1 (OUT) 0.25. Online: log 0.6 - log((0.5 + 0.25) / 2) = log 1.6 = 0.470004.
    Offline (c = 0.33, OUT model 1 only): log 0.6 - 0.33 log 0.25 = -0.510826 + 0.457477 = -0.053349."""
    target = log_prob_logits(np.array([0.6]))
    refs = log_prob_logits(np.array([[0.5], [0.25]]))
    ref_in = np.array([[True], [False]])
    labels = np.zeros(1, np.int64)
    pop = log_prob_logits(np.array([0.5]))
    inputs = AttackInputs(target, labels, refs, ref_in, refs, ref_in, labels, pop, np.stack([pop, pop]),
                          labels)
    assert base.base_online(inputs, temperature=1.0).scores[0] == pytest.approx(np.log(1.6), abs=1e-9)
    assert base.base_offline(inputs, temperature=1.0).scores[0] == pytest.approx(-0.053349, abs=1e-6)


def test_base_online_at_t1_is_rmias_likelihood_ratio():
    """Brännvall (2026): BASE is RMIA. With balanced masks, Pr(x) = 1/2 (Pr_IN + Pr_OUT) is the mean over
    all K models, so BASE online at T = 1 is log LR_x exactly, and RMIA's score (a count of population
    records below LR_x) never decreases along BASE's ranking."""
    inputs, _ = pool_inputs(k=8, n=600)
    scores = base.base_online(inputs, temperature=1.0).scores
    p_ref = np.exp(rmia.log_true_class_probability(inputs.reference_logits, inputs.labels))
    log_lr = rmia.log_true_class_probability(inputs.target_logits, inputs.labels) - np.log(
        rmia.marginal(p_ref, inputs.reference_in, ~inputs.reference_in, 0.3))
    np.testing.assert_allclose(scores, log_lr, rtol=1e-9, atol=1e-12)
    counts = rmia.rmia(inputs).scores
    assert np.all(np.diff(counts[np.argsort(scores, kind="stable")]) >= 0)


def test_base_offline_falls_back_for_records_without_out_model():
    inputs, member = pool_inputs(k=1, n=400)  # one model: the records it trained on have no OUT model
    out = base.base_offline(inputs)
    assert np.isfinite(out.scores).all() and compute_metrics(out.scores, member).auc > 0.55


def test_nig_posterior_of_a_case_worked_by_hand():
    """Prior mu0 = 0, kappa0 = 1, alpha0 = 2, beta0 = 1; values 1 and 3 (n = 2, mean 2, SS = 2):
    kappa_n = 3, mu_n = 4/3, alpha_n = 3, beta_n = 1 + 2/2 + 1 * 2 * 2^2 / (2 * 3) = 10/3.
    BaVarIA-t: 6 degrees of freedom, scale^2 = beta_n (kappa_n + 1) / (alpha_n kappa_n) = 40/27.
    BaVarIA-n: variance beta_n / (alpha_n - 1) * (kappa_n + 1) / kappa_n = 5/3 * 4/3 = 20/9.
    A record with no value gets the prior predictive: 4 dof, loc 0, scale^2 = 1 * 2 / (2 * 1) = 1."""
    prior = bavaria.NIGPrior(np.zeros(1), 1.0, 2.0, 1.0)
    phi = np.array([[[1.0], [5.0]], [[3.0], [7.0]]])  # [K=2, N=2, Q=1]
    mask = np.array([[True, False], [True, False]])
    post = bavaria.nig_posterior(phi, mask, prior)
    np.testing.assert_allclose([post.kappa[0, 0], post.mu[0, 0], post.alpha[0, 0], post.beta[0, 0]],
                               [3.0, 4.0 / 3.0, 3.0, 10.0 / 3.0])
    loc, scale, dof = post.predictive("t")
    np.testing.assert_allclose([loc[0, 0], scale[0, 0] ** 2, dof[0, 0]], [4.0 / 3.0, 40.0 / 27.0, 6.0])
    np.testing.assert_allclose([loc[1, 0], scale[1, 0] ** 2, dof[1, 0]], [0.0, 1.0, 4.0])
    loc, scale, dof = post.predictive("n")
    assert scale[0, 0] ** 2 == pytest.approx(20.0 / 9.0) and np.isinf(dof[0, 0])


def test_bavaria_approaches_lira_per_example_with_many_models():
    """With many reference models the NIG posterior is dominated by the data: BaVarIA-n online ranks
    records as LiRA online with per-example variances does; with few, the prior matters."""
    inputs, _ = pool_inputs(k=128, n=300, seed=4)
    ours = ATTACKS["bavaria-n-online"].run(inputs).scores
    theirs = lira.lira_online(inputs, variance="per-example").scores
    assert spearmanr(ours, theirs).statistic > 0.99


def test_bavaria_offline_beats_lira_offline_in_auc_with_few_models():
    """Where the paper says BaVarIA gains most: few reference models, records whose variances differ
    (here by a log-normal factor). With 4 models, both predictives beat the paper's LiRA offline (its
    global variance) in AUC (0.715 vs 0.701 on these signals; at TPR@0.1% they tie)."""
    inputs, member = pool_inputs(k=4, n=3000, seed=2)
    lira_auc = compute_metrics(lira.lira_offline(inputs).scores, member).auc
    for name in ("bavaria-offline", "bavaria-n-offline"):
        assert compute_metrics(ATTACKS[name].run(inputs).scores, member).auc > lira_auc + 0.005, name


@pytest.mark.parametrize("regressor", qmia.REGRESSORS)
def test_qmia_false_positive_rate_on_fresh_non_members_is_alpha(regressor):
    """Population-only data: every record a non-member; the target's margin on a record of features
    x (3 uniform) and label c is normal with mean 2 x0 + c and standard deviation 0.3 + 2 x1
    (heteroscedastic). Fitted on 8,000 population records, the decision calls about alpha of 6,000
    fresh non-members members, in the noisy half and the quiet half alike (a single global threshold
    would put most of its false positives in the noisy half)."""
    rng = np.random.default_rng(0)
    alpha = 0.05

    def draw(m):
        x = rng.random((m, 3)).astype(np.float32)
        y = rng.integers(0, 3, m)
        margin = 2 * x[:, 0] + y + (0.3 + 2 * x[:, 1]) * rng.normal(size=m)
        logits = np.zeros((m, 3))
        logits[np.arange(m), y] = margin  # the other classes at 0: hinge = margin
        return x, y, logits

    px, py, pl = draw(8000)
    fx, fy, fl = draw(6000)
    inputs = AttackInputs.target_only(fl, fy, pl, py, records=fx, population_records=px)
    out = qmia.qmia(inputs, alpha=alpha, seed=1, regressor=regressor)
    assert out.threshold == 0.0 and np.array_equal(out.decision, out.scores > 0)
    assert abs(out.decision.mean() - alpha) < 0.015
    noisy = fx[:, 1] > 0.5
    for half in (noisy, ~noisy):
        assert abs(out.decision[half].mean() - alpha) < 0.025
    np.testing.assert_array_equal(qmia.qmia(inputs, alpha=alpha, seed=1, regressor=regressor).scores, out.scores)
    global_threshold = np.quantile(qmia.hinge_score(pl[:, None], py), 1 - alpha)
    calls = qmia.hinge_score(fl[:, None], fy) > global_threshold
    assert calls[noisy].mean() > 2 * calls[~noisy].mean()  # what the per-record quantile avoids


def test_qmia_bad_settings_are_input_errors():
    inputs, _ = pool_inputs(k=2, n=20)
    with pytest.raises(InputError, match="qmia: needs the audited and population records"):
        qmia.qmia(inputs)
    with pytest.raises(InputError, match="alpha"):
        qmia.qmia(inputs, alpha=1.5)
    with pytest.raises(InputError, match="regressor"):
        qmia.qmia(inputs, regressor="forest")


def test_rmia_offline_at_a_one_ranks_by_the_out_ratio():
    """a = 1: Pr(x) = Pr_OUT(x), so the score never decreases along log p_target - log mean_OUT p."""
    inputs, _ = pool_inputs(k=4, n=500)
    scores = rmia_offline.rmia_offline(inputs, a=1.0).scores
    p_ref = np.exp(rmia.log_true_class_probability(inputs.reference_logits, inputs.labels))
    out_mean = (p_ref * ~inputs.reference_in).sum(0) / (~inputs.reference_in).sum(0)
    ratio = rmia.log_true_class_probability(inputs.target_logits, inputs.labels) - np.log(out_mean)
    assert np.all(np.diff(scores[np.argsort(ratio, kind="stable")]) >= 0)


def test_rmia_offline_chooses_a_on_a_pseudo_target_deterministically():
    inputs, member = pool_inputs(k=6, n=800, seed=3)
    out = ATTACKS["rmia-offline"].run(inputs)
    assert out.params["a"] in rmia_offline.A_GRID and 0.5 < out.params["pseudo_target_auc"] <= 1.0
    assert ATTACKS["rmia-offline"].run(inputs).params == out.params
    one, _ = pool_inputs(k=1, n=100)
    assert rmia_offline.rmia_offline(one).params == {"a": 0.3, "pseudo_target_auc": None}
    assert compute_metrics(out.scores, member).auc > 0.6


def test_ladder_candidates_by_budget():
    zero = ladder_candidates(0, False, 1000)
    assert zero[:2] == ["qmia", "population"] and all(n.startswith("threshold-") for n in zero[2:])
    assert ladder_candidates(0, False, 0) == [n for n in zero if n not in ("qmia", "population")]
    few = ladder_candidates(4, True, 1000)
    assert {"base-online", "bavaria-online", "rmia", "rmia-offline", "lira-offline"} <= set(few)
    assert "lira-online" not in few and "qmia" not in few
    offline_only = ladder_candidates(4, False, 1000)
    assert not any(n.endswith("-online") for n in offline_only) and "base-offline" in offline_only
    assert "rmia" not in ladder_candidates(1, True, 0)  # RMIA needs population records
    many = ladder_candidates(64, True, 1000)
    assert many[0] == "lira-online" and set(few) < set(many)
    assert ladder_candidates(16, True, 10) == many
    assert ladder_candidates(8, True, 10) == few
    for k in (0, 1, 8, 16, 64):
        assert all(name in ATTACKS for name in ladder_candidates(k, True, 10))
    with pytest.raises(ValueError):
        ladder_candidates(-1, False, 0)
