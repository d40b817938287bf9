"""QMIA, the quantile-regression attack of Bertran et al. (NeurIPS 2023), "Scalable Membership
Inference Attacks via Quantile Regression": no reference model at all.

The target's score on a record is the hinge (logit margin) of its true class,
s(x, y) = z_y - max_{c != y} z_c (log-probabilities work alike: same softmax), averaged over queries.
A regressor fitted on population records (attacker records the target did not train on) predicts,
per record, the distribution of that score among non-members like it; a record whose margin lies
far above what is predicted for it is called a member. This fixes the false-positive rate near
alpha for every kind of record (easy and hard ones alike), not only on average. Two regressors
(``regressor``), both reading the records' features (flattened, as the models see them) and the
one-hot label:

- ``"gaussian-mlp"`` (default): the parametrisation of the authors' released code (its
  ``use_gaussian`` option): a small MLP predicts the mean mu(x, y) and log standard deviation of the
  score, trained with the Gaussian negative log-likelihood; z = (s - mu) / sigma ranks the records at
  every FPR; stronger than the trees below on the fmnist-mlp protocol (docs/attack-ladder.md).
- ``"pinball-trees"``: the paper's pinball loss at the (1 - alpha) quantile q(x, y), with
  scikit-learn's HistGradientBoostingRegressor(loss="quantile") instead of the paper's network;
  z = s - q.

Either way the regressor is fitted on a seeded (1 - CALIBRATION_SHARE) of the population and the
score is z - c, with c the (1 - alpha) quantile of z on the held-out rest (split conformal
calibration, Romano et al. 2019): flexible regressors are optimistic on records they did not see (the
trees' 99% quantile let 1.75-2% of fresh non-members through on a synthetic check), the held-out
shift brings the false-positive rate of the decision score > 0 back to alpha. The split is drawn
over the population's positions, so the audited records' order does not matter. Needs
``AttackInputs.records`` and ``population_records`` (None for an audit of precomputed predictions).
When every population margin is the same there is nothing to regress: the score is then the
record's margin less that value.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor

from miaudit.attacks.inputs import AttackScores
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

ALPHA = 0.01
"""Default target false-positive rate of the decision."""
REGRESSORS = ("gaussian-mlp", "pinball-trees")
CALIBRATION_SHARE = 0.2
"""Share of the population held out to calibrate the decision threshold."""
MIN_POPULATION = 10
EPOCHS, HIDDEN, BATCH = 60, 256, 256
"""The Gaussian MLP: epochs over the fitted population, width of its two hidden layers, batch size (60
epochs, not 30: a closer fit of the margin's spread per record roughly doubles TPR@1% on the fmnist-mlp
protocol, docs/attack-ladder.md)."""
LOG_SIGMA_RANGE = (-7.0, 7.0)
"""The predicted log standard deviation is clipped to this range (a margin predicted almost exactly
would otherwise overflow z)."""


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


def pinball_trees(x: np.ndarray, score: np.ndarray, alpha: float, seed: int):
    """x [M, F] -> z for the rows of x: the score less its predicted (1 - alpha) quantile (pinball loss)."""
    model = HistGradientBoostingRegressor(loss="quantile", quantile=1.0 - alpha, max_iter=100, learning_rate=0.05,
                                          max_leaf_nodes=15, min_samples_leaf=100, early_stopping=False,
                                          random_state=seed).fit(x, score)
    return lambda rows, s: s - model.predict(rows)


def gaussian_mlp(x: np.ndarray, score: np.ndarray, alpha: float, seed: int):
    """x [M, F] -> z for the rows of x: (score - mu) / sigma, mu and log sigma from an MLP fitted with
    the Gaussian negative log-likelihood (inputs standardized by the fitted rows' statistics)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(),
                                  torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 2))
        inputs = torch.from_numpy((x - mean) / std).float()
        target = torch.from_numpy(score).float()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        for _ in range(EPOCHS):
            for batch in torch.randperm(len(inputs)).split(BATCH):
                out = net(inputs[batch])
                log_sigma = out[:, 1].clamp(*LOG_SIGMA_RANGE)
                loss = (log_sigma + 0.5 * ((target[batch] - out[:, 0]) * torch.exp(-log_sigma)) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    net64 = net.double()  # scored in float64: a record's z does not depend on the rows scored with it (chunks)

    def z(rows: np.ndarray, s: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net64(torch.from_numpy((rows - mean) / std).double()).numpy()
        return (s - out[:, 0]) * np.exp(-np.clip(out[:, 1], *LOG_SIGMA_RANGE))

    return z


def check_settings(alpha: float, regressor: str) -> None:
    """InputError for alpha outside (0, 1) or an unknown regressor."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"qmia: alpha must lie in (0, 1), got {alpha}")
    if regressor not in REGRESSORS:
        raise InputError(f"qmia: regressor must be one of {', '.join(REGRESSORS)}, got {regressor!r}")


def fit_standardizer(population_records: np.ndarray, population_labels: np.ndarray,
                     population_target_logits: np.ndarray, n_classes: int, alpha: float = ALPHA, seed: int = 0,
                     regressor: str = "gaussian-mlp"):
    """QMIA's fit on the Z population records (records [Z, ...], labels [Z], the target's logits
    [Z, Q, C]): ((rows [M, F], margins [M]) -> z [M], the calibration shift c, the regressor's name).
    The audited records' scores are then z(features, margins) - c, record by record."""
    check_settings(alpha, regressor)
    z = int(population_labels.shape[0])
    if z < MIN_POPULATION:
        raise InputError(f"qmia: needs at least {MIN_POPULATION} population records (attacker data no model "
                         f"trained on), got {z}")
    x_pop = features(population_records, population_labels, n_classes)
    s_pop = hinge_score(population_target_logits, population_labels)
    if np.ptp(s_pop) == 0.0:  # every population margin alike (e.g. a constant model): nothing to regress
        return (lambda rows, s: s - s_pop[0]), 0.0, "none"
    order = np.random.default_rng(seed).permutation(z)
    held = order[: max(1, int(round(CALIBRATION_SHARE * z)))]
    fit = order[len(held):]
    standardize = (gaussian_mlp if regressor == "gaussian-mlp" else pinball_trees)(x_pop[fit], s_pop[fit], alpha, seed)
    return standardize, float(np.quantile(standardize(x_pop[held], s_pop[held]), 1.0 - alpha)), regressor


def qmia(inputs: AttackInputs, alpha: float = ALPHA, seed: int = 0, regressor: str = "gaussian-mlp") -> AttackScores:
    """QMIA scores float64 [N] (z less its calibrated (1 - alpha) quantile c); decision score > 0
    (threshold 0.0), which aims at a false-positive rate of alpha. ``params``: alpha, regressor, c."""
    check_settings(alpha, regressor)
    if inputs.records is None or inputs.population_records is None:
        raise InputError("qmia: needs the audited and population records themselves (not only predictions)")
    c = inputs.n_classes
    standardize, shift, used = fit_standardizer(inputs.population_records, inputs.population_labels,
                                                inputs.population_target_logits, c, alpha, seed, regressor)
    scores = standardize(features(inputs.records, inputs.labels, c), hinge_score(inputs.target_logits, inputs.labels))
    scores = scores - shift
    return AttackScores(scores, scores > 0.0, 0.0, params={"alpha": float(alpha), "regressor": used,
                                                           "calibration_shift": shift})
