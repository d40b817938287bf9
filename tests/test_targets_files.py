"""Model files (ONNX, TorchScript, torch.export, skops, pickle) loaded and checked by load_target."""
from __future__ import annotations

import pickle
import sys
import warnings

import joblib
import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.svm import LinearSVC
from torch import nn

from miaudit.errors import InputError
from miaudit.models.target import Target
from miaudit.models.wrappers import SklearnTarget
from miaudit.targets.load import load_target
from miaudit.targets.onnx_file import OnnxTarget
from miaudit.targets.torch_file import TorchFileTarget

RNG = np.random.default_rng(0)
X14 = RNG.standard_normal((37, 14)).astype(np.float32)


def _mlp(d_in: int = 14, n_classes: int = 3, softmax: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(d_in, 8), nn.ReLU(), nn.Linear(8, n_classes)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else [])).eval()


def _torch_out(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _onnx(module: nn.Module, path, record_shape=(14,), batch: int | None = None):
    dynamic = None if batch else {"x": {0: "n"}, "logits": {0: "n"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(batch or 2, *record_shape),), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"], dynamic_axes=dynamic)
    return path


def _script(module: nn.Module, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        torch.jit.script(module).save(str(path))


def _message(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_onnx_logits_match_the_module_and_are_detected_as_logits(tmp_path):
    module = _mlp()
    target = load_target(_onnx(module, tmp_path / "m.onnx"), (14,), 3)
    assert isinstance(target, OnnxTarget) and isinstance(target, Target) and target.output_kind == "logits"
    np.testing.assert_allclose(target.logits(X14), _torch_out(module, X14), atol=1e-5)
    np.testing.assert_allclose(target.predict_proba(X14).sum(axis=1), 1.0, atol=1e-6)


def test_onnx_probability_output_is_detected_and_becomes_log_probabilities(tmp_path):
    module = _mlp(softmax=True)
    path = _onnx(module, tmp_path / "p.onnx")
    target = load_target(path, (14,), 3)
    assert target.output_kind == "probabilities"
    np.testing.assert_allclose(target.logits(X14), np.log(_torch_out(module, X14)), atol=1e-5)
    forced = load_target(path, (14,), 3, output="logits")
    np.testing.assert_allclose(forced.logits(X14), _torch_out(module, X14), atol=1e-6)


def test_onnx_claimed_probabilities_that_are_logits_is_an_error(tmp_path):
    module = _mlp()
    with torch.no_grad():  # every record gets logits (-1, 2, 3)
        module[2].weight.zero_()
        module[2].bias.copy_(torch.tensor([-1.0, 2.0, 3.0]))
    with pytest.raises(InputError) as err:
        load_target(_onnx(module, tmp_path / "m.onnx"), (14,), 3, output="probabilities")
    assert _message(err) == ("m.onnx: output 'logits' is not probabilities (negative values, first in record 0); "
                             "pass output='logits' (or auto)")


def test_corrupted_onnx_is_one_line_naming_the_file(tmp_path):
    path = _onnx(_mlp(), tmp_path / "bad.onnx")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError) as err:
        load_target(path, (14,), 3)
    assert _message(err).startswith("bad.onnx: not an ONNX model onnxruntime can load (")


def test_onnx_wrong_input_width_and_wrong_class_count(tmp_path):
    path = _onnx(_mlp(d_in=30), tmp_path / "model.onnx", (30,))
    with pytest.raises(InputError) as err:
        load_target(path, (14,), 3)
    assert _message(err) == "model.onnx: input 'x' takes 30 features, the data has 14"
    with pytest.raises(InputError) as err:
        load_target(path, (30,), 10)
    assert _message(err) == "model.onnx: output 'logits' gives 3 classes, the data has 10"
    with pytest.raises(InputError) as err:
        load_target(path, (1, 5, 5), 3)
    assert _message(err) == "model.onnx: input 'x' takes records of shape (30), the data has (1, 5, 5)"


def test_onnx_flat_model_on_images_and_a_static_batch(tmp_path):
    module = _mlp(d_in=64)
    images = RNG.standard_normal((11, 1, 8, 8)).astype(np.float32)
    expected = _torch_out(module, images.reshape(11, 64))
    flat = load_target(_onnx(module, tmp_path / "flat.onnx", (64,)), (1, 8, 8), 3)
    np.testing.assert_allclose(flat.logits(images), expected, atol=1e-5)
    static = load_target(_onnx(module, tmp_path / "static.onnx", (64,), batch=4), (64,), 3)
    assert static.fixed_batch == 4
    np.testing.assert_allclose(static.logits(images.reshape(11, 64)), expected, atol=1e-5)


def test_file_targets_pickle_by_reloading(tmp_path):
    target = load_target(_onnx(_mlp(softmax=True), tmp_path / "p.onnx"), (14,), 3)
    again = pickle.loads(pickle.dumps(target))
    assert again.output_kind == "probabilities"
    np.testing.assert_array_equal(again.logits(X14), target.logits(X14))


def test_torchscript_and_export_archives(tmp_path):
    module = _mlp()
    _script(module, tmp_path / "m.pt")
    dim = torch.export.Dim("n")
    program = torch.export.export(module, (torch.zeros(2, 14),), dynamic_shapes=({0: dim},))
    torch.export.save(program, str(tmp_path / "m.pt2"))
    for name in ("m.pt", "m.pt2"):
        target = load_target(tmp_path / name, (14,), 3)
        assert isinstance(target, TorchFileTarget) and target.output_kind == "logits"
        np.testing.assert_allclose(target.logits(X14), _torch_out(module, X14), atol=1e-5)


def test_torch_archive_errors(tmp_path):
    module = _mlp(d_in=30)
    _script(module, tmp_path / "m.pt")
    torch.export.save(torch.export.export(module, (torch.zeros(4, 30),)), str(tmp_path / "m.pt2"))
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "m.pt", (14,), 3)
    assert _message(err).startswith("m.pt: a forward pass on records of shape (14,) fails (")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "m.pt2", (14,), 3)
    assert _message(err) == "m.pt2: input takes 30 features, the data has 14"
    static = load_target(tmp_path / "m.pt2", (30,), 3)  # exported for batches of exactly 4 records
    x = RNG.standard_normal((9, 30)).astype(np.float32)
    np.testing.assert_allclose(static.logits(x), _torch_out(module, x), atol=1e-5)
    torch.save(module.state_dict(), str(tmp_path / "weights.pt"))
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "weights.pt", (30,), 3)
    assert _message(err).startswith("weights.pt: not a TorchScript archive (")


class UserForest(RandomForestClassifier):
    """An estimator class skops does not know."""


def _forest(cls=RandomForestClassifier, classes=(0, 1)):
    y = np.where(X14[:, 0] > 0, classes[1], classes[0])
    return cls(n_estimators=5, random_state=0).fit(X14, y)


def test_skops_forest_loads_as_a_sklearn_target(tmp_path):
    forest = _forest()
    sio.dump(forest, tmp_path / "f.skops")
    target = load_target(tmp_path / "f.skops", (14,), 2)
    assert isinstance(target, SklearnTarget)
    expected = np.log(np.clip(forest.predict_proba(X14), 1e-12, None))
    np.testing.assert_allclose(target.logits(X14), expected, atol=1e-6)
    boosted = HistGradientBoostingClassifier(max_iter=3).fit(X14, X14[:, 1] > 0)
    sio.dump(boosted, tmp_path / "b.skops")
    np.testing.assert_array_equal(load_target(tmp_path / "b.skops", (14,), 2).estimator.predict_proba(X14),
                                  boosted.predict_proba(X14))


def test_skops_refuses_unknown_types_unless_trusted(tmp_path):
    sio.dump(_forest(UserForest), tmp_path / "u.skops")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "u.skops", (14,), 2)
    assert _message(err) == (f"u.skops: holds types skops does not trust ({__name__}.UserForest); "
                             "loading them may run code: pass --trust-pickle if you trust this file")
    assert isinstance(load_target(tmp_path / "u.skops", (14,), 2, trust_pickle=True).estimator, UserForest)


def test_pickle_and_joblib_need_trust(tmp_path):
    forest = _forest()
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(forest))
    joblib.dump(forest, tmp_path / "model.joblib")
    for name in ("model.pkl", "model.joblib"):
        with pytest.raises(InputError) as err:
            load_target(tmp_path / name, (14,), 2)
        assert _message(err) == (f"{name}: loading a pickle runs code; pass --trust-pickle if you trust this "
                                 "file, or save it with skops")
        target = load_target(tmp_path / name, (14,), 2, trust_pickle=True)
        np.testing.assert_allclose(target.predict_proba(X14), forest.predict_proba(X14), atol=1e-9)


def test_sklearn_estimator_checks(tmp_path):
    sio.dump(_forest(), tmp_path / "f.skops")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "f.skops", (4,), 2)
    assert _message(err) == "f.skops: RandomForestClassifier takes 14 features, the data has 4"
    sio.dump(_forest(classes=(1, 2)), tmp_path / "c.skops")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "c.skops", (14,), 2)
    assert _message(err) == ("c.skops: RandomForestClassifier's classes_ (1, 2) are not labels in 0..1; "
                             "train it on the labels as miaudit encodes them")
    assert load_target(tmp_path / "c.skops", (14,), 3).logits(X14).shape == (37, 3)
    sio.dump(LinearSVC().fit(X14, X14[:, 0] > 0), tmp_path / "svm.skops")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "svm.skops", (14,), 2)
    assert _message(err) == "svm.skops: LinearSVC has no predict_proba; an audit needs class probabilities"
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "junk.skops", (14,), 2)
    assert _message(err) == "junk.skops: not a skops file (File is not a zip file)"


def test_load_target_suffixes_and_missing_files(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "model.h5", (14,), 2)
    assert _message(err) == (
        "model.h5: unknown model file type '.h5'; known: .onnx (ONNX), .pt (TorchScript), .ts (TorchScript), "
        ".pt2 (torch.export), .skops (scikit-learn (skops)), .pkl (scikit-learn pickle, with --trust-pickle), "
        ".pickle (scikit-learn pickle, with --trust-pickle), .joblib (scikit-learn joblib, with --trust-pickle)")
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "absent.onnx", (14,), 2)
    assert _message(err) == f"{tmp_path / 'absent.onnx'}: no such file"
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "absent.onnx", (14,), 2, output="scores")
    assert _message(err) == "output: 'scores' is not one of auto, logits, probabilities"


def test_missing_extras_name_the_pip_extra(tmp_path, monkeypatch):
    _onnx(_mlp(), tmp_path / "m.onnx")
    sio.dump(_forest(), tmp_path / "f.skops")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "m.onnx", (14,), 3)
    assert _message(err) == "m.onnx: needs onnxruntime: pip install miaudit[onnx]"
    with pytest.raises(InputError) as err:
        load_target(tmp_path / "f.skops", (14,), 2)
    assert _message(err) == "f.skops: needs skops: pip install miaudit[sklearn-io]"


class _SmallBatches(nn.Module):
    """An MLP whose forward raises on batches of more than ``most`` records, or on a record above ``limit``."""

    def __init__(self, most: int, limit: float = 1e9) -> None:
        super().__init__()
        self.net, self.most, self.limit = _mlp(), most, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.most:
            raise RuntimeError("batch too large for this model")
        if bool((x > self.limit).any()):
            raise RuntimeError("value out of range")
        return self.net(x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_torchscript_model_failing_on_large_batches_is_sent_smaller_ones_or_named(tmp_path):
    module = _SmallBatches(most=100).eval()
    _script(module, tmp_path / "small.pt")
    target = load_target(tmp_path / "small.pt", (14,), 3)
    x = np.random.default_rng(0).standard_normal((1000, 14)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="small.pt: the model fails on batches of 1000 records .*batches of 62"):
        got = target.logits(x)
    np.testing.assert_allclose(got, _torch_out(module.net, x), atol=1e-5)
    np.testing.assert_allclose(target.logits(x[:300]), got[:300], atol=1e-6)  # the smaller size is kept
    _script(_SmallBatches(most=10_000, limit=5.0).eval(), tmp_path / "picky.pt")
    picky = load_target(tmp_path / "picky.pt", (14,), 3)
    with pytest.raises(InputError) as err:
        picky.logits(np.full((20, 14), 9.0, np.float32))
    assert _message(err).startswith("picky.pt: the model fails on 20 records, in batches of any size down to one (")
