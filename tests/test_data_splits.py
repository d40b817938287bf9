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


def test_make_splits_same_seed_same_split_other_seed_other_split():
    first, again, other = (make_splits(500, 50, 60, seed=s) for s in (7, 7, 8))
    for part in ("members", "non_members", "attacker"):
        np.testing.assert_array_equal(getattr(first, part), getattr(again, part))
    assert np.intersect1d(first.members, other.members).size < 25  # chance overlap: 50 * 50 / 500 = 5


def test_make_splits_draws_members_uniformly_from_the_whole_dataset():
    n, members, seeds = 1000, 300, 400
    count = np.zeros(n)
    for seed in range(seeds):
        s = make_splits(n, members, 200, seed=seed)
        count[s.members] += 1
    share = count / seeds  # per record: Binomial(400, 0.3) / 400, sd 0.023
    assert np.abs(share - 0.3).max() < 6 * np.sqrt(0.3 * 0.7 / seeds)
    first_half = share[: n // 2].mean()  # no drift along the record order (a prefix, a sorted draw)
    assert abs(first_half - 0.3) < 0.01


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
    """The published protocol: the pool is the first 5,000 of default_rng(0).permutation(70,000), so that
    peers (ART, other tools) audit the same records; pinned so that a numpy stream change shows here."""
    pool, member = pool_splits(70_000, 5000, seed=0)
    np.testing.assert_array_equal(pool, np.random.default_rng(0).permutation(70_000)[:5000])
    assert pool[:10].tolist() == [38636, 44088, 42448, 60646, 15499, 31316, 60095, 15428, 7674, 33630]
    assert pool.dtype == np.int64 and np.unique(pool).size == 5000
    assert member.dtype == bool and member.shape == (5000,) and member.sum() == 2500
    again_pool, again_member = pool_splits(70_000, 5000, seed=0)
    np.testing.assert_array_equal(pool, again_pool)
    np.testing.assert_array_equal(member, again_member)
    other_pool, other_member = pool_splits(70_000, 5000, seed=1)
    assert np.intersect1d(pool, other_pool).size < 1000  # chance overlap ~357
    assert 0.4 < (member == other_member).mean() < 0.6  # independent halves agree on ~half the records
    assert 0.45 < member[:2500].mean() < 0.55  # a random half, not the first half of the pool
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
