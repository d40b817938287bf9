"""Local confidence offsets from population neighbours (attacks/local_offsets.py)."""
from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from miaudit.attacks.local_offsets import population_neighbours, remove_offsets
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs


def logits_on_a_line(position: np.ndarray, labels: np.ndarray, k: int = 3) -> np.ndarray:
    """[K, M, 1, 3] logits whose log-softmax moves with ``position``: neighbours are records at
    nearby positions."""
    z = np.zeros((k, len(position), 1, 3))
    z[..., 0] = position[None, :, None]
    z[..., 1] = labels[None, :, None]
    return z


def test_neighbours_share_the_label_and_leave_population_records_out_of_their_own_average():
    rng = np.random.default_rng(0)
    pos, labels = rng.uniform(0, 10, 40), np.arange(40) % 2
    pop_pos, pop_labels = rng.uniform(0, 10, 60), np.r_[np.zeros(30, int), np.ones(30, int)]
    nb = population_neighbours(logits_on_a_line(pos, labels), labels, logits_on_a_line(pop_pos, pop_labels),
                               pop_labels, n=5)
    records, population = nb.records.toarray(), nb.population.toarray()
    assert records.shape == (40, 60) and population.shape == (60, 60)
    assert np.allclose(records.sum(axis=1), 1) and np.allclose(population.sum(axis=1), 1)
    assert ((records > 0) <= (labels[:, None] == pop_labels[None, :])).all()  # same label only
    assert np.diag(population).max() == 0  # never its own neighbour
    same = np.flatnonzero(pop_labels == labels[0])
    nearest = same[np.argsort(np.abs(pop_pos[same] - pos[0]))[:5]]
    assert set(np.flatnonzero(records[0])) == set(nearest)


def test_a_label_missing_from_the_population_gets_no_offset():
    labels, pop_labels = np.array([0, 1, 2]), np.array([0, 0, 1, 1])
    nb = population_neighbours(logits_on_a_line(np.arange(3.0), labels), labels,
                               logits_on_a_line(np.arange(4.0), pop_labels), pop_labels, n=30)
    rows = nb.records.toarray()
    assert np.allclose(rows.sum(axis=1), [1, 1, 0])  # fewer than n: all there are; none: no offset
    with pytest.raises(InputError, match="neighbours"):
        population_neighbours(logits_on_a_line(np.arange(3.0), labels), labels,
                              logits_on_a_line(np.arange(4.0), pop_labels), pop_labels, n=0)


def test_remove_offsets_takes_out_a_bias_that_varies_from_region_to_region():
    rng = np.random.default_rng(1)
    pos, pop_pos = rng.uniform(0, 1, 50), rng.uniform(0, 1, 2000)
    labels, pop_labels = rng.integers(0, 2, 50), rng.integers(0, 2, 2000)
    nb = population_neighbours(logits_on_a_line(pos, labels), labels, logits_on_a_line(pop_pos, pop_labels),
                               pop_labels, n=10)
    amplitude = np.array([0.0, 0.0, 2.0, -1.0])[:, None, None]  # models 2 and 3: biased one way here,
    bias, pop_bias = (amplitude * np.sin(2 * np.pi * p)[None, :, None] for p in (pos, pop_pos))  # the other there
    base, base_pop = rng.normal(size=(4, 50, 1)), rng.normal(size=(4, 2000, 1))
    biased_pop = base_pop + pop_bias
    corrected = remove_offsets(base + bias, biased_pop, biased_pop.mean(axis=0), nb.records)
    unbiased = remove_offsets(base, base_pop, base_pop.mean(axis=0), nb.records)
    common = bias.mean(axis=0)  # what all models share is no model's own bias, and stays
    assert corrected.shape == (4, 50, 1)
    assert np.abs(corrected - (unbiased + common)).max() < 0.1
    # one offset per model (its mean bias over all population records) would leave the bias in place
    global_shift = (biased_pop - biased_pop.mean(axis=0)).mean(axis=1, keepdims=True)
    assert np.abs(base + bias - global_shift - (base + common)).max() > 1.5


def test_shared_results_are_computed_once_even_from_concurrent_threads():
    z = np.zeros((4, 1, 3))
    inputs = AttackInputs.target_only(z, np.zeros(4, np.int64))
    calls = []
    gate = threading.Event()

    def slow():
        calls.append(1)
        gate.wait(0.2)
        return object()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: inputs.shared(("x",), slow), range(4)))
    assert len(calls) == 1 and all(r is results[0] for r in results)
    entered, release = threading.Event(), threading.Event()

    def blocking():
        entered.set()
        release.wait(5)
        return 1

    with ThreadPoolExecutor(1) as pool:  # another key does not wait for a computation in flight
        in_flight = pool.submit(inputs.shared, ("slow",), blocking)
        assert entered.wait(5)
        assert inputs.shared(("fast",), lambda: 2) == 2
        assert not in_flight.done()  # a shared lock would have made "fast" wait for it
        release.set()
        assert in_flight.result() == 1


def test_inputs_pickle_without_their_shared_results():
    inputs = AttackInputs.target_only(np.zeros((4, 1, 3)), np.zeros(4, np.int64))
    assert inputs.shared(("x",), lambda: 1) == 1
    copy = pickle.loads(pickle.dumps(inputs))
    assert copy.shared(("x",), lambda: 2) == 2  # recomputed, not carried over
    assert np.array_equal(copy.target_logits, inputs.target_logits)
