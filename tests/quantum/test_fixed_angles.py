"""MaxCut QAOA against the closed form at p = 1 and the fixed-angle table."""

from __future__ import annotations

import numpy as np
import pytest

from qml_cli.quantum import analytic, angles
from qml_cli.quantum.graphs import girth, random_regular_graph
from qml_cli.quantum.qaoa import evaluate_angles, run_qaoa
from qml_cli.quantum.qubo import maxcut
from qml_cli.quantum.selftest import HEAWOOD_EDGES, PETERSEN_EDGES
from qml_cli.quantum.simulator import QaoaSimulator

# Graphs with triangles and mixed degrees for the closed form.
GRAPHS = {
    "two triangles and a tail": [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (3, 4),
                                 (4, 5)],
    "wheel of 6": [(0, i) for i in range(1, 6)] + [(i, i % 5 + 1) for i in range(1, 6)],
    "complete 5": [(i, j) for i in range(5) for j in range(i + 1, 5)],
    "star and triangle": [(0, 1), (0, 2), (0, 3), (0, 4), (3, 4), (4, 5), (5, 6),
                          (6, 7), (7, 5)],
}


def cut_probability(probabilities: np.ndarray, u: int, v: int) -> float:
    index = np.arange(probabilities.shape[0])
    return float(probabilities[((index >> u) & 1) != ((index >> v) & 1)].sum())


@pytest.mark.parametrize("name", sorted(GRAPHS))
@pytest.mark.parametrize(("gamma", "beta"), [(0.3, 0.2), (0.9, -0.4), (-1.7, 1.1)])
def test_p1_edges_match_closed_form(name, gamma, beta):
    edges = GRAPHS[name]
    simulator = QaoaSimulator(maxcut(edges).energy_table())
    probabilities = np.abs(simulator.state([-gamma], [beta])) ** 2
    for u, v in edges:
        expected = analytic.maxcut_p1_edge_expectation(edges, u, v, gamma, beta)
        assert cut_probability(probabilities, u, v) == pytest.approx(expected,
                                                                     abs=1e-12)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_closed_form_graphs_have_triangles(name):
    edges = GRAPHS[name]
    assert girth(edges, int(np.max(edges)) + 1) == 3


@pytest.mark.parametrize("name", sorted(set(GRAPHS) - {"complete 5"}))
def test_closed_form_graphs_have_mixed_degrees(name):
    degrees = np.bincount(np.array(GRAPHS[name]).ravel())
    assert len(set(degrees.tolist())) > 1


@pytest.mark.parametrize("p", [1, 2])
def test_fixed_angles_exact_on_heawood_graph(p):
    assert girth(HEAWOOD_EDGES, 14) == 6
    gammas, betas, ratio = angles.fixed_angles_3_regular(p)
    result = evaluate_angles(maxcut(HEAWOOD_EDGES), gammas, betas)
    assert -result.expectation / len(HEAWOOD_EDGES) == pytest.approx(ratio, abs=1e-6)


def test_fixed_angles_p1_exact_on_petersen_graph():
    assert girth(PETERSEN_EDGES, 10) == 5
    gammas, betas, ratio = angles.fixed_angles_3_regular(1)
    result = evaluate_angles(maxcut(PETERSEN_EDGES), gammas, betas)
    assert -result.expectation / len(PETERSEN_EDGES) == pytest.approx(ratio, abs=1e-6)


@pytest.mark.parametrize("n", [12, 16, 20])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_fixed_angles_near_table_on_random_graphs(n, p):
    gammas, betas, ratio = angles.fixed_angles_3_regular(p)
    for seed in range(3):
        edges = random_regular_graph(n, 3, seed)
        result = evaluate_angles(maxcut(edges), gammas, betas)
        # Short cycles move the cut fraction off the tree value, which assumes
        # no cycle of length 2p+1 or less. On these nine graphs it moves 0.022
        # at most.
        assert abs(-result.expectation / len(edges) - ratio) < 0.03


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interp_reaches_fixed_angle_ratios(seed):
    edges = random_regular_graph(16, 3, seed)
    model = maxcut(edges)
    result = run_qaoa(model, 3, seed=seed, max_iterations=100)
    assert [step["p"] for step in result.depth_history] == [1, 2, 3]
    maximum_cut = -result.optimum_energy
    for step in result.depth_history:
        gammas, betas, ratio = angles.fixed_angles_3_regular(step["p"])
        fixed = evaluate_angles(model, gammas, betas).expectation
        assert step["objective_value"] <= fixed + 1e-9
        assert -step["objective_value"] / maximum_cut >= ratio


def test_random_regular_graph_is_simple_and_regular():
    edges = random_regular_graph(20, 3, seed=5)
    degrees = np.bincount(np.array(edges).ravel(), minlength=20)
    assert np.all(degrees == 3)
    assert len({tuple(sorted(edge)) for edge in edges}) == len(edges)
    assert all(u != v for u, v in edges)


def test_girth_of_known_graphs():
    assert girth(HEAWOOD_EDGES, 14) == 6
    assert girth(PETERSEN_EDGES, 10) == 5
    assert girth([(0, 1), (1, 2)], 3) == 0
