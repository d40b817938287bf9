"""DP-SGD bookkeeping through Opacus's RDP accountant: the noise multiplier a recipe trains with,
and the (ε, δ) its training spends.

Both trainers draw minibatches by shuffling and cutting into batch_size pieces (as Opacus does with
poisson_sampling=False); the accountant, like Opacus's, treats each step as Poisson sampling at
rate batch_size / n. Early stopping only takes fewer steps, so the ε of all epochs bounds it.
"""
from __future__ import annotations

from functools import lru_cache

from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.recipe import TrainingRecipe, validation_split

# Opacus's default RDP orders stop at 63; small ε with strong noise wants larger orders (a tighter ε)
ALPHAS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + list(range(64, 513, 8)))


def sample_rate(recipe: TrainingRecipe, n_train: int) -> float:
    """batch_size / n_train, at most 1."""
    return min(1.0, recipe.batch_size / max(1, n_train))


def steps(recipe: TrainingRecipe, n_train: int) -> int:
    """Optimizer steps of the whole training: epochs x ceil(n_train / batch_size)."""
    return recipe.epochs * -(-max(1, n_train) // recipe.batch_size)


def noise_multiplier(recipe: TrainingRecipe, n_train: int) -> float:
    """σ of a DP-SGD recipe for a model trained on n_train records (solved for dp_epsilon when given)."""
    if recipe.dp_noise_multiplier is not None:
        return float(recipe.dp_noise_multiplier)
    if recipe.dp_epsilon is None:
        raise InputError("dp: the recipe does not train with DP-SGD")
    return _solve(recipe.dp_epsilon, recipe.dp_delta, sample_rate(recipe, n_train), steps(recipe, n_train))


@lru_cache(maxsize=256)
def _solve(epsilon: float, delta: float, rate: float, n_steps: int) -> float:
    utils = require("opacus.accountants.utils", "dp", "--dp-epsilon")
    try:
        return float(utils.get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=rate,
                                                steps=n_steps, accountant="rdp", epsilon_tolerance=0.01,
                                                alphas=list(ALPHAS)))
    except ValueError as err:
        raise InputError(f"--dp-epsilon: no noise multiplier reaches ε = {epsilon:g} at δ = {delta:g} "
                         f"({str(err).splitlines()[0]})") from None


def accountant_epsilon(sigma: float, rate: float, n_steps: int, delta: float) -> float:
    """ε spent by n_steps DP-SGD steps with noise multiplier sigma at sample rate ``rate`` (Opacus RDP);
    inf for sigma = 0."""
    if sigma <= 0:
        return float("inf")
    rdp = require("opacus.accountants", "dp", "--dp-noise-multiplier").RDPAccountant()
    rdp.history = [(float(sigma), float(rate), int(n_steps))]
    return float(rdp.get_epsilon(delta=delta, alphas=list(ALPHAS)))


def privacy_block(recipe: TrainingRecipe, n_train: int) -> dict:
    """The results.json "privacy" block of a target trained by ``recipe`` on n_train records."""
    sigma = noise_multiplier(recipe, n_train)
    rate, n_steps = sample_rate(recipe, n_train), steps(recipe, n_train)
    return {"dp_sgd": True, "accountant_epsilon": accountant_epsilon(sigma, rate, n_steps, recipe.dp_delta),
            "accountant_delta": recipe.dp_delta, "noise_multiplier": sigma, "max_grad_norm": recipe.dp_max_grad_norm,
            "accountant": "opacus-rdp", "sample_rate": rate, "steps": n_steps, "training_records": int(n_train),
            "sampling": "shuffled fixed-size batches (the accountant assumes Poisson sampling, as Opacus's does)"}


def target_privacy(recipe: TrainingRecipe, n_members: int, seed: int) -> dict | None:
    """privacy_block of a torch target trained on n_members records (less its early-stopping
    hold-out, drawn with ``seed`` as the trainers do), or None when the recipe is not DP-SGD."""
    if not recipe.dp:
        return None

    return privacy_block(recipe, len(validation_split(n_members, recipe, seed)[0]))
