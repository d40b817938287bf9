"""--backend ray: the same reference models and audit numbers as local; a killed driver loses only the
chunks in flight. One local Ray instance (2 CPUs) serves the whole module."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import ray

import miaudit
import miaudit.models.ray_backend as ray_backend
import miaudit.models.ray_references as ray_references
from miaudit.errors import InputError
from miaudit.models.ray_backend import run_chunks
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.references import train_references
from miaudit.models.registry import model_spec
from miaudit.signals.store import SignalStore

SMALL = dict(dataset="digits", target="mlp", members=200, population=300, epochs=3, seed=1, reference_models=4,
             attacks=["threshold-loss", "lira-online", "rmia"], progress=False, precision="float32")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _numbers(result):
    return {a.name: (a.scores, a.metrics.auc) for a in result.attacks}


def test_ray_audit_gives_the_local_numbers():
    local = miaudit.audit(backend="local", cache=False, chunk_size=2, **SMALL)
    remote = miaudit.audit(backend="ray", cache=False, chunk_size=2, **SMALL)
    assert remote.config["backend"] == "ray"
    assert remote.timing["reference_models_trained"] == local.timing["reference_models_trained"] > 0
    for name, (scores, auc) in _numbers(local).items():
        np.testing.assert_allclose(_numbers(remote)[name][0], scores, rtol=1e-6, atol=1e-9)
        assert _numbers(remote)[name][1] == pytest.approx(auc)


def test_killed_driver_reruns_only_the_missing_chunks(tmp_path, monkeypatch):
    arrived: list[list[int]] = []

    def dies_after_first_chunk(*args, **kwargs):
        for chunk, models in run_chunks(*args, **kwargs):
            arrived.append(chunk)
            yield chunk, models
            raise KeyboardInterrupt  # the driver dies once one chunk is in the cache

    monkeypatch.setattr(ray_references, "run_chunks", dies_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        miaudit.audit(backend="ray", cache_dir=str(tmp_path), chunk_size=2, **SMALL)
    assert len(arrived) == 1 and len(arrived[0]) == 2
    cached = {p.name for p in tmp_path.rglob("*") if p.is_file()}

    rerun: list[list[int]] = []

    def records(*args, **kwargs):
        for chunk, models in run_chunks(*args, **kwargs):
            rerun.append(chunk)
            yield chunk, models

    monkeypatch.setattr(ray_references, "run_chunks", records)
    resumed = miaudit.audit(backend="ray", cache_dir=str(tmp_path), chunk_size=2, **SMALL)
    # 4 references + the target train together: 5 models, 2 already cached
    assert sorted(k for chunk in rerun for k in chunk) == sorted(set(range(5)) - set(arrived[0]))
    assert cached < {p.name for p in tmp_path.rglob("*") if p.is_file()}
    fresh = miaudit.audit(backend="local", cache=False, chunk_size=2, **SMALL)
    for name, (scores, auc) in _numbers(fresh).items():
        np.testing.assert_allclose(_numbers(resumed)[name][0], scores, rtol=1e-6, atol=1e-9)
        assert _numbers(resumed)[name][1] == pytest.approx(auc)


def test_ray_chunks_split_over_threads_as_locally():
    """A 784-feature stack of 4 differs in float rounding when trained on 1 thread instead of this
    process's torch threads; ray tasks must give the local models bit for bit all the same."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 784)).astype(np.float32)
    y = rng.integers(0, 10, 3000)
    masks = rng.random((5, 3000)) < 0.5
    args = (model_spec("mlp"), x, y, masks, 10, TrainingRecipe(epochs=3), [1, 2, 3, 4, 5])
    local = train_references(*args, precision="float32", chunk_size=4)
    remote = train_references(*args, precision="float32", chunk_size=4, backend="ray")
    np.testing.assert_array_equal(remote.logits(x[:200]), local.logits(x[:200]))


def test_stacked_cnn_references_on_ray_match_local():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2, 9, 9)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    masks = rng.random((3, 60)) < 0.5
    spec = model_spec("cnn-spec:conv(4,3,2,same),maxpool(2,1),conv(6,3,1,valid),maxpool(2,2),dense(8),dense(3)")
    args = (spec, x, y, masks, 3, TrainingRecipe(epochs=2, batch_size=8, lr=1e-2), [3, 4, 5])
    local = train_references(*args, precision="float32", chunk_size=2)
    remote = train_references(*args, precision="float32", chunk_size=2, backend="ray")
    assert remote.trained == 3 and remote.train_flops == local.train_flops > 0
    np.testing.assert_array_equal(remote.logits(x), local.logits(x))


def test_scikit_learn_references_on_ray_match_local():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(np.int64)
    masks = rng.random((3, 120)) < 0.5
    args = (model_spec("logreg"), x, y, masks, 2, TrainingRecipe(), [3, 4, 5])
    local = train_references(*args, chunk_size=2, n_jobs=1)
    remote = train_references(*args, chunk_size=2, backend="ray")
    assert remote.trained == 3
    np.testing.assert_allclose(remote.logits(x), local.logits(x), rtol=1e-6, atol=1e-7)


def test_every_chunk_comes_back_once_with_float32_states():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import a test module
    got = list(run_chunks(_states, {"scale": 2.0}, [[0, 1], [2]], lambda chunk: {"chunk": chunk}))
    assert sorted(chunk for chunk, _ in got) == [[0, 1], [2]]
    for chunk, states in got:
        for k, state in zip(chunk, states, strict=True):
            assert state["w0"].dtype == np.float32
            np.testing.assert_array_equal(state["w0"], np.full(3, 2.0 * k))


def _states(shared, chunk):
    return [ray_references._float32({"w0": np.full(3, shared["scale"] * k, np.float64)}) for k in chunk]


def test_sigkilled_driver_loses_only_the_chunks_in_flight(tmp_path, monkeypatch):
    """A real driver process, joined to the module's Ray instance with --address, is SIGKILLed once the
    cache holds 2 models; the rerun trains only what is not in the cache."""
    import os
    import signal
    import subprocess
    import time

    kw = {**SMALL, "epochs": 15, "reference_models": 4}
    address = ray.get_runtime_context().gcs_address
    script = (f"import miaudit; miaudit.audit(backend='ray', address={address!r}, cache_dir={str(tmp_path)!r}, "
              f"chunk_size=1, **{kw!r})")
    driver = subprocess.Popen([sys.executable, "-c", script],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while len(list(tmp_path.rglob("*.pkl"))) < 2 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert driver.poll() is None, "the driver finished before it could be killed"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    cached = len(list(tmp_path.rglob("*.pkl")))
    assert 2 <= cached < 5  # 4 references + the target

    rerun: list[int] = []

    def records(*args, **kwargs):
        for chunk, models in run_chunks(*args, **kwargs):
            rerun.extend(chunk)
            yield chunk, models

    monkeypatch.setattr(ray_references, "run_chunks", records)
    miaudit.audit(backend="ray", cache_dir=str(tmp_path), chunk_size=1, **kw)
    assert len(rerun) == 5 - cached
    assert len(list(tmp_path.rglob("*.pkl"))) == 5


def test_a_task_input_error_stays_one_line():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with pytest.raises(InputError) as err:
        list(run_chunks(_bad_chunk, {}, [[0]], lambda chunk: {"chunk": chunk}))
    assert str(err.value) == "x: chunk [0] has no records"


def _bad_chunk(shared, chunk):
    raise InputError(f"x: chunk {chunk} has no records")


def test_reference_logits_are_computed_in_ray_tasks_chunk_by_chunk(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 20)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    masks = rng.random((5, 300)) < 0.5
    args = (model_spec("mlp"), x, y, masks, 4, TrainingRecipe(epochs=2), [1, 2, 3, 4, 5])
    remote = train_references(*args, precision="float32", chunk_size=2, backend="ray")
    calls = []
    real = ray_backend.run_chunks

    def records(function, shared, chunks, *rest, **kwargs):
        calls.append((function.__name__, [list(c) for c in chunks], shared["x"].shape))
        yield from real(function, shared, chunks, *rest, **kwargs)

    monkeypatch.setattr(ray_backend, "run_chunks", records)
    on_ray = remote.logits(x[:50])
    assert calls == [("_logits_chunk", [[0, 1], [2, 3], [4]], (50, 20))]
    local = train_references(*args, precision="float32", chunk_size=2)
    assert local.ray is None
    np.testing.assert_array_equal(on_ray, local.logits(x[:50]))
    head, tail = remote.split(2)
    np.testing.assert_array_equal(tail.logits(x[:50]), on_ray[2:])


def test_streamed_audit_on_ray_writes_the_store_from_the_tasks(tmp_path, monkeypatch):
    """With --signal-chunk, each Ray task writes its own 16-model rows of the signal store; the stored
    logits and every streamed attack's scores equal the local backend's."""
    calls = []
    real = ray_backend.run_chunks

    def records(function, shared, chunks, *rest, **kwargs):
        calls.append((function.__name__, [list(c) for c in chunks]))
        yield from real(function, shared, chunks, *rest, **kwargs)

    monkeypatch.setattr(ray_backend, "run_chunks", records)
    kw = {**SMALL, "reference_models": 20, "epochs": 2, "attacks": ["lira-online", "rmia"], "cache": False,
          "chunk_size": 8, "signal_chunk": 64}
    remote = miaudit.audit(backend="ray", signal_store=str(tmp_path / "ray"), **kw)
    assert calls == [("write_row", [list(range(16)), list(range(16, 20))])]
    local = miaudit.audit(backend="local", signal_store=str(tmp_path / "local"), **kw)
    stored = [SignalStore.open(tmp_path / name) for name in ("ray", "local")]
    for name in ("reference_logits", "population_reference_logits", "target_logits"):
        np.testing.assert_array_equal(stored[0].group[name][:], stored[1].group[name][:])
    for name, (scores, _) in _numbers(local).items():
        np.testing.assert_array_equal(_numbers(remote)[name][0], scores)
