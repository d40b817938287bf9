"""QMIA, the quantile-regression attack of Bertran et al. (NeurIPS 2023), "Scalable Membership
Inference Attacks via Quantile Regression": no reference model at all.

The target's score on a record is the hinge (logit margin) of its true class,
s(x, y) = z_y - max_{c != y} z_c (log-probabilities work alike: same softmax), averaged over queries.
A quantile regressor q(x, y), fitted with the pinball loss on the population records (attacker
records the target did not train on), predicts per record the (1 - alpha) quantile of that score
among non-members like it. The attack score is s(x, y) - q(x, y): a record is called a member when
its margin exceeds the quantile predicted for it (score > 0), which fixes the false-positive rate
near alpha for every kind of record (easy and hard ones alike), not only on average.

The regressor reads the records' features (flattened, as the models see them) and the one-hot
label: scikit-learn's HistGradientBoostingRegressor(loss="quantile") where the paper trains a
network; seeded, no early stopping (deterministic). Boosted trees fitted to a 99% quantile are
optimistic on records they did not see (on a synthetic check, 1.75-2% of fresh non-members above
the predicted 99% quantile), so the fit is cross-fitted: FOLDS regressors, each on the other folds
of the population; the quantile of a record is their mean prediction plus c, the (1 - alpha)
quantile of the population's out-of-fold residuals (conformalized quantile regression, Romano et
al. 2019), which brings the false-positive rate on fresh non-members back to alpha. Folds are drawn
from the seed over the population's positions, so the audited records' order does not matter.
Needs ``AttackInputs.records`` and ``population_records`` (None for an audit of precomputed predictions).
"""
from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from miaudit.attacks.inputs import AttackInputs, AttackScores
from miaudit.errors import InputError

ALPHA = 0.01
"""Default target false-positive rate: the regressor predicts the (1 - ALPHA) quantile."""
MAX_ITER = 100
"""Boosting rounds of each quantile regressor."""
FOLDS = 5
"""Cross-fitting folds of the population."""


def hinge_score(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """z_y - max_{c != y} z_c averaged over queries: logits [..., M, Q, C], labels [M] -> float64 [..., M]."""
    z = np.asarray(logits, np.float64)
    y = np.broadcast_to(np.asarray(labels)[:, None], z.shape[:-1]).astype(np.int64)
    true = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    others = np.where(np.arange(z.shape[-1]) == y[..., None], -np.inf, z).max(axis=-1)
    return (true - others).mean(axis=-1)


def features(records: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The regressor's input: records [M, *shape] flattened, then the one-hot label: float32 [M, F + C]."""
    flat = np.asarray(records, np.float32).reshape(len(records), -1)
    return np.concatenate([flat, np.eye(n_classes, dtype=np.float32)[np.asarray(labels, np.int64)]], axis=1)


def fit_quantile_regressor(x: np.ndarray, score: np.ndarray, alpha: float, seed: int,
                           max_iter: int = MAX_ITER) -> HistGradientBoostingRegressor:
    """Pinball-loss regressor of the (1 - alpha) quantile of ``score`` [M] given ``x`` [M, F]."""
    model = HistGradientBoostingRegressor(loss="quantile", quantile=1.0 - alpha, max_iter=max_iter,
                                          learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=100,
                                          early_stopping=False, random_state=seed)
    return model.fit(x, score)


def cross_fitted_quantile(x_pop: np.ndarray, score_pop: np.ndarray, x: np.ndarray, alpha: float, seed: int,
                          max_iter: int = MAX_ITER, folds: int = FOLDS) -> tuple[np.ndarray, float]:
    """(the (1 - alpha) quantile predicted for each row of x [M], the conformal shift c): module docstring.
    x_pop [Z, F], score_pop [Z]; fewer than ``folds`` population records: one fold each."""
    z = len(score_pop)
    folds = min(folds, z)
    fold = np.random.default_rng(seed).permutation(z) % folds
    out_of_fold = np.empty(z)
    prediction = np.zeros(len(x))
    for f in range(folds):
        model = fit_quantile_regressor(x_pop[fold != f], score_pop[fold != f], alpha, seed, max_iter)
        out_of_fold[fold == f] = model.predict(x_pop[fold == f])
        prediction += model.predict(x) / folds
    shift = float(np.quantile(score_pop - out_of_fold, 1.0 - alpha))
    return prediction + shift, shift


def qmia(inputs: AttackInputs, alpha: float = ALPHA, seed: int = 0, max_iter: int = MAX_ITER) -> AttackScores:
    """QMIA scores float64 [N] (margin above the predicted (1 - alpha) quantile, in logit units);
    decision score > 0 (threshold 0.0), which aims at a false-positive rate of alpha."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"qmia: alpha must lie in (0, 1), got {alpha}")
    z = int(inputs.population_labels.shape[0])
    if z < FOLDS:
        raise InputError(f"qmia: needs at least {FOLDS} population records (attacker data no model trained on), "
                         f"got {z}")
    if inputs.records is None or inputs.population_records is None:
        raise InputError("qmia: needs the audited and population records themselves (not only predictions)")
    c = inputs.n_classes
    pop_score = hinge_score(inputs.population_target_logits, inputs.population_labels)
    quantile, shift = cross_fitted_quantile(features(inputs.population_records, inputs.population_labels, c),
                                            pop_score, features(inputs.records, inputs.labels, c), alpha, seed,
                                            max_iter)
    scores = hinge_score(inputs.target_logits, inputs.labels) - quantile
    return AttackScores(scores, scores > 0.0, 0.0, params={"alpha": float(alpha), "conformal_shift": shift})
