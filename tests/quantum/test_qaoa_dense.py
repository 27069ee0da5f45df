"""The QAOA kernels against dense np.kron unitaries, and the adjoint gradient."""

from __future__ import annotations

import numpy as np
import pytest

from qml_cli.quantum import kernels
from qml_cli.quantum.graphs import random_regular_graph
from qml_cli.quantum.qubo import QuboModel, maxcut
from qml_cli.quantum.simulator import QaoaSimulator

from .reference import energies_by_loop, qaoa_state


def random_qubo(n: int, seed: int, integer: bool) -> QuboModel:
    rng = np.random.default_rng(seed)
    if integer:
        return QuboModel(rng.integers(-4, 5, (n, n)), rng.integers(-4, 5, n), 3.0)
    return QuboModel(rng.normal(size=(n, n)), rng.normal(size=n), -0.7)


def plans(n: int):
    """The default plan and one that forces several blocks and high groups."""
    yield None
    if n >= 2:
        yield kernels.make_plan(n, block_bits=max(1, n // 2), group_bits=2)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 10])
@pytest.mark.parametrize("integer", [True, False])
def test_energies_match_loop(n, integer):
    model = random_qubo(n, seed=n, integer=integer)
    expected = energies_by_loop(model.Q, model.c, model.offset)
    np.testing.assert_allclose(model.energies(), expected, rtol=0, atol=1e-9)


def test_large_integer_coefficients_use_int64():
    big = 2 ** 30
    model = QuboModel(np.array([[big, big], [0, big]]), np.array([big, 0]))
    energies = model.energies()
    assert energies.dtype == np.int64
    assert energies[3] == 4 * big


def test_integer_problem_keeps_integer_levels():
    table = random_qubo(6, seed=1, integer=True).energy_table()
    assert table.is_integer
    assert table.levels.dtype == np.uint8


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 8, 10])
@pytest.mark.parametrize("p", [1, 2, 3, 4])
@pytest.mark.parametrize("integer", [True, False])
def test_state_matches_dense_unitaries(n, p, integer):
    model = random_qubo(n, seed=100 * n + p, integer=integer)
    rng = np.random.default_rng(n + p)
    gammas, betas = rng.uniform(-1.5, 1.5, p), rng.uniform(-1.5, 1.5, p)
    expected = qaoa_state(model.energies().astype(float), gammas, betas)
    for plan in plans(n):
        state = QaoaSimulator(model.energy_table(), plan=plan).state(gammas, betas)
        assert np.max(np.abs(state - expected)) < 1e-10


def test_complex64_state_matches_to_single_precision():
    model = random_qubo(9, seed=5, integer=False)
    gammas, betas = [0.3, -0.8], [0.5, 1.1]
    expected = qaoa_state(model.energies(), gammas, betas)
    state = QaoaSimulator(model.energy_table(), dtype="complex64").state(gammas, betas)
    assert state.dtype == np.complex64
    assert np.max(np.abs(state - expected)) < 1e-5


@pytest.mark.parametrize("n", [3, 7, 10])
@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("cvar_alpha", [None, 0.3])
def test_adjoint_gradient_matches_finite_differences(n, integer, cvar_alpha):
    model = random_qubo(n, seed=7 * n, integer=integer)
    rng = np.random.default_rng(n)
    x = rng.uniform(-0.6, 0.6, 6)
    for plan in plans(n):
        simulator = QaoaSimulator(model.energy_table(), plan=plan)
        _, gradient = simulator.value_and_gradient(x[:3], x[3:], cvar_alpha)
        step = 1e-5
        for i in range(6):
            up, down = x.copy(), x.copy()
            up[i] += step
            down[i] -= step
            f_up = simulator.value_and_gradient(up[:3], up[3:], cvar_alpha)[0]
            f_down = simulator.value_and_gradient(down[:3], down[3:], cvar_alpha)[0]
            assert abs(gradient[i] - (f_up - f_down) / (2 * step)) < 1e-6


def test_expectation_equals_dense_expectation():
    model = random_qubo(6, seed=11, integer=True)
    energies = model.energies().astype(float)
    state = qaoa_state(energies, [0.4], [0.9])
    expected = float(np.abs(state) ** 2 @ energies)
    value = QaoaSimulator(model.energy_table()).expectation([0.4], [0.9])
    assert value == pytest.approx(expected, abs=1e-12)


def cycle_with_chords(n: int, seed: int, integer: bool) -> QuboModel:
    rng = np.random.default_rng(seed)
    edges = [(i, (i + 1) % n, float(rng.integers(1, 4))) for i in range(n)]
    edges.append((0, n // 2, 2.0 if integer else 2.5))
    return maxcut(edges)


@pytest.mark.parametrize("n", [3, 4, 6, 9])
@pytest.mark.parametrize("p", [1, 2, 4])
@pytest.mark.parametrize("integer", [True, False])
def test_symmetric_half_matches_dense_unitaries(n, p, integer):
    model = cycle_with_chords(n, seed=n + p, integer=integer)
    rng = np.random.default_rng(p)
    gammas, betas = rng.uniform(-1.5, 1.5, p), rng.uniform(-1.5, 1.5, p)
    simulator = QaoaSimulator(model.energy_table())
    assert simulator.reduced
    expected = qaoa_state(model.energies().astype(float), gammas, betas)
    assert np.max(np.abs(simulator.state(gammas, betas) - expected)) < 1e-10


@pytest.mark.parametrize("cvar_alpha", [None, 0.3])
def test_symmetric_gradient_matches_full(cvar_alpha):
    model = maxcut(random_regular_graph(18, 3, seed=2))
    half = QaoaSimulator(model.energy_table())
    full = QaoaSimulator(model.energy_table(), use_symmetry=False)
    gammas, betas = [0.3, -0.5, 0.2], [0.4, 0.1, -0.7]
    value_half, gradient_half = half.value_and_gradient(gammas, betas, cvar_alpha)
    value_full, gradient_full = full.value_and_gradient(gammas, betas, cvar_alpha)
    assert half.reduced
    assert not full.reduced
    assert value_half == pytest.approx(value_full, abs=1e-10)
    assert np.max(np.abs(gradient_half - gradient_full)) < 1e-10


def test_symmetric_gradient_matches_finite_differences():
    model = cycle_with_chords(7, seed=1, integer=False)
    simulator = QaoaSimulator(model.energy_table())
    x = np.array([0.4, -0.2, 0.7, 0.3])
    _, gradient = simulator.value_and_gradient(x[:2], x[2:])
    step = 1e-5
    for i in range(4):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        numeric = (simulator.expectation(up[:2], up[2:])
                   - simulator.expectation(down[:2], down[2:])) / (2 * step)
        assert abs(gradient[i] - numeric) < 1e-6


def test_symmetric_samples_cover_both_halves():
    model = maxcut(random_regular_graph(10, 3, seed=4))
    simulator = QaoaSimulator(model.energy_table())
    state = simulator.evolve([-0.6], [0.4])
    samples = simulator.sample(state, 40_000, seed=3)
    full = np.abs(simulator.state([-0.6], [0.4])) ** 2
    observed = np.bincount(samples // 64, minlength=16) / 40_000
    expected = full.reshape(16, -1).sum(axis=1)
    # Each bin's frequency has a standard deviation below 0.0025 at 4e4 draws.
    assert np.max(np.abs(observed - expected)) < 0.015


def test_asymmetric_table_is_not_reduced():
    model = QuboModel(np.zeros((4, 4)), np.array([1.0, 0, 0, 0]))
    assert not QaoaSimulator(model.energy_table()).reduced


@pytest.mark.parametrize(("n", "block_bits"), [(6, 2), (8, 3), (10, 4), (10, 6)])
def test_symmetric_slab_pairs_match_dense_unitaries(n, block_bits):
    model = cycle_with_chords(n, seed=n, integer=True)
    plan = kernels.make_plan(n - 1, block_bits=block_bits, group_bits=2)
    simulator = QaoaSimulator(model.energy_table(), plan=plan)
    gammas, betas = [0.7, -0.3, 1.1], [0.2, 0.9, -0.4]
    expected = qaoa_state(model.energies().astype(float), gammas, betas)
    assert simulator.plan.high_groups
    assert np.max(np.abs(simulator.state(gammas, betas) - expected)) < 1e-10
