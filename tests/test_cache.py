"""Model cache (models/cache.py) and cached, resumable reference training (models/references.py)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from miaudit.data.splits import balanced_masks
from miaudit.errors import InputError
from miaudit.models.cache import ModelCache, cache_key, default_cache_dir
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.references import _chunks, train_references
from miaudit.models.registry import model_spec
from miaudit.models.stack import mlp_train_flops

RECIPE = TrainingRecipe(epochs=2, batch_size=32, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def test_cache_key_is_canonical_and_content_addressed():
    a = np.arange(6, dtype=np.float32)
    assert cache_key(a=a, b={"x": 1, "y": (2, 3)}) == cache_key(b={"y": [2, 3], "x": 1}, a=a.copy())
    assert len(cache_key(a=a)) == 64 and set(cache_key(a=a)) <= set("0123456789abcdef")
    different = [cache_key(a=a + 1), cache_key(a=a.astype(np.float64)), cache_key(a=a.reshape(2, 3)),
                 cache_key(a=a, extra=None), cache_key(a=a.tolist())]
    assert len({cache_key(a=a), *different}) == 1 + len(different)
    assert cache_key(r=RECIPE) == cache_key(r=TrainingRecipe(epochs=2, batch_size=32, lr=3e-3))
    assert cache_key(r=RECIPE) != cache_key(r=RECIPE.model_copy(update={"lr": 1e-3}))
    assert cache_key(s=model_spec("mlp", (8,))) != cache_key(s=model_spec("mlp", (16,)))
    with pytest.raises(InputError, match="cache key f"):
        cache_key(f=lambda: 0)


def test_save_load_round_trip_and_missing_or_corrupt_files(tmp_path):
    cache = ModelCache(tmp_path)
    key = cache_key(name="round-trip")
    assert cache.load(key) is None and key not in cache
    obj = {"w0": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32), "note": "hi"}
    path = cache.save(key, obj)
    loaded = cache.load(key)
    assert key in cache and loaded["note"] == "hi" and np.array_equal(loaded["w0"], obj["w0"])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # a truncated file is discarded and reads as missing
    with pytest.warns(RuntimeWarning, match="discarded .*pkl"):
        assert cache.load(key) is None
    assert not path.exists() and cache.discarded == [path]


def _corrupt(kind: str, victim, other) -> None:
    """Damage the cache file ``victim`` as a disk, a user or a copy command might."""
    blob = bytearray(victim.read_bytes())
    if kind == "middle bytes":
        middle = len(blob) // 2
        blob[middle:middle + 8] = bytes(b ^ 0x5A for b in blob[middle:middle + 8])
        victim.write_bytes(bytes(blob))
    elif kind == "copied over":
        victim.write_bytes(other.read_bytes())
    else:
        victim.write_bytes(bytes(blob[: len(blob) - 40]))


@pytest.mark.parametrize("kind", ["middle bytes", "copied over", "truncated"])
def test_a_damaged_entry_is_reported_deleted_and_reads_as_missing(kind, tmp_path):
    cache = ModelCache(tmp_path)
    rng = np.random.default_rng(0)
    a, b = cache_key(name="a"), cache_key(name="b")
    cache.save(a, {"w0": rng.normal(size=(40, 40)).astype(np.float32)})
    cache.save(b, {"w0": rng.normal(size=(40, 40)).astype(np.float32)})
    _corrupt(kind, cache.path(a), cache.path(b))
    with pytest.warns(RuntimeWarning, match=f"discarded {cache.path(a)}"):
        assert cache.load(a) is None
    assert not cache.path(a).exists() and cache.load(b) is not None


def test_cache_dir_must_be_a_writable_directory(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for root in (a_file, a_file / "below"):
        with pytest.raises(InputError, match="^--cache-dir: .* is not a directory"):
            ModelCache(root)
    assert ModelCache(tmp_path / "new" / "dir").root == tmp_path / "new" / "dir"


class _Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("refuses to be pickled")


def test_a_failed_save_keeps_the_old_file_and_leaves_no_partial_file(tmp_path):
    cache = ModelCache(tmp_path)
    key = cache_key(name="atomic")
    path = cache.save(key, "old")
    with pytest.raises(pickle.PicklingError):
        cache.save(key, ["partly written", _Unpicklable()])
    assert cache.load(key) == "old"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MIAUDIT_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("MIAUDIT_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "miaudit")


def _mlp_refs(data, cache, k=6, progress=None, chunk_size=2, seeds=None):
    x, y = data
    masks = balanced_masks(k, len(x), seed=0)
    return train_references(model_spec("mlp", (8,)), x, y, masks, 3, RECIPE, seeds or list(range(100, 100 + k)),
                            precision="float32", cache=cache, key_parts={"experiment": "t"},
                            chunk_size=chunk_size, progress=progress)


def test_second_run_loads_everything_from_the_cache(data, tmp_path):
    cache = ModelCache(tmp_path)
    first = _mlp_refs(data, cache)
    assert first.trained == 6 and first.n_models == 6 and first.train_seconds > 0
    expected_flops = sum(mlp_train_flops(12, (8,), 3, int(m.sum()) * RECIPE.epochs)
                         for m in balanced_masks(6, len(data[0]), seed=0))
    assert first.train_flops == pytest.approx(expected_flops)
    done: list[int] = []
    second = _mlp_refs(data, cache, progress=done.append)
    assert second.trained == 0 and second.train_flops == 0 and done[-1] == 6
    np.testing.assert_array_equal(second.logits(data[0]), first.logits(data[0]))
    other_seeds = _mlp_refs(data, cache, seeds=list(range(200, 206)))
    assert other_seeds.trained == 6


def test_a_new_library_or_miaudit_version_retrains(data, tmp_path, monkeypatch):
    import importlib.metadata

    cache = ModelCache(tmp_path)
    first = _mlp_refs(data, cache, k=2)
    assert _mlp_refs(data, cache, k=2).trained == 0
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",  # miaudit.__version__ is the installed version
                        lambda name: "999.0.0" if name == "miaudit" else real_version(name))
    assert _mlp_refs(data, cache, k=2).trained == 2
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "9.9.9" if name == "torch" else real_version(name))
    again = _mlp_refs(data, cache, k=2)
    assert again.trained == 2
    np.testing.assert_array_equal(again.logits(data[0]), first.logits(data[0]))


def test_damaged_entries_are_retrained_to_the_same_models(data, tmp_path):
    cache = ModelCache(tmp_path)
    fresh = _mlp_refs(data, cache, k=4)
    files = sorted(tmp_path.glob("*/*.pkl"))
    assert len(files) == 4
    for kind, victim, other in zip(["middle bytes", "copied over", "truncated"], files, files[1:]):
        _corrupt(kind, victim, other)
    with pytest.warns(RuntimeWarning, match="discarded") as caught:
        again = _mlp_refs(data, cache, k=4)
    discards = [str(w.message) for w in caught if "discarded" in str(w.message)]  # not unrelated warnings
    assert again.trained == 3 and len(discards) == 3 and sorted(cache.discarded) == files[:3], \
        [str(w.message) for w in caught]
    np.testing.assert_allclose(again.logits(data[0]), fresh.logits(data[0]), rtol=1e-5, atol=1e-5)
    assert _mlp_refs(data, cache, k=4).trained == 0  # the retrained models were saved again


def test_interrupted_run_resumes_with_only_the_missing_chunks(data, tmp_path):
    cache = ModelCache(tmp_path)

    def stop_after_first_chunk(done: int) -> None:
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _mlp_refs(data, cache, progress=stop_after_first_chunk)
    resumed = _mlp_refs(data, cache)
    assert resumed.trained == 4
    clean = _mlp_refs(data, None)
    assert clean.trained == 6
    np.testing.assert_allclose(resumed.logits(data[0]), clean.logits(data[0]), rtol=1e-5, atol=1e-5)


def test_chunks_fold_a_small_remainder_into_the_last_chunk():
    assert _chunks(list(range(64)), 16) == [list(range(i, i + 16)) for i in range(0, 64, 16)]
    assert [len(c) for c in _chunks(list(range(65)), 16)] == [16, 16, 16, 17]
    assert [len(c) for c in _chunks(list(range(24)), 16)] == [16, 8]
    assert [len(c) for c in _chunks(list(range(5)), 16)] == [5]
    assert _chunks([], 16) == []


def test_named_models_have_their_own_keys_and_split_shares_the_seconds(data, tmp_path):
    x, y = data
    cache = ModelCache(tmp_path)
    masks = balanced_masks(4, len(x), seed=0)
    extra = np.zeros(len(x), bool)
    extra[:150] = True  # a bigger training set: more FLOPs than any reference model
    spec = model_spec("mlp", (8,))
    kw = dict(precision="float32", cache=cache, chunk_size=8)
    both = train_references(spec, x, y, np.vstack([masks, extra]), 3, RECIPE, [1, 2, 3, 4, 9],
                            names=[0, 1, 2, 3, "target"], **kw)
    refs, target = both.split(4)
    assert (refs.n_models, refs.trained, target.n_models, target.trained) == (4, 4, 1, 1)
    assert refs.train_flops + target.train_flops == pytest.approx(both.train_flops)
    assert refs.train_seconds + target.train_seconds == pytest.approx(both.train_seconds)
    assert target.train_seconds / both.train_seconds == pytest.approx(150 / (150 + 4 * 100))
    np.testing.assert_array_equal(target.logits(x)[0], both.logits(x)[4])
    # the same four references without the named extra model: all four come from the cache
    again = train_references(spec, x, y, masks, 3, RECIPE, [1, 2, 3, 4], **kw)
    assert again.trained == 0
    np.testing.assert_array_equal(again.logits(x), refs.logits(x))
    with pytest.raises(InputError, match="names"):
        train_references(spec, x, y, masks, 3, RECIPE, [1, 2, 3, 4], names=[0, 1, 1, 2], **kw)
    with pytest.raises(InputError, match="split"):
        both.split(5)


def test_sklearn_references_are_cached_per_model(data, tmp_path):
    x, y = data
    cache = ModelCache(tmp_path)
    masks = balanced_masks(4, len(x), seed=3)
    args = (model_spec("tree"), x, y, masks, 3, RECIPE, [1, 2, 3, 4])
    first = train_references(*args, cache=cache, n_jobs=1)
    assert first.trained == 4 and first.train_flops == 0
    logits = first.logits(x)
    assert logits.shape == (4, len(x), 3) and logits.dtype == np.float32
    members = np.take_along_axis(logits, y[None, :, None], -1)[..., 0]
    assert all((members[k][masks[k]] > np.log(0.5)).mean() > 0.95 for k in range(4))  # trees memorise
    second = train_references(*args, cache=cache, n_jobs=1)
    assert second.trained == 0
    np.testing.assert_array_equal(second.logits(x), logits)


def test_bad_reference_inputs_raise_input_error(data):
    x, y = data
    with pytest.raises(InputError, match="^seeds"):
        train_references(model_spec("mlp", (8,)), x, y, np.ones((2, len(x)), bool), 3, RECIPE, [1])
    with pytest.raises(InputError, match="^masks"):
        train_references(model_spec("mlp", (8,)), x, y, np.ones((2, 5), bool), 3, RECIPE, [1, 2])


def test_an_audit_over_damaged_entries_gives_a_fresh_runs_numbers(tmp_path):
    import miaudit

    kw = dict(dataset="digits", target="mlp", members=150, population=200, epochs=3, seed=2, reference_models=2,
              attacks=["threshold-loss", "lira-online", "rmia"], precision="float32", cache_dir=str(tmp_path),
              progress=False)
    fresh = miaudit.audit(**kw)
    files = sorted(tmp_path.glob("*/*.pkl"))
    assert len(files) == 3  # the target and two reference models
    for kind, victim, other in zip(["middle bytes", "copied over", "truncated"], files, files[1:] + files[:1]):
        _corrupt(kind, victim, other)
    with pytest.warns(RuntimeWarning, match="discarded") as caught:
        again = miaudit.audit(**kw)
    assert len(caught) == 3
    assert again.timing["reference_models_trained"] == 2 and again.timing["train_target_s"] > 0
    for before, after in zip(fresh.attacks, again.attacks):
        np.testing.assert_allclose(after.scores, before.scores, rtol=1e-5, atol=1e-6)
        assert after.metrics.auc == pytest.approx(before.metrics.auc)


def test_a_killed_save_leaves_no_temporary_file_after_the_next_run(tmp_path):
    import os
    import subprocess
    import sys
    import time

    key = cache_key(name="killed")
    killed = ("import os, sys; from miaudit.models.cache import ModelCache; "
              "os.fsync = lambda fd: os.kill(os.getpid(), 9); "
              f"ModelCache(sys.argv[1]).save({key!r}, list(range(1000)))")
    run = subprocess.run([sys.executable, "-c", killed, str(tmp_path)], env={**os.environ})
    assert run.returncode == -9
    left = list(tmp_path.glob("*/.*.tmp"))
    assert len(left) == 1  # the killed write's file
    old = tmp_path / key[:2] / ".0123456789ab.tmpXYZ.tmp"  # an old-style name, two days old
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    fresh = tmp_path / key[:2] / ".0123456789ab.otherhost.1.abc.tmp"  # maybe another host's live write
    fresh.write_bytes(b"x")
    cache = ModelCache(tmp_path)
    assert not left[0].exists() and not old.exists() and fresh.exists()
    assert cache.load(key) is None
    cache.save(key, "saved")
    assert cache.load(key) == "saved"
