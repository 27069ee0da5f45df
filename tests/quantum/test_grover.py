"""Grover search against the closed form, dense matrices and the 2-D subspace."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qml_cli.errors import InvalidInput
from qml_cli.quantum import grover

from .reference import grover_state as dense_grover_state

CASES = [(n, m) for n in (2, 3, 5, 8, 11) for m in (1, 2, 3, 7) if m < (1 << n)]


def spread_mask(n: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(1 << n, dtype=bool)
    mask[rng.choice(1 << n, size=count, replace=False)] = True
    return mask


@pytest.mark.parametrize(("n", "count"), CASES)
def test_state_probability_matches_closed_form(n, count):
    mask = spread_mask(n, count, seed=n * 31 + count)
    for k in range(0, 12):
        state = grover.grover_state(n, mask, k)
        measured = float(np.sum(state[mask].astype(float) ** 2))
        expected = math.sin((2 * k + 1) * grover.rotation_angle(1 << n, count)) ** 2
        assert measured == pytest.approx(expected, abs=1e-12)
        assert grover.success_probability(1 << n, count, k) == pytest.approx(
            expected, abs=1e-15)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_state_matches_dense_matrices(n):
    mask = spread_mask(n, 2, seed=n)
    for k in range(5):
        expected = dense_grover_state(n, np.flatnonzero(mask), k)
        np.testing.assert_allclose(grover.grover_state(n, mask, k), expected,
                                   atol=1e-12)


@pytest.mark.parametrize(("n", "count"), CASES)
def test_two_dimensional_path_equals_state(n, count):
    mask = spread_mask(n, count, seed=count)
    for k in (0, 1, 2, 5, 9):
        state = grover.grover_state(n, mask, k)
        marked, unmarked = grover.two_dimensional_amplitudes(1 << n, count, k)
        np.testing.assert_allclose(state[mask], marked, atol=1e-12)
        np.testing.assert_allclose(state[~mask], unmarked, atol=1e-12)


def test_optimal_count_beats_counts_up_to_peak():
    for n in range(1, 11):
        size = 1 << n
        for count in range(1, size + 1):
            best = grover.optimal_iterations(size, count)
            probability = grover.success_probability(size, count, best)
            peak = math.pi / (4 * grover.rotation_angle(size, count)) - 0.5
            others = [grover.success_probability(size, count, k)
                      for k in range(0, math.ceil(peak) + 1)]
            assert probability >= max(others) - 1e-12


@pytest.mark.parametrize(("size", "count", "optimal", "textbook"),
                         [(128, 19, 1, 2), (512, 35, 2, 3), (1024, 39, 3, 4)])
def test_optimal_count_differs_from_textbook(size, count, optimal, textbook):
    assert grover.optimal_iterations(size, count) == optimal
    assert math.floor(math.pi / 4 * math.sqrt(size / count)) == textbook
    assert grover.success_probability(size, count, optimal) > \
        grover.success_probability(size, count, textbook)


def test_predicate_marks_matching_indices():
    mask = grover.marked_mask(6, lambda index: index % 9 == 4)
    assert np.array_equal(np.flatnonzero(mask), np.arange(4, 64, 9))


def test_marked_index_out_of_range_is_rejected():
    with pytest.raises(InvalidInput, match="outside 0..15"):
        grover.marked_mask(4, [3, 16])


def test_no_marked_index_is_rejected_for_known_count():
    with pytest.raises(InvalidInput, match="marked count"):
        grover.optimal_iterations(16, 0)


@pytest.mark.parametrize("full_state", [True, False])
def test_known_count_search_reports_exact_probability(full_state):
    mask = grover.marked_mask(10, [3, 17, 600])
    result = grover.search_known_count(10, mask, seed=4, full_state=full_state)
    assert result.iterations == grover.optimal_iterations(1024, 3)
    assert result.success_probability == pytest.approx(
        grover.success_probability(1024, 3, result.iterations))
    assert result.measured_is_marked == bool(mask[result.measured_index])


def test_known_count_measurements_follow_success_probability():
    mask = grover.marked_mask(6, [5])
    hits = sum(grover.search_known_count(6, mask, seed=seed).measured_is_marked
               for seed in range(400))
    expected = grover.success_probability(64, 1, grover.optimal_iterations(64, 1))
    # 400 draws: the standard deviation of the hit rate is below 0.025.
    assert abs(hits / 400 - expected) < 0.1


def test_unknown_count_search_finds_marked_index():
    mask = grover.marked_mask(12, [1234, 2048, 77])
    for seed in range(20):
        result = grover.search_unknown_count(12, mask, seed=seed)
        assert result.found
        assert mask[result.index]
        assert result.oracle_calls <= result.budget + math.sqrt(4096)


def test_unknown_count_search_stops_when_nothing_is_marked():
    mask = np.zeros(1 << 8, dtype=bool)
    result = grover.search_unknown_count(8, mask, seed=1)
    assert not result.found
    assert result.oracle_calls >= result.budget


def test_classical_scan_counts_calls_to_first_hit():
    mask = grover.marked_mask(5, [9, 20])
    scan = grover.classical_scan(mask)
    assert scan["index"] == 9
    assert scan["oracle_calls"] == 10
    assert scan["expected_calls_random_order"] == pytest.approx(33 / 3)
