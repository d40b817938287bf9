"""Input standardization: statistics, the identity option, and one transform for every record set."""
from __future__ import annotations

import numpy as np
import pytest

from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.data import load_dataset
from miaudit.data.dataset import Dataset
from miaudit.data.queries import query_views
from miaudit.data.scaling import fit_scaler
from miaudit.errors import InputError


def test_images_are_standardized_per_channel():
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(0, 1, (200, 6, 6)), rng.normal(5, 3, (200, 6, 6))], axis=1).astype(np.float32)
    scaler = fit_scaler(x)
    z = scaler.transform(x)
    assert scaler.mean.shape == (2, 1, 1)
    assert np.allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert z.dtype == np.float32 and z.shape == x.shape


def test_tabular_features_are_standardized_one_by_one_and_constants_stay_finite():
    rng = np.random.default_rng(1)
    x = np.c_[rng.normal(100, 20, 300), rng.normal(-1, 0.01, 300), np.full(300, 7.0)].astype(np.float32)
    z = fit_scaler(x, "standard").transform(x)
    assert np.allclose(z[:, :2].mean(axis=0), 0, atol=1e-3)
    assert np.allclose(z[:, :2].std(axis=0), 1, atol=1e-3)
    assert np.all(z[:, 2] == 0.0)  # constant feature: shifted, not divided by 0


def test_auto_leaves_indicator_features_alone_and_standardizes_the_rest():
    rng = np.random.default_rng(5)
    x = np.c_[rng.random(400) < 0.02, rng.random(400) < 0.5, rng.normal(50, 10, 400)].astype(np.float32)
    auto, standard = fit_scaler(x, "auto").transform(x), fit_scaler(x, "standard").transform(x)
    assert np.array_equal(auto[:, :2], x[:, :2])  # 0/1 columns unchanged
    assert standard[:, 0].max() > 5  # a rare indicator standardized becomes large
    assert np.allclose(auto[:, 2], standard[:, 2])
    images = (rng.random((50, 1, 4, 4)) < 0.3).astype(np.float32)  # binary images are still images
    assert np.allclose(fit_scaler(images, "auto").transform(images), fit_scaler(images, "standard").transform(images))


def test_none_is_the_identity_and_unknown_scalings_are_rejected():
    x = np.random.default_rng(2).random((10, 3), dtype=np.float32)
    assert np.array_equal(fit_scaler(x, "none").transform(x), x)
    with pytest.raises(InputError, match="input_scaling"):
        fit_scaler(x, "minmax")
    with pytest.raises(InputError, match="input_scaling"):
        make_config(input_scaling="minmax")


def test_plan_scales_every_record_set_with_the_target_datasets_statistics(tmp_path):
    rng = np.random.default_rng(3)
    other = tmp_path / "other.npz"  # out-of-domain records with a different mean
    np.savez(other, x=rng.normal(40, 5, (300, 1, 8, 8)).astype(np.float32), y=np.arange(300) % 10)
    raw = load_dataset("digits").x.reshape(1797, -1)  # 8x8 images, one channel: one mean and std
    plan = make_plan(make_config(dataset="digits", members=200, reference_models=2, nonmember_dataset=str(other),
                                 attacks=["threshold-loss"]))
    mean, scale = raw.mean(), raw.std()
    want = (raw[plan.record_index[plan.membership]] - mean) / scale
    assert np.allclose(plan.member_x.reshape(200, -1), want, atol=1e-4)
    # non-members come from the other set, transformed with the *target's* statistics, not their own
    out = plan.pool_x[~plan.membership].reshape(200, -1)
    assert out.mean() > 5  # far from 0: not re-centred on its own mean
    raw_other = np.load(other)["x"][plan.record_index[~plan.membership]].reshape(200, -1)
    assert np.allclose(out, (raw_other - mean) / scale, atol=1e-3)
    assert np.allclose(plan.population_x.reshape(len(plan.population_x), -1).mean(), 0, atol=0.2)


def test_plan_without_scaling_keeps_images_in_unit_range():
    plan = make_plan(make_config(dataset="digits", members=100, reference_models=0, input_scaling="none",
                                 attacks=["threshold-loss"]))
    assert plan.pool_x.min() >= 0 and plan.pool_x.max() <= 1


def test_shifted_image_views_fill_with_the_background_value():
    x = np.full((2, 1, 4, 4), -0.8, np.float32)
    x[:, :, 1:3, 1:3] = 2.0
    views = query_views(x, 3)
    shifted = views[2]  # shifted one pixel right: the first column is new
    assert np.all(shifted[..., :, 0] == -0.8)


def test_image_statistics_over_many_chunks_match_float64():
    x = np.random.default_rng(4).gamma(0.5, 2.0, (3100, 1, 32, 32)).astype(np.float32)  # 3.2M values, skewed
    scaler = fit_scaler(x)
    exact = x.astype(np.float64)
    assert scaler.mean.ravel()[0] == pytest.approx(exact.mean(), rel=1e-6)
    assert scaler.scale.ravel()[0] == pytest.approx(exact.std(), rel=1e-5)


def test_in_place_apply_overwrites_only_arrays_the_caller_owns():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(50, 1, 3, 3)) * 4 + 2).astype(np.float32)
    scaler = fit_scaler(x, "standard")
    expected = scaler.transform(x)
    fresh = Dataset("t", x.copy(), np.zeros(50, np.int64), 2)
    done = scaler.apply(fresh, in_place=True)
    assert done.x is fresh.x and np.array_equal(done.x, expected)
    locked = x.copy()
    locked.flags.writeable = False  # e.g. a loader's cached array
    kept = scaler.apply(Dataset("t", locked, np.zeros(50, np.int64), 2), in_place=True)
    assert kept.x is not locked and np.array_equal(kept.x, expected) and np.array_equal(locked, x)
    view = x.copy()[:40]  # does not own its memory
    assert scaler.apply(Dataset("t", view, np.zeros(40, np.int64), 2), in_place=True).x is not view
