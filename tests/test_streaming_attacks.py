"""Streamed attacks over a chunked signal store give the in-memory attacks' scores."""
from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks import lira
from miaudit.attacks.registry import ATTACKS
from miaudit.attacks.streamed import NOT_STREAMED, STREAMED, run_streamed, side_stats, streamable_names
from miaudit.data.splits import balanced_masks
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.store import SignalStore, check_layout, store_inputs

SYNTHETIC = [name for name in STREAMED if not ATTACKS[name].needs_white_box]
"""The streamed attacks synthetic inputs serve (the gradient attacks need a torch target:
tests/test_streaming_audit.py runs them on a real audit's signals)."""


def in_memory(name: str, inputs: AttackInputs):
    """The attack ``name`` as the in-memory audit runs it (its registered function and settings)."""
    return ATTACKS[name].run(inputs)


def synthetic_inputs(k: int, n: int, z: int = 300, c: int = 5, seed: int = 0) -> tuple[AttackInputs, np.ndarray]:
    """Pool-mode inputs whose IN models are more confident on the true class, and the membership [N]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    member = rng.random(n) < 0.5
    ref_in = balanced_masks(k, n, seed + 1)
    hardness = rng.normal(0, 1.5, n)

    def logits(is_in: np.ndarray, y: np.ndarray, hard: np.ndarray) -> np.ndarray:
        """Noise logits [..., m, C] with the true class y [m] raised by 2 + hard [m] + 1.5 if IN."""
        out = rng.normal(0, 1, (*is_in.shape, c))
        boost = 2.0 + hard + 1.5 * is_in
        index = np.broadcast_to(y, is_in.shape)[..., None]
        np.put_along_axis(out, index, np.take_along_axis(out, index, -1) + boost[..., None], -1)
        return out.astype(np.float32)

    pop_y = rng.integers(0, c, z)
    pop_hard = rng.normal(0, 1.5, z)
    t = logits(member, labels, hardness)
    r = logits(ref_in, labels, hardness)
    pt = logits(np.zeros(z, bool), pop_y, pop_hard)
    pr = logits(np.zeros((k, z), bool), pop_y, pop_hard)
    ids = rng.permutation(10 * n)[:n]
    features = np.random.default_rng(seed + 7)  # records and a linear target: the record-reading attacks
    records, population = (features.normal(0, 1, (m, 4)).astype(np.float32) for m in (n, z))
    target = LinearTarget(features.normal(0, 1, (4, c)).astype(np.float32))
    inputs = AttackInputs(t[:, None], labels, r[:, :, None], ref_in, r[:, :, None], ref_in, labels,
                          pt[:, None], pr[:, :, None], pop_y, ids, ids, records, target, population_records=population)
    return inputs, member


class LinearTarget:
    """A model for the label-only attacks of synthetic inputs: logits = x @ w."""

    def __init__(self, w: np.ndarray) -> None:
        self.w, self.n_classes = w, w.shape[1]

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32).reshape(len(x), -1) @ self.w

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(1)


@pytest.fixture(scope="module")
def small():
    inputs, member = synthetic_inputs(k=8, n=1000)
    return inputs, member


@pytest.mark.parametrize("name", SYNTHETIC)
@pytest.mark.parametrize("k", [8, 64])
def test_streamed_scores_equal_in_memory(tmp_path, name, k):
    inputs, _ = synthetic_inputs(k=k, n=700, seed=k)
    store = store_inputs(inputs, tmp_path / "s", chunk=128)  # 6 chunks, the last of 60 records
    assert store.blocks()[-1] == (640, 700)
    want = in_memory(name, inputs)
    got = run_streamed(name, store)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)
    assert got.params == want.params
    if want.decision is None:
        assert got.decision is None
    else:
        np.testing.assert_array_equal(got.decision, want.decision)
        assert got.threshold == pytest.approx(want.threshold, rel=1e-9, abs=1e-12)


def test_lira_variance_mode_follows_k(tmp_path):
    for k, mode in ((8, "global"), (64, "per-example")):
        inputs, _ = synthetic_inputs(k=k, n=200, seed=1)
        assert run_streamed("lira-online", store_inputs(inputs, tmp_path / f"s{k}", 64)).params["variance"] == mode


def test_first_pass_statistics_match_the_global_scale(tmp_path, small):
    inputs, _ = small
    store = store_inputs(inputs, tmp_path / "s", chunk=97)
    stats = side_stats(store)
    phi = lira.scaled_confidence(inputs.reference_logits, inputs.labels[None, :, None])
    for side, mask in (("in", inputs.reference_in), ("out", ~inputs.reference_in)):
        np.testing.assert_allclose(stats[side].scale(np.ones(8, bool)), phi[mask].std(axis=0), rtol=1e-12)
        others = np.arange(8) != 3
        np.testing.assert_allclose(stats[side].scale(others), phi[others][mask[others]].std(axis=0), rtol=1e-12)
    assert side_stats(store) is stats  # computed once, cached on the store


def test_permuting_records_permutes_streamed_scores(tmp_path, small):
    inputs, _ = small
    order = np.random.default_rng(5).permutation(inputs.n_records)
    a = store_inputs(inputs, tmp_path / "a", chunk=150)
    b = store_inputs(inputs.permuted(order), tmp_path / "b", chunk=150)
    for name in SYNTHETIC:
        np.testing.assert_allclose(run_streamed(name, b).scores, run_streamed(name, a).scores[order],
                                   rtol=1e-9, atol=1e-12)


def test_chunk_size_does_not_change_scores(tmp_path, small):
    inputs, _ = small
    one = store_inputs(inputs, tmp_path / "one", chunk=1000)
    many = store_inputs(inputs, tmp_path / "many", chunk=33)
    for name in SYNTHETIC:
        np.testing.assert_allclose(run_streamed(name, many).scores, run_streamed(name, one).scores,
                                   rtol=1e-9, atol=1e-12)


def test_float16_store_is_close_to_float32(tmp_path, small):
    from miaudit.metrics.attack_metrics import compute_metrics

    inputs, member = small
    s32 = store_inputs(inputs, tmp_path / "f32", chunk=200)
    s16 = store_inputs(inputs, tmp_path / "f16", chunk=200, dtype="float16")
    assert s16.nbytes() < 0.6 * s32.nbytes()
    for name in SYNTHETIC:
        a, b = run_streamed(name, s32).scores, run_streamed(name, s16).scores
        auc_a = compute_metrics(a, member).auc
        auc_b = compute_metrics(b, member).auc
        assert abs(auc_a - auc_b) < 0.005, name
        if not name.startswith("shokri"):  # attack models (trees) move float16-rounded records across splits
            assert np.corrcoef(a, b)[0, 1] > 0.99, name


def test_write_models_by_shard_equals_write_by_records(tmp_path, small):
    inputs, _ = small
    by_records = store_inputs(inputs, tmp_path / "r", chunk=128)
    k, n, c = by_records.shape
    by_models = SignalStore.create(tmp_path / "m", k, n, len(inputs.population_labels), c, chunk=128)
    by_models.write_meta(inputs.labels, inputs.record_ids, inputs.reference_in)
    by_models.group["target_logits"][:] = inputs.target_logits[:, 0]
    by_models.group["population_target_logits"][:] = inputs.population_target_logits[:, 0]
    by_models.group["population_labels"][:] = inputs.population_labels
    for k0 in range(0, k, 3):  # shards of 3 models, the last of 2
        by_models.write_models(k0, inputs.reference_logits[k0:k0 + 3, :, 0],
                               inputs.population_reference_logits[k0:k0 + 3, :, 0])
    reopened = SignalStore.open(tmp_path / "m")
    reopened.attach(inputs.records, inputs.population_records, inputs.target_model)  # in memory, not on disk
    for name in SYNTHETIC:
        np.testing.assert_array_equal(run_streamed(name, reopened).scores, run_streamed(name, by_records).scores)


def test_bad_layout_and_attacks_are_one_line_errors():
    for chunk, dtype in ((0, "float32"), (-3, "float32"), (16, "float64"), (16, "int8")):
        with pytest.raises(InputError) as e:
            check_layout(chunk, dtype)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="label-only-noise cannot stream over signal chunks.*identity order"):
        streamable_names(["lira-online", "label-only-noise"])
    assert streamable_names(["all"]) == list(STREAMED)
    assert len(str(pytest.raises(InputError, streamable_names, ["label-only-boundary"]).value)) < 200


def test_every_attack_streams_or_says_why_not():
    assert set(STREAMED) | set(NOT_STREAMED) == set(ATTACKS), "a new attack goes in STREAMED or NOT_STREAMED"
    assert not set(STREAMED) & set(NOT_STREAMED)
    for name, why in NOT_STREAMED.items():
        assert why and "\n" not in why and len(why) < 100, name
    with pytest.raises(InputError, match="label-only-augmentation cannot stream.*identity order"):
        streamable_names(["label-only-augmentation"])


def test_store_never_overwrites_a_foreign_directory(tmp_path, small):
    inputs, _ = small
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty and holds no signal store"):
        store_inputs(inputs, tmp_path / "mine", chunk=100)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    store_inputs(inputs, tmp_path / "again", chunk=100)
    assert store_inputs(inputs, tmp_path / "again", chunk=300).chunk == 300  # an earlier store: rewritten
    with pytest.raises(InputError, match="holds no signal store"):
        SignalStore.open(tmp_path / "mine")


def test_rewriting_a_store_keeps_the_users_other_files(tmp_path, small):
    inputs, _ = small
    store_inputs(inputs, tmp_path / "signals", chunk=100)
    (tmp_path / "signals" / "notes.txt").write_text("keep me")
    (tmp_path / "signals" / "mine").mkdir()
    (tmp_path / "signals" / "mine" / "data.csv").write_text("a,b\n")
    again = store_inputs(inputs, tmp_path / "signals", chunk=300)
    assert again.chunk == 300
    np.testing.assert_array_equal(again.to_inputs().target_logits, store_inputs(inputs, tmp_path / "s2", 300)
                                  .to_inputs().target_logits)
    assert (tmp_path / "signals" / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "signals" / "mine" / "data.csv").read_text() == "a,b\n"


def test_streamed_base_offline_falls_back_on_records_without_out_model(tmp_path):
    inputs, _ = synthetic_inputs(k=1, n=200)  # one model: half the records have no OUT model
    store = store_inputs(inputs, tmp_path / "s", chunk=64)
    for name in ("base-offline", "base-online"):
        np.testing.assert_allclose(run_streamed(name, store).scores, in_memory(name, inputs).scores,
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["bavaria-online", "bavaria-n-offline"])
def test_streamed_bavaria_with_one_model_per_side_uses_the_pooled_variance(tmp_path, name):
    inputs, _ = synthetic_inputs(k=2, n=300, seed=4)  # every record: one IN, one OUT model, no sample variance
    store = store_inputs(inputs, tmp_path / "s", chunk=64)
    np.testing.assert_allclose(run_streamed(name, store).scores, in_memory(name, inputs).scores,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["lira-online-moderated-offsets", "lira-offline-moderated-offsets"])
def test_streamed_moderated_lira_without_population_has_no_offsets(tmp_path, name):
    inputs, _ = synthetic_inputs(k=8, n=300, z=0, seed=6)
    store = store_inputs(inputs, tmp_path / "s", chunk=70)
    want, got = in_memory(name, inputs), run_streamed(name, store)
    assert got.params == want.params == {"variance": "moderated", "neighbors": 0}
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)


def test_streamed_shokri_takes_the_audits_seed(tmp_path, small):
    inputs, _ = small
    store = store_inputs(inputs, tmp_path / "s", chunk=128)
    got, want = run_streamed("shokri-rf", store, seed=5), ATTACKS["shokri-rf"].run(inputs, seed=5)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)
    assert not np.array_equal(got.scores, run_streamed("shokri-rf", store).scores)  # seed 0: other forests


@pytest.mark.parametrize("name", ["lira-online", "lira-offline"])
def test_streamed_lira_fills_records_without_a_side_as_in_memory(tmp_path, name):
    import dataclasses

    inputs, _ = synthetic_inputs(k=3, n=400, seed=7)
    mask = np.random.default_rng(7).random((3, 400)) < 0.5  # unbalanced: some records all IN, some all OUT
    inputs = dataclasses.replace(inputs, reference_in=mask, shadow_in=mask)
    counts = mask.sum(axis=0)
    assert (counts == 0).any() and (counts == 3).any()
    store = store_inputs(inputs, tmp_path / "s", chunk=90)
    want, got = in_memory(name, inputs), run_streamed(name, store)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)
    assert got.threshold == pytest.approx(want.threshold, rel=1e-9, abs=1e-12)
