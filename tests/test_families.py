"""The family registry (models/families.py) and the one reference-training loop (models/references.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from miaudit.cli import check_exportable
from miaudit.errors import InputError
from miaudit.models.cache import ModelCache, cache_key
from miaudit.models.families import FAMILIES, family_named, find_family, is_torch_name, target_names, training_family
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.references import LocalBackend, model_keys, train_references, training_environment
from miaudit.models.registry import fit_single, model_spec
from miaudit.targets.export import save_target

TINY_CNN = "cnn-spec:conv(2,3,1,same),maxpool(2,2),dense(3)"
RECIPE = TrainingRecipe(epochs=1, batch_size=16)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_target_name_has_one_family_and_the_questions_agree():
    assert set(target_names()) >= {"mlp", "cnn", "small-cnn", "logreg", "tree", "naive-bayes", "forest", "svm"}
    for name in (*target_names(), "mnist-cnn", TINY_CNN):
        family = family_named(name)
        assert family.is_torch == is_torch_name(name) == family.white_box == family.dp
        assert family.export_suffix == (".onnx" if family.is_torch else ".skops")
    assert training_family("cnn", RECIPE).stacked
    assert not training_family("cnn", RECIPE.model_copy(update={"dropout": 0.5})).stacked
    assert find_family("model.onnx") is None and not is_torch_name("https://x/predict")
    assert len({family.name for family in FAMILIES}) == len(FAMILIES)
    with pytest.raises(InputError, match="unknown model 'resnet'"):
        model_spec("resnet")


def test_the_registry_loads_no_torch():
    code = "import sys, miaudit.models.families, miaudit.audit.plan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("target", ["mnist-cnn", TINY_CNN])
def test_save_target_suffix_is_the_familys_before_and_after_the_audit(target, tmp_path):
    """Old code: --save-target m.onnx was refused for mnist-cnn before the audit, m.skops after it."""
    check_exportable(target, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="exports to .onnx"):
        check_exportable(target, tmp_path / "m.skops")
    if target == TINY_CNN:  # the trained model exports to the same suffix
        rng = np.random.default_rng(0)
        x, y = rng.random((40, 1, 6, 6), dtype=np.float32), rng.integers(0, 3, 40)
        model = fit_single(model_spec(target), x, y, 3, RECIPE, 0, precision="float32")
        with pytest.raises(InputError, match="ONNX"):
            save_target(model, tmp_path / "m.skops", feature_shape=(1, 6, 6))
        assert save_target(model, tmp_path / "m.onnx", feature_shape=(1, 6, 6)).exists()


@pytest.mark.parametrize("name", ["mlp", TINY_CNN, "logreg"])
def test_a_fitted_model_exports_to_its_familys_suffix(name):
    rng = np.random.default_rng(1)
    x = rng.random((40, 1, 6, 6) if name == TINY_CNN else (40, 5), dtype=np.float32)
    for recipe in (RECIPE, RECIPE.model_copy(update={"patience": 1})):  # CNNs: stacked, then one at a time
        model = fit_single(model_spec(name, (4,)), x, rng.integers(0, 3, 40), 3, recipe, 0, precision="float32")
        assert type(model).export_suffix == family_named(name).export_suffix


def test_save_target_refuses_a_name_no_family_takes(tmp_path):
    with pytest.raises(InputError, match="not one miaudit trains"):
        check_exportable("resnet", tmp_path / "m.onnx")


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64), rng.random((3, 60)) < 0.5


@pytest.mark.parametrize("name", ["mlp", "logreg"])
def test_cache_keys_follow_the_old_recipe(name, tmp_path):
    """The key of model k is the old train_references recipe: the same parts, the same names."""
    x, y, masks = _data()
    spec, cache = model_spec(name, (4,)), ModelCache(tmp_path)
    precision = "float32" if name == "mlp" else "n/a"
    keys = model_keys(spec, x, y, masks, 2, RECIPE, [7, 8, 9], precision, cache, {"experiment": "t"}, [0, 1, "t"])
    shared = {"experiment": "t", "format": "miaudit-reference-v2", "data": cache_key(x=x, y=y), "spec": spec,
              "recipe": RECIPE, "n_classes": 2, "precision": precision,
              "environment": training_environment("torch" if name == "mlp" else "sklearn")}
    old = [cache_key(**shared, model_index=k, mask=masks[j], seed=7 + j) for j, k in enumerate([0, 1, "t"])]
    assert keys == old


@pytest.mark.parametrize("name", ["mlp", "tree", TINY_CNN])
def test_a_backend_passed_in_trains_the_same_models_as_local(name):
    x, y, masks = _data()
    n_classes = 2
    if name == TINY_CNN:
        x, y, n_classes = np.random.default_rng(4).random((60, 1, 6, 6), dtype=np.float32), y + (x[:, 1] > 0), 3

    class Counting(LocalBackend):
        chunks: list = []

        def run(self, job, chunks, masks, seeds, partial):
            self.chunks.extend(chunks)
            yield from super().run(job, chunks, masks, seeds, partial)

    spec = model_spec(name, (4,))
    args = (spec, x, y, masks, n_classes, RECIPE, [1, 2, 3])
    local = train_references(*args, precision="float32", n_jobs=1, chunk_size=2)
    counting = Counting(n_jobs=1)
    passed = train_references(*args, precision="float32", chunk_size=2, backend=counting)
    np.testing.assert_array_equal(local.logits(x), passed.logits(x))
    stacked = training_family(name, RECIPE).stacked
    assert counting.chunks == ([[0, 1], [2]] if stacked else [[0], [1], [2]])
    assert (local.model_flops is not None) == stacked and passed.n_models == 3
    assert passed.model(1).logits(x).shape == (60, n_classes)


def test_an_unknown_backend_is_one_line(tmp_path):
    x, y, masks = _data()
    with pytest.raises(InputError, match="backend: local or ray"):
        train_references(model_spec("tree"), x, y, masks, 2, RECIPE, [1, 2, 3], backend="spark")


def test_no_private_import_and_no_reference_cycle():
    root = Path(__file__).parents[1] / "src" / "miaudit" / "models"
    for path in root.glob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith("from miaudit.") and " import " in line:
                names = line.split(" import ", 1)[1].replace("(", "").split(",")
                assert not any(n.strip().startswith("_") for n in names), (path.name, line)
    assert "references" not in (root / "ray_references.py").read_text().split('"""', 2)[2]
