"""Subset selection, classical baselines, QUBO builders and the self-test."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from qml_cli.errors import InvalidInput, ResourceLimit
from qml_cli.quantum import classical, qubo, statevector
from qml_cli.quantum.selftest import run_selftest
from qml_cli.quantum.solve import EXACT_LIMIT, QUANTUM_LIMIT, solve_subset_qubo


def brute_force_selection(scores, redundancy, k):
    """Best k-subset by enumerating every subset of size k."""
    best, best_value = None, np.inf
    for subset in itertools.combinations(range(len(scores)), k):
        value = -sum(scores[i] for i in subset) + sum(
            redundancy[i][j] for i, j in itertools.combinations(subset, 2))
        if value < best_value:
            best, best_value = list(subset), value
    return best, best_value


def random_selection(n, seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    redundancy = rng.random((n, n)) * 0.6
    return scores, (redundancy + redundancy.T) / 2


@pytest.mark.parametrize(("n", "k"), [(4, 2), (6, 3), (9, 4), (11, 2)])
def test_cardinality_optimum_matches_brute_force(n, k):
    scores, redundancy = random_selection(n, seed=n + k)
    expected, value = brute_force_selection(scores, redundancy, k)
    report = solve_subset_qubo(qubo.cardinality_selection(scores, redundancy, k),
                               use_quantum=False)
    assert report.selected == expected
    assert report.best_energy == pytest.approx(value)
    assert report.classical.solver == classical.EXACT_SOLVER


def test_quantum_result_reported_beside_exact():
    scores, redundancy = random_selection(7, seed=2)
    model = qubo.cardinality_selection(scores, redundancy, 3)
    report = solve_subset_qubo(model, use_quantum=True, p=2, seed=5)
    assert report.quantum_status == "ran"
    assert report.quantum is not None
    assert report.quantum.best_energy >= report.classical.energy - 1e-9
    assert report.winner in ("tie", "classical")
    assert 0 < report.optimum_probability <= 1
    assert report.approximation_ratio > 0.5
    assert report.low_confidence == (report.optimum_probability < 0.5)


def test_quantum_beats_uniform_sampling():
    scores, redundancy = random_selection(6, seed=9)
    model = qubo.cardinality_selection(scores, redundancy, 2)
    report = solve_subset_qubo(model, use_quantum=True, p=3, seed=0)
    uniform = model.energy_table().optimum_multiplicity() / 2 ** 6
    assert report.optimum_probability > 2 * uniform


def test_without_quantum_only_classical_runs():
    scores, redundancy = random_selection(5, seed=1)
    report = solve_subset_qubo(qubo.cardinality_selection(scores, redundancy, 2),
                               use_quantum=False)
    assert report.quantum is None
    assert report.quantum_status == "not requested"
    assert report.winner == "classical"
    assert report.low_confidence is None


def test_report_serialises_to_json():
    scores, redundancy = random_selection(5, seed=3)
    report = solve_subset_qubo(qubo.cardinality_selection(scores, redundancy, 2),
                               use_quantum=True, p=1)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["classical"]["solver"] == classical.EXACT_SOLVER
    assert data["quantum"]["p"] == 1
    assert data["selected"] == report.selected


def test_large_model_uses_annealing_and_skips_qaoa():
    rng = np.random.default_rng(4)
    n = max(EXACT_LIMIT, QUANTUM_LIMIT) + 3
    model = qubo.QuboModel(rng.normal(size=(n, n)), rng.normal(size=n))
    report = solve_subset_qubo(model, use_quantum=True)
    assert report.classical.solver == classical.ANNEALING_SOLVER
    assert not report.classical.exact
    assert report.quantum is None
    assert report.quantum_status.startswith("skipped")
    assert model.energy([int(b) for b in report.best_bitstring]) == pytest.approx(
        report.best_energy)


@pytest.mark.parametrize("n", [8, 12, 16])
def test_annealing_finds_exact_optimum_on_small_models(n):
    rng = np.random.default_rng(n)
    model = qubo.QuboModel(rng.normal(size=(n, n)), rng.normal(size=n))
    exact = classical.solve_exact(model.energy_table())
    annealed = classical.simulated_annealing(model, seed=1)
    assert annealed.energy == pytest.approx(exact.energy)


def test_maxcut_energy_is_minus_cut_weight():
    model = qubo.maxcut([(0, 1, 2.0), (1, 2), (0, 2, 0.5)])
    assert model.energy([1, 0, 0]) == pytest.approx(-2.5)
    assert model.energy([0, 1, 0]) == pytest.approx(-3.0)
    assert model.energy([0, 0, 0]) == 0


@pytest.mark.parametrize(("edges", "message"), [
    ([(0, 0)], "self-loop"),
    ([(0, -1)], "integers from 0"),
    ([(0, 1, float("nan"))], "non-finite"),
    ([], "at least one edge"),
    ([(0, 1, 2, 3)], "an edge is"),
])
def test_maxcut_rejects_bad_edges(edges, message):
    with pytest.raises(InvalidInput, match=message):
        qubo.maxcut(edges)


def test_cardinality_default_penalty_enforces_k():
    scores, redundancy = random_selection(8, seed=6)
    table = qubo.cardinality_selection(scores, redundancy, 3).energy_table()
    for index in table.optimal_indices():
        assert bin(int(index)).count("1") == 3


def test_from_json_reads_sparse_and_dense_forms():
    dense = qubo.from_json('{"Q": [[1, 2], [0, -3]], "c": [0.5, 0], "offset": 1}')
    sparse = qubo.from_json({"n": 2, "quadratic": [[0, 0, 1], [0, 1, 2], [1, 1, -3]],
                             "linear": {"0": 0.5}, "offset": 1})
    np.testing.assert_allclose(dense.energies(), sparse.energies())
    assert dense.energy([1, 1]) == pytest.approx(1 + 2 - 3 + 0.5 + 1)


@pytest.mark.parametrize(("document", "message"), [
    ("{", "invalid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"Q": [[1, 2], [3]]}', "rows of 2"),
    ('{"Q": [[1]], "c": ["a"]}', "must be a number"),
    ('{"n": 2, "quadratic": [[0, 5, 1]]}', "outside 0..1"),
    ('{"Q": [[1]], "bogus": 1}', "unknown QUBO keys"),
    ('{"linear": {"0": 1}}', "number of variables"),
    ('{"Q": [[1e400]]}', "finite"),
])
def test_from_json_rejects_bad_documents(document, message):
    with pytest.raises(InvalidInput, match=message):
        qubo.from_json(document)


def test_memory_check_names_sizes():
    with pytest.raises(ResourceLimit) as caught:
        statevector.check_memory(30, 16, "QAOA simulation", available=1 << 30)
    text = str(caught.value)
    assert "30 qubits" in text
    assert "16.0 GiB" in text
    assert "largest size that fits is 26 qubits" in text


def test_simulator_refuses_state_beyond_memory():
    from qml_cli.quantum.simulator import QaoaSimulator

    table = qubo.maxcut([(0, 1), (1, 2)]).energy_table()
    with pytest.raises(ResourceLimit, match="3 qubits"):
        QaoaSimulator(table, available=64)


def test_selftest_passes_every_check():
    result = run_selftest()
    failed = [check["name"] for check in result["checks"] if not check["ok"]]
    assert failed == []
    assert result["ok"] is True


def test_sampling_follows_probabilities():
    rng = np.random.default_rng(0)
    state = rng.normal(size=1 << 12) + 1j * rng.normal(size=1 << 12)
    state /= np.linalg.norm(state)
    samples = statevector.sample_indices(state, 100_000, seed=1, block_bits=8)
    observed = np.bincount(samples // 256, minlength=16) / 100_000
    expected = (np.abs(state) ** 2).reshape(16, -1).sum(axis=1)
    # Each bin's frequency has a standard deviation below 0.0016 at 1e5 draws.
    assert np.max(np.abs(observed - expected)) < 0.01


def test_reported_angles_reproduce_expectation():
    from qml_cli.quantum.qaoa import evaluate_angles, run_qaoa

    model = qubo.maxcut([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)])
    result = run_qaoa(model, 2, seed=1)
    again = evaluate_angles(model, result.gammas, result.betas)
    assert abs(again.expectation - result.expectation) < 1e-9
    assert all(-np.pi <= gamma <= np.pi for gamma in result.gammas)
    assert all(-np.pi / 2 <= beta <= np.pi / 2 for beta in result.betas)
