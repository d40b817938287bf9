"""LiRA online / offline on synthetic Gaussian signals where the optimal test is known."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from miaudit.attacks.calibration import balanced_accuracy_threshold
from miaudit.attacks.inputs import AttackInputs
from miaudit.attacks.lira import fit_gaussians, lira_offline, lira_online, resolve_global_variance
from miaudit.data.splits import balanced_masks
from miaudit.errors import InputError


def logits_from_phi(phi: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """2-class logits [..., 2] with z_y - z_other = phi, so the logit-scaled confidence is exactly phi."""
    labels = np.broadcast_to(labels, phi.shape)
    out = np.zeros(phi.shape + (2,), np.float64)
    np.put_along_axis(out, labels[..., None], phi[..., None], axis=-1)
    return out


class Synthetic:
    """K reference models x N records x Q queries of Gaussian phi: record n has its own mu_out ~ N(0, 1),
    mu_in = mu_out + delta; spreads sigma_in / sigma_out. The target's phi is drawn from IN or OUT by
    the true membership ``member`` (from OUT for everyone when ``signal`` is False)."""

    def __init__(self, k: int, n: int = 2000, q: int = 1, delta: float = 1.0, sigma_in: float = 0.5,
                 sigma_out: float = 0.5, signal: bool = True, seed: int = 0, ref_in: np.ndarray | None = None):
        rng = np.random.default_rng(seed)
        self.mu_out = rng.normal(0.0, 1.0, n)
        self.mu_in = self.mu_out + delta
        self.sigma_in, self.sigma_out = sigma_in, sigma_out
        self.labels = rng.integers(0, 2, n)
        self.ref_in = balanced_masks(k, n, seed + 1) if ref_in is None else ref_in
        self.phi_ref = self._draw(rng, self.ref_in[:, :, None], (k, n, q))
        self.member = rng.permutation(n) < n // 2
        self.phi_target = self._draw(rng, (self.member & signal)[:, None], (n, q))

    def _draw(self, rng, is_in, shape):
        loc = np.where(is_in, self.mu_in[:, None], self.mu_out[:, None])
        scale = np.where(is_in, self.sigma_in, self.sigma_out)
        return loc + scale * rng.normal(size=shape)

    def optimal_scores(self) -> np.ndarray:
        """The true log likelihood ratio, from the known parameters: [N]."""
        mu_in, mu_out = self.mu_in[:, None], self.mu_out[:, None]
        return (norm.logpdf(self.phi_target, mu_in, self.sigma_in)
                - norm.logpdf(self.phi_target, mu_out, self.sigma_out)).sum(axis=1)

    def inputs(self, shadow: tuple | None = None) -> AttackInputs:
        """Pool mode (shadow = the audited records) unless ``shadow`` = (logits, in, labels)."""
        k, _, q = self.phi_ref.shape
        ref_logits = logits_from_phi(self.phi_ref, self.labels[None, :, None])
        shadow = shadow or (ref_logits, self.ref_in, self.labels)
        return AttackInputs(logits_from_phi(self.phi_target, self.labels[:, None]), self.labels, ref_logits,
                            self.ref_in, *shadow, np.zeros((0, q, 2)), np.zeros((k, 0, q, 2)),
                            np.zeros(0, np.int64))


def auc(member: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(member, scores))


def test_online_with_64_models_is_near_optimal_and_offline_below_optimal():
    data = Synthetic(k=64)
    optimal = auc(data.member, data.optimal_scores())
    online, offline = lira_online(data.inputs()), lira_offline(data.inputs())
    assert abs(auc(data.member, online.scores) - optimal) < 0.02
    assert 0.8 < auc(data.member, offline.scores) <= optimal + 0.01


def test_online_beats_offline_when_in_and_out_spreads_differ():
    # Members are concentrated (sigma_in small): only a two-sided IN-vs-OUT test exploits that.
    data = Synthetic(k=64, delta=0.3, sigma_in=0.2, sigma_out=0.8)
    optimal = auc(data.member, data.optimal_scores())
    online = auc(data.member, lira_online(data.inputs()).scores)
    offline = auc(data.member, lira_offline(data.inputs()).scores)
    assert abs(online - optimal) < 0.03
    assert online > offline + 0.05


@pytest.mark.parametrize("k", [4, 16])
def test_no_member_signal_gives_chance_auc(k):
    data = Synthetic(k=k, signal=False, seed=3)
    for attack in (lira_online, lira_offline):
        assert abs(auc(data.member, attack(data.inputs()).scores) - 0.5) < 0.05


def test_more_queries_add_evidence():
    one = Synthetic(k=32, q=1, delta=0.5, seed=5)
    four = Synthetic(k=32, q=4, delta=0.5, seed=5)
    gain = auc(four.member, lira_online(four.inputs()).scores) - auc(one.member, lira_online(one.inputs()).scores)
    assert gain > 0.03


def test_auto_variance_rule_and_global_variance_with_few_models():
    few, many = Synthetic(k=4), Synthetic(k=64)
    assert resolve_global_variance(None, few.ref_in, online=True) is True
    assert resolve_global_variance(None, many.ref_in, online=True) is False
    # offline counts only OUT models: 24 of them (and no IN model) is enough for per-record variance
    assert resolve_global_variance(None, np.zeros((24, 100), bool), online=False) is False
    assert resolve_global_variance(None, np.zeros((24, 100), bool), online=True) is True
    assert resolve_global_variance(True, many.ref_in, online=True) is True
    # With 2 IN / 2 OUT models per record a per-record std is noisy; the pooled one is not.
    pooled = auc(few.member, lira_online(few.inputs(), global_variance=True).scores)
    per_record = auc(few.member, lira_online(few.inputs(), global_variance=False).scores)
    assert pooled > per_record + 0.05
    assert auc(few.member, lira_online(few.inputs()).scores) == pooled
    gauss_in, gauss_out = fit_gaussians(few.phi_ref, few.ref_in, global_variance=True)
    assert np.allclose(gauss_in.scale, 0.5, atol=0.05) and np.allclose(gauss_out.scale, 0.5, atol=0.05)


def test_records_without_in_models_borrow_the_global_shift():
    ref_in = balanced_masks(16, 1000, 7)
    ref_in[:, :200] = False  # the first 200 records are OUT for every model
    data = Synthetic(k=16, n=1000, ref_in=ref_in, seed=7)
    gauss_in, gauss_out = fit_gaussians(data.phi_ref, data.ref_in, global_variance=True)
    assert gauss_in.n_fallback == 200 and gauss_out.n_fallback == 0
    error = gauss_in.loc[:200, 0] - data.mu_in[:200]
    assert abs(error.mean()) < 0.1 and np.abs(error).max() < 0.6
    assert np.all(np.isfinite(lira_online(data.inputs()).scores))


def test_single_reference_model_still_runs_above_chance():
    data = Synthetic(k=1, seed=2)
    gauss_in, gauss_out = fit_gaussians(data.phi_ref, data.ref_in, global_variance=True)
    assert gauss_in.n_fallback == int((~data.ref_in[0]).sum())
    assert gauss_out.n_fallback == int(data.ref_in[0].sum())
    assert auc(data.member, lira_online(data.inputs()).scores) > 0.65
    assert auc(data.member, lira_offline(data.inputs()).scores) > 0.65


def test_scores_follow_the_gaussian_definitions():
    # 3 records, 4 models; record n is IN for models 0-1 and OUT for 2-3 (per-record variance).
    phi_ref = np.array([[2.0, 1.0, 3.0], [3.0, 2.0, 5.0], [0.0, -1.0, 1.0], [1.0, 0.5, 2.0]])[..., None]
    ref_in = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]], bool)
    phi_target = np.array([[2.5], [0.0], [1.5]])
    labels = np.array([0, 1, 0])
    ref_logits = logits_from_phi(phi_ref, labels[None, :, None])
    inputs = AttackInputs(logits_from_phi(phi_target, labels[:, None]), labels, ref_logits, ref_in,
                          ref_logits, ref_in, labels, np.zeros((0, 1, 2)), np.zeros((4, 0, 1, 2)),
                          np.zeros(0, np.int64))
    mu_in, sd_in = phi_ref[:2, :, 0].mean(0), phi_ref[:2, :, 0].std(0, ddof=1)  # median of 2 = mean
    mu_out, sd_out = phi_ref[2:, :, 0].mean(0), phi_ref[2:, :, 0].std(0, ddof=1)
    t = phi_target[:, 0]
    expected_online = norm.logpdf(t, mu_in, sd_in) - norm.logpdf(t, mu_out, sd_out)
    expected_offline = -np.log(norm.sf(t, mu_out, sd_out))
    assert np.allclose(lira_online(inputs, global_variance=False).scores, expected_online)
    assert np.allclose(lira_offline(inputs, global_variance=False).scores, expected_offline)


def test_online_decision_is_likelihood_ratio_above_one():
    result = lira_online(Synthetic(k=16).inputs())
    assert result.threshold == 0.0
    assert np.array_equal(result.decision, result.scores > 0)


def test_offline_threshold_is_calibrated_without_audited_membership():
    data = Synthetic(k=16, seed=4)
    result = lira_offline(data.inputs())
    accuracy = (result.decision == data.member).mean()
    # the best accuracy any threshold reaches with hindsight on the true membership
    oracle = balanced_accuracy_threshold(result.scores, data.member)
    assert accuracy > ((result.scores >= oracle) == data.member).mean() - 0.03
    # scrambling the audited target's scores must not move the threshold: it does not look at them
    shuffled = Synthetic(k=16, seed=4)
    shuffled.phi_target = shuffled.phi_target[::-1]
    assert lira_offline(shuffled.inputs()).threshold == result.threshold


def test_offline_in_attacker_mode_calibrates_on_shadow_records():
    data = Synthetic(k=16, seed=6)
    shadow = Synthetic(k=16, seed=60)  # attacker's own records, membership known per shadow model
    k, n = data.ref_in.shape
    data.ref_in = np.zeros((k, n), bool)  # audited records are OUT for every reference model
    data.phi_ref = data.mu_out[None, :, None] + 0.5 * np.random.default_rng(9).normal(size=(k, n, 1))
    shadow_part = (logits_from_phi(shadow.phi_ref, shadow.labels[None, :, None]), shadow.ref_in, shadow.labels)
    result = lira_offline(data.inputs(shadow=shadow_part))
    assert auc(data.member, result.scores) > 0.85
    assert (result.decision == data.member).mean() > 0.78
    with pytest.raises(InputError, match="trained on the audited records"):
        lira_online(data.inputs(shadow=shadow_part))


def test_single_model_offline_falls_back_to_median_threshold():
    result = lira_offline(Synthetic(k=1).inputs())
    assert result.threshold == pytest.approx(np.median(result.scores))


def test_extreme_and_zero_probabilities_give_finite_scores():
    data = Synthetic(k=8)
    inputs = data.inputs()
    target = inputs.target_logits.copy()
    with np.errstate(divide="ignore"):
        target[:10] = np.log([1.0, 0.0])  # log-probabilities with log(0) = -inf: p_y is 0 or 1
    target[10:20] = [3e4, -3e4]
    extreme = dataclasses.replace(inputs, target_logits=target)
    for attack in (lira_online, lira_offline):
        assert np.all(np.isfinite(attack(extreme).scores))


def test_errors_name_what_is_missing():
    no_models = AttackInputs.target_only(np.zeros((5, 3)), np.zeros(5, np.int64))
    for attack, name in ((lira_online, "lira-online"), (lira_offline, "lira-offline")):
        with pytest.raises(InputError, match=f"{name}: needs at least 1 reference model"):
            attack(no_models)
    data = Synthetic(k=4, n=50)
    data.ref_in = np.zeros_like(data.ref_in)
    with pytest.raises(InputError, match=r"reference_data='pool'"):
        lira_online(data.inputs())
