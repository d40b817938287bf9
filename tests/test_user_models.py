"""The user's own model objects as Targets, and reference models that resemble them (clone, re-init, train_fn)."""
from __future__ import annotations

import functools
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from torch import nn

from miaudit.errors import InputError
from miaudit.models.cache import ModelCache
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.reinit import fresh_copy
from miaudit.models.user_models import FunctionTarget, TorchModuleTarget, as_target
from miaudit.models.user_references import train_user_references
from miaudit.models.wrappers import SklearnTarget

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RECIPE = TrainingRecipe(epochs=4, batch_size=32, lr=3e-3)


@pytest.fixture(scope="module")
def digits():
    """x float32 [600, 64] in 0..16, y [600], masks [3, 600] random halves."""
    x, y = load_digits(return_X_y=True)
    x, y = x[:600].astype(np.float32), y[:600].astype(np.int64)
    rng = np.random.default_rng(0)
    masks = np.stack([rng.permutation(600) < 300 for _ in range(3)])
    return x, y, masks


class MLP(nn.Module):
    def __init__(self, softmax: bool = False) -> None:
        super().__init__()
        self.fc1, self.fc2, self.softmax = nn.Linear(64, 32), nn.Linear(32, 10), softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(torch.relu(self.fc1(x / 16)))
        return torch.softmax(out, dim=1) if self.softmax else out


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4 * 36, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x / 16))).flatten(1))


def _scripted(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def _perturbed(module: nn.Module) -> nn.Module:
    """module with every parameter shifted by 1 and BatchNorm statistics moved, unlike any fresh init."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
        for b in module.buffers():
            if b.is_floating_point():
                b.add_(2.0)
    return module


def _own_vs_other_loss(target, x, y, mask) -> tuple[float, float]:
    """Mean cross-entropy of the true label on the model's own training records and on the others."""
    logp = np.log(np.clip(target.predict_proba(x)[np.arange(len(y)), y], 1e-12, None))
    return float(-logp[mask].mean()), float(-logp[~mask].mean())


def test_as_target_matches_the_objects_own_probabilities(digits):
    x, y, _ = digits
    partial = LogisticRegression(max_iter=300).fit(x[y < 5], y[y < 5])  # saw classes 0..4 only
    proba = as_target(partial, 10).predict_proba(x)
    np.testing.assert_allclose(proba[:, :5], partial.predict_proba(x), atol=1e-5)
    assert proba[:, 5:].max() < 1e-9

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y)
    target = as_target(pipe, 10, name="pipe")
    assert isinstance(target, SklearnTarget) and target.name == "pipe"
    np.testing.assert_allclose(target.predict_proba(x), pipe.predict_proba(x), atol=1e-5)

    mlp = MLP().eval()
    with torch.no_grad():
        logits = mlp(torch.from_numpy(x)).numpy()
    for module in (mlp, _scripted(mlp)):
        target = as_target(module, 10)
        assert isinstance(target, TorchModuleTarget) and target.module is module
        np.testing.assert_allclose(target.logits(x), logits, atol=1e-5)
    soft = MLP(softmax=True).eval()
    soft.load_state_dict(mlp.state_dict())
    target = as_target(soft, 10)
    np.testing.assert_allclose(target.predict_proba(x), torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-5)
    assert target.output_kind == "probabilities"

    for fn, kind in ((pipe.predict_proba, "probabilities"), (lambda v: np.log(pipe.predict_proba(v)) + 3, "logits")):
        target = as_target(fn, 10, feature_shape=(64,))
        assert isinstance(target, FunctionTarget) and target.output_kind == kind
        np.testing.assert_allclose(target.predict_proba(x), pipe.predict_proba(x), atol=1e-5)

    assert as_target(target, 10) is target


def test_scripted_target_pickles_through_torchscript(digits):
    x = digits[0][:50]
    target = as_target(_scripted(MLP()), 10)
    again = pickle.loads(pickle.dumps(target))
    np.testing.assert_array_equal(again.logits(x), target.logits(x))


@pytest.mark.parametrize("obj, message", [
    (42, "a builtins.int is not a model"),
    ("model.onnx", "a builtins.str is not a model"),
    (LogisticRegression(), "is not fitted"),
    (SVC(), "has no predict_proba"),
    (lambda v: np.ones((len(v), 3)), "gives 3 classes, the data has 10"),
    (lambda v: np.full((len(v), 10), np.nan), "NaN"),
])
def test_bad_objects_are_one_line_input_errors(obj, message):
    with pytest.raises(InputError, match=message) as err:
        as_target(obj, 10, feature_shape=(64,))
    assert "\n" not in str(err.value)


def test_a_probe_of_real_records_checks_a_pipeline_that_noise_would_break(digits):
    x, y, _ = digits
    strict = make_pipeline(OneHotEncoder(), LogisticRegression(max_iter=200)).fit(x, y)  # unknown values raise
    assert isinstance(as_target(strict, 10, probe=x[:5]), SklearnTarget)
    with pytest.raises(InputError, match="fails on records of shape \\(64,\\)"):
        as_target(strict, 10, feature_shape=(64,))


def test_a_target_with_other_classes_is_refused(digits):
    x, y, _ = digits
    target = SklearnTarget("t", LogisticRegression(max_iter=300).fit(x, y), 10)
    with pytest.raises(InputError, match="gives 10 classes, the data has 12"):
        as_target(target, 12)


def test_sklearn_pipeline_references_are_seeded_clones_trained_on_their_masks(digits):
    x, y, masks = digits
    template = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                             GradientBoostingClassifier(n_estimators=4, max_depth=2, subsample=0.6, random_state=7))
    template.fit(x[:100], y[:100])
    seeds = [11, 12, 13]
    done = []
    refs = train_user_references(template, x, y, masks, 10, RECIPE, seeds, n_jobs=2, progress=done.append)
    assert refs.n_models == 3 and refs.trained == 3 and done[-1] == 3 and done == sorted(done)
    assert refs.spec.kind == "sklearn"
    expected = template.get_params(deep=False)
    for k, model in enumerate(refs.models):
        estimator = model.estimator
        assert type(estimator) is type(template) and estimator is not template
        params = estimator.get_params(deep=True)
        assert params["gradientboostingclassifier__random_state"] == seeds[k]
        assert params["gradientboostingclassifier__n_estimators"] == 4
        assert params["gradientboostingclassifier__subsample"] == 0.6
        assert [type(s) for _, s in estimator.steps] == [type(s) for _, s in expected["steps"]]
        own, other = _own_vs_other_loss(model, x, y, masks[k])
        assert own < other
    # model 0 is exactly a clone seeded 11 fitted on its mask's rows
    manual = clone(template).set_params(gradientboostingclassifier__random_state=11).fit(x[masks[0]], y[masks[0]])
    np.testing.assert_allclose(refs.models[0].estimator.predict_proba(x), manual.predict_proba(x))
    # a different seed on the same rows gives a different ensemble
    other_seed = clone(template).set_params(gradientboostingclassifier__random_state=99).fit(x[masks[0]], y[masks[0]])
    assert not np.allclose(other_seed.predict_proba(x), manual.predict_proba(x))


def test_fresh_copy_redraws_torchscript_as_torch_initialises_layers():
    for make in (MLP, CNN):
        original = _perturbed(make())
        python_copy = fresh_copy(original, 5)
        script_copy = fresh_copy(_scripted(original), 5)
        other_seed = fresh_copy(_scripted(original), 6)
        fresh, scripted, other = python_copy.state_dict(), script_copy.state_dict(), other_seed.state_dict()
        for name, value in original.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            # nothing of the original is kept, and TorchScript's re-draw equals reset_parameters()'s
            assert not torch.allclose(scripted[name], value), name
            torch.testing.assert_close(scripted[name], fresh[name])
            if name.endswith(("running_mean", "running_var", "bn.weight", "bn.bias")):
                continue  # deterministic inits (zeros / ones) match across seeds
            assert not torch.equal(other[name], scripted[name]), name


def test_scripted_mlp_and_cnn_references_train_on_their_masks(digits):
    x, y, masks = digits
    for template, data in ((_scripted(_perturbed(MLP())), x), (_scripted(_perturbed(CNN())), x.reshape(-1, 1, 8, 8))):
        refs = train_user_references(template, data, y, masks[:2], 10, RECIPE, [1, 2])
        assert refs.trained == 2 and refs.spec.kind == "torch"
        for k, model in enumerate(refs.models):
            assert isinstance(model, TorchModuleTarget)
            own, other = _own_vs_other_loss(model, data, y, masks[k])
            assert model.accuracy(data[masks[k]], y[masks[k]]) > 0.5  # chance is 0.1
            assert own < other
        first, second = (m.module.state_dict() for m in refs.models)
        assert not torch.equal(first["fc.weight" if "fc.weight" in first else "fc1.weight"],
                               second["fc.weight" if "fc.weight" in second else "fc1.weight"])


def test_a_probability_output_module_trains_on_its_log_likelihood(digits):
    x, y, masks = digits
    refs = train_user_references(MLP(softmax=True), x, y, masks[:1], 10, RECIPE, [3])
    model = refs.models[0]
    assert model.output_kind == "probabilities" and model.accuracy(x[masks[0]], y[masks[0]]) > 0.5


def test_torch_export_programs_train_or_are_refused(digits):
    x, y, masks = digits
    example = (torch.from_numpy(x[:8]),)
    program = torch.export.export(MLP().eval(), example, dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    refs = train_user_references(program, x, y, masks[:1], 10, RECIPE, [4])
    assert refs.models[0].accuracy(x[masks[0]], y[masks[0]]) > 0.5
    with_dropout = nn.Sequential(nn.Linear(64, 16), nn.Dropout(0.5), nn.Linear(16, 10)).train()
    program = torch.export.export(with_dropout, example, dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    with pytest.raises(InputError, match="--reference-architecture or a TorchScript file") as err:
        train_user_references(program, x, y, masks[:1], 10, RECIPE, [4])
    assert "\n" not in str(err.value)


def _logreg_fn(calls: list):
    def train_fn(x, y, seed):
        calls.append((x.copy(), y.copy(), seed))
        return LogisticRegression(max_iter=200, random_state=seed).fit(x, y)

    return train_fn


def test_train_fn_is_called_once_per_model_with_its_rows_and_seed(digits):
    x, y, masks = digits
    calls: list = []
    refs = train_user_references(None, x, y, masks, 10, RECIPE, [21, 22, 23], train_fn=_logreg_fn(calls))
    assert refs.spec.kind == "train_fn" and len(calls) == 3
    for k, (xs, ys, seed) in enumerate(calls):
        np.testing.assert_array_equal(xs, x[masks[k]])
        np.testing.assert_array_equal(ys, y[masks[k]])
        assert seed == [21, 22, 23][k]
        assert isinstance(refs.models[k], SklearnTarget)


FAIL_AT: list[int] = []  # model indices the cached train_fn below refuses to train


def cached_train_fn(x, y, seed):
    if seed in FAIL_AT:
        raise RuntimeError(f"out of memory at seed {seed}")
    CALLS.append(seed)
    return LogisticRegression(max_iter=200, random_state=seed).fit(x, y)


CALLS: list[int] = []


def test_cache_trains_nothing_twice_and_resumes_a_killed_run(digits, tmp_path):
    x, y, masks = digits
    cache = ModelCache(tmp_path)
    seeds = [31, 32, 33]
    FAIL_AT[:] = [33]
    CALLS.clear()
    with pytest.raises(InputError, match="failed on reference model 2") as err:
        train_user_references(None, x, y, masks, 10, RECIPE, seeds, train_fn=cached_train_fn, cache=cache)
    assert "\n" not in str(err.value) and CALLS == [31, 32]
    FAIL_AT.clear()
    CALLS.clear()
    resumed = train_user_references(None, x, y, masks, 10, RECIPE, seeds, train_fn=cached_train_fn, cache=cache)
    assert CALLS == [33] and resumed.trained == 1
    again = train_user_references(None, x, y, masks, 10, RECIPE, seeds, train_fn=cached_train_fn, cache=cache)
    assert CALLS == [33] and again.trained == 0
    np.testing.assert_allclose(again.logits(x), resumed.logits(x))

    other_rows = train_user_references(None, x, y, masks[[1, 2, 0]], 10, RECIPE, seeds, train_fn=cached_train_fn,
                                       cache=cache)
    assert other_rows.trained == 3  # masks are part of each key


def test_sklearn_and_torch_references_come_back_from_the_cache(digits, tmp_path):
    x, y, masks = digits
    cache = ModelCache(tmp_path)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
    for template, recipe in ((SklearnTarget("mine", pipe, 10), RECIPE),
                             (_scripted(MLP()), RECIPE.model_copy(update={"epochs": 1}))):
        first = train_user_references(template, x, y, masks[:2], 10, recipe, [1, 2], cache=cache, n_jobs=1)
        second = train_user_references(template, x, y, masks[:2], 10, recipe, [1, 2], cache=cache, n_jobs=1)
        assert (first.trained, second.trained) == (2, 0)
        assert first.spec.name == ("mine" if first.spec.kind == "sklearn" else "MLP")
        np.testing.assert_allclose(second.logits(x), first.logits(x), atol=1e-6)
    changed = train_user_references(_scripted(MLP()), x, y, masks[:2], 10, RECIPE.model_copy(update={"epochs": 2}),
                                    [1, 2], cache=cache)
    assert changed.trained == 2  # the recipe is part of a torch model's key


def test_train_fn_without_source_is_cached_only_by_name(digits, tmp_path):
    x, y, masks = digits
    cache = ModelCache(tmp_path)
    fn = functools.partial(cached_train_fn)
    with pytest.warns(RuntimeWarning, match="pass cache_name"):
        train_user_references(None, x, y, masks[:1], 10, RECIPE, [1], train_fn=fn, cache=cache)
    assert not any(tmp_path.rglob("*.pkl"))
    named = [train_user_references(None, x, y, masks[:1], 10, RECIPE, [1], train_fn=fn, cache=cache,
                                   cache_name="my-logreg") for _ in range(2)]
    assert [r.trained for r in named] == [1, 0]


def test_templates_that_cannot_be_retrained_are_refused(digits):
    x, y, masks = digits
    with pytest.raises(InputError, match="cannot be re-trained; pass --reference-architecture"):
        train_user_references(lambda v: v, x, y, masks, 10, RECIPE, [1, 2, 3])
    with pytest.raises(InputError, match="seeds: 2 seeds for 3"):
        train_user_references(LogisticRegression(), x, y, masks, 10, RECIPE, [1, 2])
    with pytest.raises(InputError, match="SVC has no predict_proba"):
        train_user_references(SVC(), x, y, masks, 10, RECIPE, [1, 2, 3])
    static = torch.export.export(MLP().eval(), (torch.from_numpy(x[:8]),))  # a fixed batch of 8
    with pytest.raises(InputError, match="fails .*pass --reference-architecture") as err:
        train_user_references(static, x, y, masks[:1], 10, RECIPE, [1])
    assert "\n" not in str(err.value)


def test_a_torchscript_file_target_is_a_template_for_its_references(digits, tmp_path):
    """A loaded model file that takes flattened records trains references on flattened image records."""
    from miaudit.targets.torch_file import load_torchscript

    x, y, masks = digits
    images = x.reshape(-1, 1, 8, 8)
    _scripted(MLP(softmax=True)).save(str(tmp_path / "model.pt"))
    target = load_torchscript(tmp_path / "model.pt", (1, 8, 8), 10)
    assert target.flatten and target.output_kind == "probabilities"
    refs = train_user_references(target, images, y, masks[:1], 10, RECIPE, [8])
    model = refs.models[0]
    assert model.output_kind == "probabilities" and model.flatten
    assert model.accuracy(images[masks[0]], y[masks[0]]) > 0.5
