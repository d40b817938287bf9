"""Training-time defenses in the batched MLP stack and the single-model trainer: early stopping on a
validation split, label smoothing."""
from __future__ import annotations

import numpy as np
import pytest

from miaudit.models.nets import SmallCNN
from miaudit.models.recipe import TrainingRecipe, validation_split
from miaudit.models.stack import train_mlp_stack
from miaudit.models.stack_early_stopping import StackEarlyStopping
from miaudit.models.train import seeded_module, torch_logits, train_torch_model
from miaudit.signals.functions import max_confidence

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NOISY = TrainingRecipe(epochs=40, batch_size=32, lr=1e-2)


@pytest.fixture(scope="module")
def data():
    """300 records, 3 classes, 25% of labels random: long training overfits."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    flip = rng.random(300) < 0.25
    y[flip] = rng.integers(0, 3, flip.sum())
    return x, y


def test_validation_split_is_seeded_disjoint_and_sized():
    recipe = TrainingRecipe(patience=2, validation_fraction=0.2)
    tr, va = validation_split(100, recipe, seed=3)
    assert len(va) == 20 and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100
    np.testing.assert_array_equal(va, validation_split(100, recipe, seed=3)[1])
    assert len(validation_split(100, TrainingRecipe(), seed=3)[1]) == 0


def test_stack_early_stopping_stops_before_the_last_epoch_and_limits_overfitting(data, monkeypatch):
    x, y = data
    masks = np.zeros((2, 300), bool)
    masks[0, :150], masks[1, 150:] = True, True
    epochs_run = []
    real = StackEarlyStopping.epoch_done

    def counting(self, *a):
        done = real(self, *a)
        epochs_run.append(done)
        return done

    monkeypatch.setattr(StackEarlyStopping, "epoch_done", counting)
    stopped = train_mlp_stack(x, y, masks, 3, (64,), NOISY.model_copy(update={"patience": 2}), [1, 2], "float32")
    full = train_mlp_stack(x, y, masks, 3, (64,), NOISY, [1, 2], "float32")
    assert 2 < len(epochs_run) < NOISY.epochs and epochs_run[-1]
    for model, rows in ((0, slice(0, 150)), (1, slice(150, 300))):
        train_acc_stopped = (stopped.logits(x[rows])[model].argmax(1) == y[rows]).mean()
        train_acc_full = (full.logits(x[rows])[model].argmax(1) == y[rows]).mean()
        assert train_acc_stopped < train_acc_full  # it could not memorise the noisy labels


def test_stack_early_stopping_gives_each_model_what_it_gets_alone(data):
    x, y = data
    masks = np.random.default_rng(1).random((3, 300)) < np.array([[0.3], [0.5], [0.8]])
    recipe = NOISY.model_copy(update={"patience": 2, "epochs": 15})
    together = train_mlp_stack(x, y, masks, 3, (16,), recipe, [5, 6, 7], "float32").logits(x)
    for k in range(3):
        alone = train_mlp_stack(x, y, masks[k:k + 1], 3, (16,), recipe, [[5, 6, 7][k]], "float32").logits(x)[0]
        np.testing.assert_allclose(alone, together[k], rtol=1e-4, atol=1e-4)


def test_label_smoothing_lowers_confidence_in_the_stack_and_the_cnn_trainer(data):
    x, y = data
    masks = np.ones((1, 300), bool)
    recipe = NOISY.model_copy(update={"epochs": 10})
    plain = train_mlp_stack(x, y, masks, 3, (32,), recipe, [1], "float32").logits(x)[0]
    smooth = train_mlp_stack(x, y, masks, 3, (32,), recipe.model_copy(update={"label_smoothing": 0.3}), [1],
                             "float32").logits(x)[0]
    assert max_confidence(smooth).mean() < max_confidence(plain).mean() - 0.05
    assert (smooth.argmax(1) == y).mean() > 0.6

    images = np.random.default_rng(2).random((120, 1, 8, 8)).astype(np.float32)
    labels = (images[:, 0, :4].mean((1, 2)) > 0.5).astype(np.int64)
    cnn = TrainingRecipe(epochs=8, batch_size=16, lr=3e-3)
    outs = []
    for ls in (0.0, 0.3):
        module = seeded_module(lambda: SmallCNN(1, 8, 2), seed=0)
        train_torch_model(module, images, labels, cnn.model_copy(update={"label_smoothing": ls}), 0, "float32")
        outs.append(torch_logits(module, images))
    assert max_confidence(outs[1]).mean() < max_confidence(outs[0]).mean()
