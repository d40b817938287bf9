"""save_target round trips: an exported target, reloaded with load_target, gives on raw records what
the in-process target gives on scaled records."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

from miaudit.data.scaling import fit_scaler
from miaudit.errors import InputError
from miaudit.models.nets import SmallCNN
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import train_mlp_stack
from miaudit.models.train import seeded_module
from miaudit.models.wrappers import SklearnTarget, StackTarget, TorchTarget
from miaudit.targets.export import save_target
from miaudit.targets.load import load_target


@pytest.fixture(scope="module")
def digits():
    """(raw x float32 [600, 64], y, scaler fitted on them): digits pixels 0..16, standardized by "auto"."""
    x, y = load_digits(return_X_y=True)
    x, y = x[:600].astype(np.float32), y[:600]
    scaler = fit_scaler(x, "standard")
    assert not scaler.is_identity
    return x, y, scaler


def test_trained_mlp_round_trips_through_onnx(tmp_path, digits, one_torch_thread):
    x, y, scaler = digits
    scaled = scaler.transform(x)
    masks = np.zeros((1, len(y)), bool)
    masks[0, :300] = True
    stack = train_mlp_stack(scaled, y, masks, 10, (32,), TrainingRecipe(epochs=3), [0], precision="float32")
    target = StackTarget("target", stack)
    path = save_target(target, tmp_path / "mlp.onnx", scaler=scaler)
    loaded = load_target(path, (64,), 10)
    assert loaded.output_kind == "logits"
    expected = target.logits(scaled)
    np.testing.assert_allclose(loaded.logits(x), expected, atol=1e-4, rtol=1e-5)
    assert np.abs(expected - target.logits(x)).max() > 1.0  # the exported model does scale its input


def test_random_forest_round_trips_through_skops(tmp_path, digits):
    x, y, scaler = digits
    scaled = scaler.transform(x)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(scaled[:300], y[:300])
    target = SklearnTarget("target", forest, 10)
    path = save_target(target, tmp_path / "forest.skops", scaler=scaler)
    assert sio.get_untrusted_types(file=path) == ["sklearn.tree._tree.Tree"]
    loaded = load_target(path, (64,), 10)
    np.testing.assert_array_equal(loaded.logits(x), target.logits(scaled))
    np.testing.assert_allclose(loaded.predict_proba(x), target.predict_proba(scaled), atol=1e-9)


def test_cnn_on_images_round_trips_with_per_channel_scaling(tmp_path):
    images = np.random.default_rng(1).uniform(0, 1, (40, 3, 8, 8)).astype(np.float32)
    images[:, 1] *= 5.0
    scaler = fit_scaler(images, "standard")
    assert scaler.mean.shape == (3, 1, 1)
    target = TorchTarget("target", seeded_module(lambda: SmallCNN(3, 8, 4), 0), 4)
    path = save_target(target, tmp_path / "cnn.onnx", scaler=scaler, feature_shape=(3, 8, 8))
    loaded = load_target(path, (3, 8, 8), 4)
    np.testing.assert_allclose(loaded.logits(images), target.logits(scaler.transform(images)), atol=1e-5)


def test_forest_on_images_round_trips_with_per_channel_scaling(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 4, (80, 3, 4, 4)).astype(np.float32) * np.float32([1, 3, 7])[:, None, None]
    labels = rng.integers(0, 3, 80)
    scaler = fit_scaler(images, "standard")
    scaled = scaler.transform(images)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(scaled[:40].reshape(40, -1), labels[:40])
    target = SklearnTarget("target", forest, 3)
    path = save_target(target, tmp_path / "forest.skops", scaler=scaler, feature_shape=(3, 4, 4))
    np.testing.assert_array_equal(load_target(path, (3, 4, 4), 3).logits(images), target.logits(scaled))


def test_export_without_scaling_and_wrong_suffixes(tmp_path, digits):
    x, y, _ = digits
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    target = SklearnTarget("target", forest, 10)
    loaded = load_target(save_target(target, tmp_path / "raw.skops"), (64,), 10)
    assert type(loaded.estimator) is RandomForestClassifier
    np.testing.assert_allclose(loaded.logits(x), target.logits(x), atol=1e-6)
    with pytest.raises(InputError) as err:
        save_target(target, tmp_path / "forest.onnx")
    assert str(err.value) == "forest.onnx: a scikit-learn target exports to skops, name the file *.skops"
    cnn = TorchTarget("target", SmallCNN(1, 8, 10), 10)
    with pytest.raises(InputError) as err:
        save_target(cnn, tmp_path / "cnn.pt")
    assert str(err.value) == "cnn.pt: a torch target exports to ONNX, name the file *.onnx"
    with pytest.raises(InputError) as err:
        save_target(cnn, tmp_path / "cnn.onnx")
    assert str(err.value) == "feature_shape: needed to export a torch module (one record's shape)"


def test_export_without_the_extras_names_them(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(InputError) as err:
        save_target(TorchTarget("target", SmallCNN(1, 8, 10), 10), tmp_path / "cnn.onnx", feature_shape=(1, 8, 8))
    assert str(err.value) == "cnn.onnx: needs onnx: pip install miaudit[onnx]"
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(InputError) as err:
        save_target(SklearnTarget("target", forest, 2), tmp_path / "forest.skops")
    assert str(err.value) == "forest.skops: needs skops: pip install miaudit[sklearn-io]"
