"""RMIA and the population attack (Attack-P) on synthetic model outputs."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from miaudit.attacks.population import population
from miaudit.attacks.rmia import marginal, rmia, rmia_tempered_offsets, select_temperature
from miaudit.data.splits import balanced_masks
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs


def logits_from_phi(phi: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """2-class logits [..., 2] with z_y - z_other = phi: true-class probability sigmoid(phi)."""
    labels = np.broadcast_to(labels, phi.shape)
    out = np.zeros(phi.shape + (2,), np.float64)
    np.put_along_axis(out, labels[..., None], phi[..., None], axis=-1)
    return out


def synthetic(k: int, n: int = 1500, z: int = 1000, delta: float = 1.0, sigma: float = 0.5,
              signal: bool = True, pool: bool = True, seed: int = 0) -> tuple[AttackInputs, np.ndarray]:
    """Inputs and true membership [N]. Every record (audited or population) has its own log-odds
    mu ~ N(1, 1); a model that trained on it adds delta, plus N(0, sigma) noise per model.

    pool=True: balanced IN masks over the audited records (online); pool=False: every audited record
    is OUT for every reference model, which train on their own shadow records instead (offline).
    """
    rng = np.random.default_rng(seed)
    mu, mu_pop, mu_shadow = (rng.normal(1.0, 1.0, m) for m in (n, z, n))
    labels, pop_labels, shadow_labels = (rng.integers(0, 2, m) for m in (n, z, n))

    def draw(loc, is_in):
        return loc + delta * is_in + sigma * rng.normal(size=np.shape(is_in))

    member = rng.permutation(n) < n // 2
    def masks(offset):
        return balanced_masks(k, n, seed + offset) if k else np.zeros((0, n), bool)

    ref_in = masks(1) if pool else np.zeros((k, n), bool)
    shadow_in = ref_in if pool else masks(2)
    ref_phi = draw(mu[None], ref_in)
    shadow_phi = ref_phi if pool else draw(mu_shadow[None], shadow_in)
    shadow_labels = labels if pool else shadow_labels
    inputs = AttackInputs(
        logits_from_phi(draw(mu, member & signal)[:, None], labels[:, None]), labels,
        logits_from_phi(ref_phi[..., None], labels[None, :, None]), ref_in,
        logits_from_phi(shadow_phi[..., None], shadow_labels[None, :, None]), shadow_in, shadow_labels,
        logits_from_phi(draw(mu_pop, np.zeros(z, bool))[:, None], pop_labels[:, None]),
        logits_from_phi(draw(mu_pop[None], np.zeros((k, z), bool))[..., None], pop_labels[None, :, None]),
        pop_labels)
    return inputs, member


def auc(member: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(member, scores))


def true_class_probability(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Plain softmax p_y averaged over queries, for the brute-force reference below."""
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return np.take_along_axis(p, labels[:, None, None].repeat(p.shape[-2], 1), -1)[..., 0].mean(-1)


def brute_force_counts(inputs: AttackInputs, a: float, gamma: float, temperature: float = 1.0) -> np.ndarray:
    """For every audited record, the number of population records z with LR_x / LR_z >= gamma, from
    the paper's definitions: Pr(x) the mean over the reference models (offline: the linear
    approximation with a), Pr(z) the linear approximation with a (z is OUT for every model)."""
    def p(logits, labels):
        return true_class_probability(logits / temperature, labels)

    px_model, pz_model = p(inputs.target_logits, inputs.labels), p(inputs.population_target_logits,
                                                                   inputs.population_labels)
    px_ref = np.array([p(r, inputs.labels) for r in inputs.reference_logits])
    pz_out = np.mean([p(r, inputs.population_labels) for r in inputs.population_reference_logits], axis=0)
    if inputs.has_in_models:
        px = px_ref.mean(axis=0)  # balanced masks: K/2 IN, K/2 OUT
    else:
        px = 0.5 * ((1 + a) * px_ref.mean(axis=0) + (1 - a))
    lr_x, lr_z = px_model / px, pz_model / (0.5 * ((1 + a) * pz_out + (1 - a)))
    return np.array([np.sum([lx / lz >= gamma for lz in lr_z]) for lx in lr_x])


@pytest.mark.parametrize("pool", [False, True])
def test_scores_are_the_brute_force_count_of_population_records_beaten(pool):
    inputs, _ = synthetic(k=4, n=40, z=25, pool=pool, seed=1)
    for a, gamma in ((0.3, 1.0), (0.6, 1.0), (0.3, 1.5)):
        expected = brute_force_counts(inputs, a, gamma)
        assert len(np.unique(expected)) >= 5  # the case is not degenerate
        result = rmia(inputs, gamma=gamma, offline_a=a)
        np.testing.assert_allclose(result.scores * 25, expected, atol=1e-9)
        assert result.decision is None and result.threshold is None  # decided at the audit's prior


def test_variant_orders_records_of_equal_count_by_their_likelihood_ratio():
    inputs, _ = synthetic(k=3, n=40, z=25, pool=False, seed=1)
    result = rmia_tempered_offsets(inputs, offline_a=0.3, temperature=1.0, neighbors=0)
    expected = brute_force_counts(inputs, 0.3, 2.0)  # offline: a is offline_a, nothing to fit
    assert np.array_equal(np.floor(result.scores * 26), expected)
    px_model = true_class_probability(inputs.target_logits, inputs.labels)
    px_out = np.mean([true_class_probability(r, inputs.labels) for r in inputs.reference_logits], axis=0)
    assert np.array_equal(np.argsort(result.scores), np.argsort(px_model / (0.5 * (1.3 * px_out + 0.7))))


def test_explicit_temperature_sets_the_softmax_of_every_probability():
    inputs, _ = synthetic(k=3, n=40, z=25, pool=False, seed=12)
    for t in (0.5, 2.5):
        counts = np.floor(rmia_tempered_offsets(inputs, temperature=t, neighbors=0).scores * 26)
        assert np.array_equal(counts, brute_force_counts(inputs, 0.3, 2.0, temperature=t))
    assert not np.array_equal(brute_force_counts(inputs, 0.3, 2.0, 0.5), brute_force_counts(inputs, 0.3, 2.0, 2.5))


def test_a_record_ties_with_its_population_twin():
    # audited record 0 is population record 0 (same outputs everywhere): LR_x / LR_z = 1 >= gamma = 1
    inputs, _ = synthetic(k=2, n=10, z=5, pool=False, seed=11)
    target, refs = inputs.target_logits.copy(), inputs.reference_logits.copy()
    labels = inputs.labels.copy()
    target[0], refs[:, 0] = inputs.population_target_logits[0], inputs.population_reference_logits[:, 0]
    labels[0] = inputs.population_labels[0]
    twin = dataclasses.replace(inputs, target_logits=target, reference_logits=refs, labels=labels)
    counts = [rmia(twin, gamma=g).scores[0] * 5 for g in (1.0, 1.0 + 1e-9)]
    assert counts[0] - counts[1] == pytest.approx(1)


def test_marginal_averages_in_and_out_models_and_approximates_missing_in():
    p = np.array([[0.9, 0.9, 0.2], [0.5, 0.7, 0.4], [0.3, 0.1, 0.6], [0.1, 0.3, 0.8]])  # [K=4, M=3]
    is_in = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]], bool)
    got = marginal(p, is_in, ~is_in, a=0.3)
    assert got[0] == pytest.approx(p[:, 0].mean())  # 2 IN + 2 OUT: the plain mean over K
    assert got[1] == pytest.approx(0.5 * (0.9 + (0.7 + 0.1 + 0.3) / 3))  # 1 IN, 3 OUT: halves weigh equally
    assert got[2] == pytest.approx(0.5 * (1.3 * p[:, 2].mean() + 0.7))  # no IN: linear approximation
    only_in = marginal(p[:1], np.ones((1, 3), bool), np.zeros((1, 3), bool), a=0.3)
    assert np.allclose(only_in, p[0])


@pytest.mark.parametrize("pool", [True, False])
def test_scores_rank_records_by_their_likelihood_ratio(pool):
    inputs, _ = synthetic(k=4, n=300, z=200, pool=pool, seed=2)
    scores = rmia(inputs).scores
    px_model = true_class_probability(inputs.target_logits, inputs.labels)
    px_ref = np.mean([true_class_probability(r, inputs.labels) for r in inputs.reference_logits], axis=0)
    ratio = px_model / px_ref if pool else px_model / (0.5 * (1.3 * px_ref + 0.7))
    order = np.argsort(ratio)
    assert np.all(np.diff(scores[order]) >= 0)  # monotone in LR_x
    assert scores.min() >= 0 and scores.max() <= 1


def test_more_reference_models_help_and_all_beat_chance():
    aucs = []
    for k in (1, 2, 4, 16):
        inputs, member = synthetic(k=k, seed=3)
        aucs.append(auc(member, rmia_tempered_offsets(inputs).scores))
    assert min(aucs) > 0.7
    assert aucs[-1] > aucs[0] + 0.03
    assert all(later > earlier - 0.02 for earlier, later in itertools.pairwise(aucs))


def test_offline_mode_without_in_models():
    inputs, member = synthetic(k=4, pool=False, seed=4)
    assert not inputs.has_in_models
    for attack in (rmia, rmia_tempered_offsets):
        result = attack(inputs)
        assert auc(member, result.scores) > 0.75
        assert result.decision is None


def test_no_member_signal_gives_chance_auc():
    for pool in (True, False):
        inputs, member = synthetic(k=4, signal=False, pool=pool, seed=6)
        for attack in (rmia, rmia_tempered_offsets):
            assert abs(auc(member, attack(inputs).scores) - 0.5) < 0.05


def test_n_population_limits_the_comparison_set():
    inputs, _ = synthetic(k=2, seed=7)
    counts = rmia(inputs, n_population=10).scores * 10  # at most 10 population records beaten
    assert np.allclose(counts, np.round(counts)) and counts.min() >= 0 and counts.max() <= 10
    assert len(np.unique(counts)) > 3
    counts = np.floor(rmia_tempered_offsets(inputs, n_population=10).scores * 11)
    assert counts.min() >= 0 and counts.max() <= 10 and len(np.unique(counts)) > 3
    with pytest.raises(InputError, match="n_population"):
        rmia(inputs, n_population=1001)


def test_rmia_errors_name_what_is_missing():
    inputs, _ = synthetic(k=2, n=20, z=5)
    no_population = AttackInputs(*(getattr(inputs, f) for f in (
        "target_logits", "labels", "reference_logits", "reference_in", "shadow_logits", "shadow_in",
        "shadow_labels")), np.zeros((0, 1, 2)), np.zeros((2, 0, 1, 2)), np.zeros(0, np.int64))
    with pytest.raises(InputError, match="rmia: needs population records"):
        rmia(no_population)
    no_models = AttackInputs.target_only(inputs.target_logits, inputs.labels,
                                         inputs.population_target_logits, inputs.population_labels)
    with pytest.raises(InputError, match="rmia: needs at least 1 reference model"):
        rmia(no_models)
    with pytest.raises(InputError, match="gamma"):
        rmia(inputs, gamma=0.0)
    with pytest.raises(InputError, match="offline_a"):
        rmia(inputs, offline_a=1.5)


def tpr_at(member: np.ndarray, scores: np.ndarray, fpr_max: float) -> float:
    fpr, tpr, _ = roc_curve(member, scores)
    return float(tpr[fpr <= fpr_max].max())


@pytest.mark.parametrize("k", [4, 16])
def test_temperature_picked_on_reference_models_beats_saturated_probabilities(k):
    # strong, saturating member signal: at T = 1 probabilities squeeze the likelihood ratios
    for seed in range(3):
        inputs, member = synthetic(k=k, delta=3.0, sigma=1.0, seed=seed)
        auto, plain = rmia_tempered_offsets(inputs), rmia_tempered_offsets(inputs, temperature=1.0)
        assert auto.params["temperature"] > 1.0
        assert auto.params["temperature"] == select_temperature(inputs)
        assert tpr_at(member, auto.scores, 0.01) > tpr_at(member, plain.scores, 0.01)
        assert auc(member, auto.scores) > auc(member, plain.scores)


def test_held_out_tprs_equal_the_brute_force_marginal_of_the_other_models():
    from miaudit.attacks.rmia import CALIBRATION_FPR, _held_out_tprs, fit_offline_a, log_true_class_probability

    inputs, _ = synthetic(k=5, n=400, seed=9)  # odd K: held-out subsets are unbalanced
    log_p = log_true_class_probability(inputs.shadow_logits / 2.0, inputs.shadow_labels)
    is_in = inputs.shadow_in
    expected = []
    for h in range(5):
        others = np.arange(5) != h
        p_ref = np.exp(log_p[others])
        a = fit_offline_a(p_ref, is_in[others], 0.3)
        log_lr = log_p[h] - np.log(marginal(p_ref, is_in[others], ~is_in[others], a))
        expected.append(tpr_at(is_in[h], log_lr, CALIBRATION_FPR))
    assert np.allclose(_held_out_tprs(log_p, is_in, list(range(5)), 0.3), expected)


def test_bad_temperature_and_neighbours_are_rejected():
    inputs, _ = synthetic(k=4, seed=8)
    with pytest.raises(InputError, match="temperature"):
        rmia_tempered_offsets(inputs, temperature=0.0)
    with pytest.raises(InputError, match="neighbors"):
        rmia_tempered_offsets(inputs, neighbors=-1)
    one, _ = synthetic(k=1, seed=8)
    assert select_temperature(one) == 1.0  # nothing to hold out


def test_population_attack_scores_are_loss_percentiles_and_beat_chance():
    inputs, member = synthetic(k=0, seed=8)
    result = population(inputs)
    member_loss = -np.log(true_class_probability(inputs.target_logits, inputs.labels))
    pop_loss = -np.log(true_class_probability(inputs.population_target_logits, inputs.population_labels))
    assert np.allclose(result.scores, [(pop_loss >= x).mean() for x in member_loss])
    assert auc(member, result.scores) > 0.65
    assert result.decision is None and result.threshold is None  # decided at the audit's prior


def test_population_scores_count_ties_as_at_least_as_large():
    pop_logits = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])  # losses decrease down the rows
    inputs = AttackInputs.target_only(pop_logits.copy(), np.zeros(3, np.int64), pop_logits, np.zeros(3, np.int64))
    assert np.allclose(population(inputs).scores, [1 / 3, 2 / 3, 1.0])  # each counts itself


def test_population_alpha_rule_fixes_the_false_positive_rate():
    inputs, member = synthetic(k=0, n=4000, z=3000, seed=9)
    for alpha in (0.05, 0.2):
        decision = population(inputs, alpha=alpha).decision
        assert decision[~member].mean() == pytest.approx(alpha, abs=0.025)
        assert decision[member].mean() > alpha + 0.1


def test_population_attack_errors():
    inputs = AttackInputs.target_only(np.zeros((5, 3)), np.zeros(5, np.int64))
    with pytest.raises(InputError, match="population: needs population records"):
        population(inputs)
    with_pop = AttackInputs.target_only(np.zeros((5, 3)), np.zeros(5, np.int64), np.zeros((4, 3)),
                                        np.zeros(4, np.int64))
    with pytest.raises(InputError, match="alpha"):
        population(with_pop, alpha=1.0)


def biased_target(inputs: AttackInputs, bias: float) -> AttackInputs:
    """The target's log-odds raised by ``bias`` on every record of label 1, audited and population:
    a target more confident than the reference models on one class, members or not."""
    def shift(logits, labels):  # logits [M, Q, 2], labels [M]
        y = np.broadcast_to(labels[:, None, None], (*logits.shape[:-1], 1))
        phi = (np.take_along_axis(logits, y, -1) - np.take_along_axis(logits, 1 - y, -1))[..., 0]
        return logits_from_phi(phi + bias * (labels[:, None] == 1), labels[:, None])

    return dataclasses.replace(inputs, target_logits=shift(inputs.target_logits, inputs.labels),
                               population_target_logits=shift(inputs.population_target_logits,
                                                              inputs.population_labels))


def test_local_offsets_remove_a_targets_class_bias():
    inputs, member = synthetic(k=8, n=1500, z=1500, seed=21)
    biased = biased_target(inputs, 1.5)
    plain = auc(member, rmia_tempered_offsets(biased, neighbors=0).scores)
    corrected = auc(member, rmia_tempered_offsets(biased).scores)
    unbiased = auc(member, rmia_tempered_offsets(inputs).scores)
    assert abs(auc(member, rmia(biased).scores) - plain) < 0.05  # the paper's RMIA has no offsets
    # the bias makes half of the non-members look like members to plain RMIA; the offsets, measured
    # on population records of the same label, take it out again
    assert corrected > plain + 0.05
    assert abs(corrected - unbiased) < 0.02
