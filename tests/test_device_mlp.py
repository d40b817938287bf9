"""--device for MLP stacks and single torch models: the resolved device reaches training and inference,
the CPU path is unchanged, and off the CPU every tensor of a training step lives on the device.

No GPU here: the off-CPU path runs on torch's "meta" device under FakeTensorMode, which raises on any
op mixing devices (a tensor left on the CPU) and stops only where the results are copied back to numpy.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from miaudit.models import stack
from miaudit.models.devices import tf32_allowed
from miaudit.models.mlp_stack import MLPStack
from miaudit.models.perf import resolve_device_precision, resolve_precision
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import train_mlp_stack

COPY_BACK = r"\.numpy\(\) is not supported for tensor subclasses"  # FakeTensor's error at the copy to numpy


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    masks = rng.random((3, 120)) < 0.5
    return x, y, masks


def test_auto_precision_on_a_gpu_follows_its_bf16_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_device_precision("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_device_precision("auto", "cuda") == "float32"
    assert resolve_device_precision("bfloat16", "cuda") == "bfloat16"
    assert resolve_device_precision("auto", "cpu") == resolve_precision("auto")  # the CPU's own rule


def test_tf32_is_allowed_within_and_the_callers_flags_come_back():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, False
        with pytest.raises(KeyError), tf32_allowed():
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
            raise KeyError
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.mark.parametrize("recipe", [
    TrainingRecipe(epochs=2, batch_size=16),
    TrainingRecipe(optimizer="sgd", epochs=2, batch_size=16, dropout=0.3, label_smoothing=0.1),
    TrainingRecipe(epochs=2, batch_size=16, dp_noise_multiplier=1.0),
    TrainingRecipe(epochs=3, batch_size=16, patience=1),  # stops at the first epoch's validation loss
], ids=["adam", "sgd-dropout", "dp", "early-stopping"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_off_the_cpu_every_training_tensor_is_on_the_device(data, recipe, precision, monkeypatch):
    x, y, masks = data

    def optimizer(params, recipe):  # torch's fused Adam (used on cuda) has no meta kernel
        kind = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[recipe.optimizer]
        return kind(params, lr=recipe.lr, foreach=False)

    monkeypatch.setattr(stack, "make_optimizer", optimizer)
    with pytest.raises(RuntimeError, match=COPY_BACK), FakeTensorMode(allow_non_fake_inputs=True):
        train_mlp_stack(x, y, masks, 3, (8, 5), recipe, [1, 2, 3], precision, device="meta")


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_off_the_cpu_inference_tensors_are_on_the_device(data, precision):
    x, y, masks = data
    models = train_mlp_stack(x, y, masks, 3, (8,), TrainingRecipe(epochs=1, batch_size=16), [1, 2, 3])
    with pytest.raises(RuntimeError, match=COPY_BACK), FakeTensorMode(allow_non_fake_inputs=True):
        models.logits(x, precision=precision, device="meta")


def test_an_audit_threads_its_device_through_and_cpu_changes_nothing(monkeypatch, tmp_path):
    """The audit's resolved device reaches every MLP training and inference call ("cpu:0" stands for a
    device other than the default, and is the CPU), with the same numbers as the default device."""
    from miaudit.audit import run as pipeline
    from miaudit.models.torch_families import MLPFamily

    settings = dict(dataset="digits", members=150, reference_models=2, epochs=2, attacks=["lira-offline", "rmia"],
                    population=60, cache=False, hidden=(16,))
    modes = ("pool", "attacker")  # pool: the target trains in the references' stack; attacker: alone
    default = {mode: pipeline.audit(progress=False, reference_data=mode, **settings) for mode in modes}
    seen: list[tuple[str, str]] = []

    def spy(name, original):
        def wrapped(*args, **kwargs):
            seen.append((name, str(kwargs.get("device", "default"))))
            return original(*args, **kwargs)
        return wrapped

    def spy_chunk(original):  # a chunk of reference models: the device travels in the TrainingJob
        def wrapped(family, job, *args, **kwargs):
            seen.append(("references", str(job.device)))
            return original(family, job, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(pipeline, "resolve_device", lambda device: "cpu:0")
    monkeypatch.setattr(MLPFamily, "train_chunk", spy_chunk(MLPFamily.train_chunk))
    monkeypatch.setattr(MLPFamily, "fit", spy("fit_single", MLPFamily.fit))
    monkeypatch.setattr(MLPStack, "logits", spy("logits", MLPStack.logits))
    for mode in modes:
        seen.clear()
        result = pipeline.audit(progress=False, reference_data=mode, device="cpu", **settings)
        training = {name for name, _ in seen if name != "logits"}
        assert training == ({"references"} if mode == "pool" else {"references", "fit_single"}), seen
        assert ("logits", "cpu:0") in seen  # the reference models' inference
        assert all(device == "cpu:0" for name, device in seen if name != "logits"), seen
        for ours, theirs in zip(result.attacks, default[mode].attacks, strict=True):
            np.testing.assert_array_equal(ours.scores, theirs.scores)


def test_references_trained_one_at_a_time_get_the_device(monkeypatch):
    """CNNs with early stopping train one by one (train_torch_model); each gets train_references' device."""
    from miaudit.models import registry, train
    from miaudit.models.references import train_references

    rng = np.random.default_rng(1)
    x = rng.random((40, 1, 6, 6), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    masks = rng.random((2, 40)) < 0.5
    seen = []
    original = train.train_torch_model

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device", "default"))
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "train_torch_model", spy)
    refs = train_references(registry.model_spec("cnn-spec:conv(2,3,1,same),maxpool(2,2),dense(3)"), x, y, masks, 3,
                            TrainingRecipe(epochs=2, batch_size=8, patience=1), [1, 2], device="cpu:0")
    assert seen == ["cpu:0", "cpu:0"]
    assert refs.logits(x).shape == (2, 40, 3)
