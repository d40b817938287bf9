"""Torch nets, the single-model trainer, scikit-learn models, Target wrappers and the model registry."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from miaudit.errors import InputError
from miaudit.models.nets import SmallCNN, TutorialCNN
from miaudit.models.perf import resolve_precision
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.registry import TARGET_NAMES, fit_single, is_torch, model_spec
from miaudit.models.sklearn_models import fit_sklearn_model
from miaudit.models.target import Target
from miaudit.models.train import seeded_module, torch_logits, train_torch_model
from miaudit.models.wrappers import SklearnTarget, StackTarget, TorchTarget

FAST = TrainingRecipe(epochs=1, batch_size=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16).astype(np.float32).reshape(-1, 1, 8, 8), y.astype(np.int64)


def _fit(name, digits, n=300, recipe=FAST, seed=0, **kw):
    x, y = digits
    return fit_single(model_spec(name), x[:n], y[:n], 10, recipe, seed, precision="float32", **kw)


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_every_model_fits_digits_and_gives_probabilities(name, digits):
    target = _fit(name, digits)
    x_test = digits[0][1500:1550]
    logits = target.logits(x_test)
    assert isinstance(target, Target)
    assert target.name == name and target.n_classes == 10
    assert logits.shape == (50, 10) and logits.dtype == np.float32
    proba = target.predict_proba(x_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(target.predict(x_test), logits.argmax(axis=1))
    assert is_torch(model_spec(name)) == (name in ("mlp", "cnn", "small-cnn"))


def test_fully_grown_tree_memorises_its_training_data(digits):
    target = _fit("tree", digits, n=500)
    assert target.accuracy(digits[0][:500], digits[1][:500]) == 1.0


def test_tutorial_cnn_beats_chance_after_two_epochs(digits):
    x, y = digits
    target = _fit("cnn", digits, n=600, recipe=TrainingRecipe(epochs=2, batch_size=32))
    assert target.accuracy(x[1000:1400], y[1000:1400]) > 0.3  # chance is 0.1


def test_same_seed_same_model_other_seed_other_model(digits):
    recipe = TrainingRecipe(epochs=2, batch_size=32, dropout=0.3)
    x_test = digits[0][1500:1540]
    torch.manual_seed(1)
    first = _fit("small-cnn", digits, recipe=recipe, seed=7).logits(x_test)
    torch.manual_seed(2)  # global state must not matter
    again = _fit("small-cnn", digits, recipe=recipe, seed=7).logits(x_test)
    other = _fit("small-cnn", digits, recipe=recipe, seed=8).logits(x_test)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    forest_a = _fit("forest", digits, seed=3).logits(x_test)
    assert np.array_equal(forest_a, _fit("forest", digits, seed=3).logits(x_test))
    assert not np.array_equal(forest_a, _fit("forest", digits, seed=4).logits(x_test))


def test_training_leaves_global_rng_state_untouched(digits):
    torch_state, numpy_state = torch.get_rng_state().clone(), np.random.get_state()
    _fit("small-cnn", digits, recipe=TrainingRecipe(epochs=2, batch_size=32, dropout=0.5, patience=1))
    _fit("forest", digits)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2] == numpy_state[2]


def test_early_stopping_ends_training_before_the_last_epoch(digits):
    x, y = digits
    epochs_done = []
    recipe = TrainingRecipe(epochs=60, batch_size=16, lr=1e-2, patience=1)
    module = seeded_module(lambda: SmallCNN(1, 8, 10), seed=0)
    train_torch_model(module, x[:200], y[:200], recipe, seed=0, precision="float32", progress=epochs_done.append)
    assert epochs_done == list(range(1, len(epochs_done) + 1))
    assert 2 <= len(epochs_done) < 60
    assert not module.training


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_each_optimizer_lowers_the_training_loss(optimizer, digits):
    x, y = digits[0][:200], torch.from_numpy(digits[1][:200])
    module = seeded_module(lambda: SmallCNN(1, 8, 10), seed=0)
    before = torch.nn.functional.cross_entropy(torch.from_numpy(torch_logits(module, x)), y)
    recipe = TrainingRecipe(optimizer=optimizer, lr=1e-2 if optimizer != "sgd" else 5e-2, epochs=3,
                            batch_size=16, weight_decay=1e-4)
    train_torch_model(module, x, digits[1][:200], recipe, seed=0, precision="float32")
    after = torch.nn.functional.cross_entropy(torch.from_numpy(torch_logits(module, x)), y)
    assert after < before


def test_bfloat16_training_gives_finite_float32_logits(digits):
    x, y = digits
    module = seeded_module(lambda: SmallCNN(1, 8, 10), seed=0)
    train_torch_model(module, x[:200], y[:200], FAST, seed=0, precision="bfloat16")
    logits = torch_logits(module, x[:10])
    assert logits.dtype == np.float32 and np.all(np.isfinite(logits))
    assert resolve_precision("auto") in ("float32", "bfloat16")
    with pytest.raises(InputError, match="precision"):
        resolve_precision("fp8")


@pytest.mark.parametrize("net", [TutorialCNN, SmallCNN])
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 7, 5)])
def test_cnns_accept_small_and_large_images(net, shape):
    module = net(shape[0], shape[1:], 4, dropout=0.25)
    out = module(torch.zeros(2, *shape))
    assert out.shape == (2, 4)
    has_dropout = any(isinstance(m, torch.nn.Dropout) for m in module.modules())
    assert has_dropout
    assert not any(isinstance(m, torch.nn.Dropout) for m in net(shape[0], shape[1:], 4).modules())


def test_torch_logits_batches_and_handles_empty_input(digits):
    module = seeded_module(lambda: TutorialCNN(1, 8, 10), seed=0)
    x = digits[0][:50]
    np.testing.assert_allclose(torch_logits(module, x, batch_size=7), torch_logits(module, x), atol=1e-5)
    assert torch_logits(module, x[:0]).shape == (0, 10)


def test_sklearn_target_expands_classes_missing_from_training(digits):
    x, y = digits
    keep = np.isin(y, [2, 5, 9])
    tree = fit_sklearn_model("tree", x[keep][:200], y[keep][:200], seed=0)
    target = SklearnTarget("tree", tree, n_classes=10)
    logits = target.logits(x[keep][:200])
    assert logits.shape == (200, 10)
    assert np.array_equal(target.predict(x[keep][:200]), y[keep][:200])
    absent = [c for c in range(10) if c not in (2, 5, 9)]
    np.testing.assert_allclose(logits[:, absent], np.log(1e-12), rtol=1e-6)
    np.testing.assert_allclose(target.predict_proba(x[:20]).sum(axis=1), 1.0, atol=1e-6)


def test_targets_survive_pickling(digits):
    x_test = digits[0][1500:1520]
    for name in ("small-cnn", "svm"):
        target = _fit(name, digits, n=200)
        restored = pickle.loads(pickle.dumps(target))
        assert type(restored) is type(target) and restored.name == name
        assert np.array_equal(restored.logits(x_test), target.logits(x_test))


def test_mlp_target_is_a_one_model_stack_and_pickles(digits):
    target = _fit("mlp", digits, n=200, recipe=TrainingRecipe(epochs=2, batch_size=32))
    assert isinstance(target, StackTarget) and target.stack.n_models == 1
    x_test = digits[0][1500:1520]
    assert np.array_equal(pickle.loads(pickle.dumps(target)).logits(x_test), target.logits(x_test))


class _FakeStack:
    """Stands in for MLPStack: K models with fixed logits [K, m, C]."""

    def __init__(self, n_models: int):
        self.n_models, self.n_classes = n_models, 3

    def logits(self, x):
        return np.stack([np.tile([k, 0.0, -k], (len(x), 1)) for k in range(1, self.n_models + 1)]).astype(np.float32)


def test_stack_target_reads_the_single_model_of_a_stack():
    target = StackTarget("mlp", _FakeStack(1))
    assert target.n_classes == 3
    assert np.array_equal(target.logits(np.zeros((4, 2))), np.tile([1.0, 0.0, -1.0], (4, 1)))
    assert np.array_equal(target.predict(np.zeros((4, 2))), np.zeros(4))
    with pytest.raises(ValueError, match="1-model"):
        StackTarget("mlp", _FakeStack(2))


def test_torch_target_wraps_any_module():
    module = torch.nn.Linear(3, 2)
    target = TorchTarget("linear", module, 2)
    x = np.ones((5, 3), np.float32)
    expected = module(torch.ones(5, 3)).detach().numpy()
    np.testing.assert_allclose(target.logits(x), expected, atol=1e-6)
    assert target.accuracy(x, expected.argmax(1)) == 1.0


def test_bad_names_and_shapes_raise_input_error(digits):
    x, y = digits
    with pytest.raises(InputError, match="unknown model 'resnet'.*mlp.*svm"):
        model_spec("resnet")
    with pytest.raises(InputError, match="--hidden"):
        model_spec("mlp", (128, 0))
    assert model_spec("mlp", [64, 32]).hidden == (64, 32)
    with pytest.raises(InputError, match="--target cnn needs image data; wine is tabular"):
        fit_single(model_spec("cnn"), x[:50].reshape(50, -1), y[:50], 10, FAST, 0, dataset_name="wine")
    with pytest.raises(InputError, match="labels"):
        fit_single(model_spec("tree"), x[:50], y[:40], 10, FAST, 0)
