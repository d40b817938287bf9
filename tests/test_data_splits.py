"""Record splits (members / non-members / attacker), the benchmark pool, class filtering, balanced masks."""
from __future__ import annotations

import numpy as np
import pytest

from miaudit.data import Dataset, Splits, balanced_masks, keep_classes, make_splits, pool_splits
from miaudit.errors import InputError


def test_make_splits_sizes_disjoint_and_cover_the_rest():
    s = make_splits(1000, 300, 200, seed=4)
    assert (s.members.size, s.non_members.size, s.attacker.size) == (300, 200, 500)
    assert all(part.dtype == np.int64 for part in (s.members, s.non_members, s.attacker))
    everything = np.concatenate([s.members, s.non_members, s.attacker])
    np.testing.assert_array_equal(np.sort(everything), np.arange(1000))
    s.check(1000)
    assert "300 members" in s.summary() and "500 attacker" in s.summary()


def test_make_splits_defaults_and_explicit_attacker():
    s = make_splits(100, 10)
    assert s.non_members.size == 10 and s.attacker.size == 80
    s = make_splits(100, 10, attacker=5)
    assert s.attacker.size == 5
    s.check(100)


def test_make_splits_follows_the_seeded_permutation():
    s = make_splits(70_000, 2500, 2500, seed=0)
    order = np.random.default_rng(0).permutation(70_000)
    np.testing.assert_array_equal(s.members, order[:2500])
    np.testing.assert_array_equal(s.non_members, order[2500:5000])
    np.testing.assert_array_equal(make_splits(500, 50, seed=7).members, make_splits(500, 50, seed=7).members)
    assert not np.array_equal(make_splits(500, 50, seed=7).members, make_splits(500, 50, seed=8).members)


def test_make_splits_rejects_impossible_requests():
    with pytest.raises(InputError) as err:
        make_splits(1797, 3000, dataset_name="digits")
    assert str(err.value) == "--members: 3000 members + 3000 non-members need 6000 records, digits has 1797"
    with pytest.raises(InputError, match="--members"):
        make_splits(100, 0)
    with pytest.raises(InputError, match="--non-members"):
        make_splits(100, 10, -1)
    with pytest.raises(InputError, match="attacker"):
        make_splits(100, 40, 40, attacker=30)


def test_check_finds_overlap_duplicates_and_out_of_range():
    idx = lambda *v: np.array(v, np.int64)
    with pytest.raises(InputError, match="overlap"):
        Splits(idx(0, 1), idx(1, 2), idx(3)).check(5)
    with pytest.raises(InputError, match="duplicate"):
        Splits(idx(0, 0), idx(1), idx()).check(5)
    with pytest.raises(InputError, match="out of range"):
        Splits(idx(0), idx(5), idx()).check(5)
    with pytest.raises(InputError, match="out of range"):
        Splits(idx(-1), idx(2), idx()).check(5)
    Splits(idx(0), idx(4), idx(1, 2, 3)).check(5)


def test_pool_splits_is_the_benchmark_protocol():
    pool, member = pool_splits(70_000, 5000, seed=0)
    np.testing.assert_array_equal(pool, np.random.default_rng(0).permutation(70_000)[:5000])
    assert member.dtype == bool and member.shape == (5000,) and member.sum() == 2500
    expected = np.zeros(5000, bool)
    expected[np.random.default_rng(1).permutation(5000)[:2500]] = True
    np.testing.assert_array_equal(member, expected)
    again_pool, again_member = pool_splits(70_000, 5000, seed=0)
    np.testing.assert_array_equal(pool, again_pool)
    np.testing.assert_array_equal(member, again_member)
    with pytest.raises(InputError):
        pool_splits(100, 101, seed=0)


def small_dataset():
    y = np.array([0, 1, 2, 3, 1, 3, 0, 2, 3], np.int64)
    x = np.arange(len(y) * 2, dtype=np.float32).reshape(-1, 2)
    return Dataset("toy", x, y, 4, ("zero", "one", "two", "three"))


def test_keep_classes_filters_and_relabels_in_given_order():
    ds = small_dataset()
    kept = keep_classes(ds, [3, 1])
    assert kept.n_classes == 2 and kept.class_names == ("three", "one")
    np.testing.assert_array_equal(kept.y, [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(kept.x[:, 0], ds.x[[1, 3, 4, 5, 8], 0])


@pytest.mark.parametrize("classes", [[4], [-1], [1, 1], [], [0.5]])
def test_keep_classes_rejects_bad_classes(classes):
    with pytest.raises(InputError, match="--keep-classes"):
        keep_classes(small_dataset(), classes)


@pytest.mark.parametrize("k", [2, 4, 7, 16])
def test_balanced_masks_every_record_in_for_half(k):
    n = 101
    masks = balanced_masks(k, n, seed=3)
    assert masks.shape == (k, n) and masks.dtype == bool
    per_record = masks.sum(axis=0)
    if k % 2 == 0:
        assert np.all(per_record == k // 2)
    else:
        assert np.all((per_record == k // 2) | (per_record == k // 2 + 1))
    assert np.all(np.abs(masks.sum(axis=1) - n / 2) <= 1)
    np.testing.assert_array_equal(masks, balanced_masks(k, n, seed=3))
