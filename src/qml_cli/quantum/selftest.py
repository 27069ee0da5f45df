"""A few seconds of engine checks against results known independently of it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

from qml_cli.errors import ResourceLimit
from qml_cli.quantum import analytic, angles, grover, statevector
from qml_cli.quantum.qaoa import evaluate_angles
from qml_cli.quantum.qubo import QuboModel, cardinality_selection, maxcut
from qml_cli.quantum.simulator import QaoaSimulator
from qml_cli.quantum.solve import solve_subset_qubo

# The Heawood graph: 3-regular, 14 nodes, girth 6, so for p <= 2 the neighbourhood
# of every edge is a tree and the fixed-angle cut fraction is exact.
HEAWOOD_EDGES = [(i, (i + 1) % 14) for i in range(14)] + \
    [(i, (i + 5) % 14) for i in range(0, 14, 2)]
# Petersen graph: its maximum cut is 12 of 15 edges.
PETERSEN_EDGES = [(i, (i + 1) % 5) for i in range(5)] + \
    [(i, i + 5) for i in range(5)] + [(5 + i, 5 + (i + 2) % 5) for i in range(5)]
# Two triangles sharing edge (1, 2) plus a pendant path: triangles and mixed degrees.
TRIANGLE_EDGES = [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (3, 4), (4, 5)]


def _dense_qaoa_state(energies: np.ndarray, gammas, betas) -> np.ndarray:
    n = energies.shape[0].bit_length() - 1
    c, s = np.cos(betas), np.sin(betas)
    state = np.full(1 << n, (1 << n) ** -0.5, dtype=complex)
    for gamma, cb, sb in zip(gammas, c, s, strict=True):
        single = np.array([[cb, -1j * sb], [-1j * sb, cb]])
        state = reduce(np.kron, [single] * n) @ (np.exp(-1j * gamma * energies) * state)
    return state


def check_dense_state() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    model = QuboModel(rng.normal(size=(6, 6)), rng.normal(size=6), 0.25)
    gammas, betas = [0.4, -0.9], [0.7, 0.2]
    expected = _dense_qaoa_state(model.energies(), gammas, betas)
    error = float(np.max(np.abs(QaoaSimulator(model.energy_table()).state(
        gammas, betas) - expected)))
    return {"ok": error < 1e-10, "measured": error, "expected": "< 1e-10",
            "detail": "n=6 random QUBO, p=2, state against np.kron unitaries"}


def check_closed_form_p1() -> dict[str, Any]:
    gamma, beta = 0.83, 0.31
    simulator = QaoaSimulator(maxcut(TRIANGLE_EDGES).energy_table())
    probabilities = np.abs(simulator.state([-gamma], [beta])) ** 2
    index = np.arange(probabilities.shape[0])
    error = 0.0
    for u, v in TRIANGLE_EDGES:
        cut = ((index >> u) & 1) != ((index >> v) & 1)
        formula = analytic.maxcut_p1_edge_expectation(TRIANGLE_EDGES, u, v, gamma, beta)
        error = max(error, abs(float(probabilities[cut].sum()) - formula))
    return {"ok": error < 1e-10, "measured": error, "expected": "< 1e-10",
            "detail": "p=1 MaxCut edge expectations against the closed form"}


def check_fixed_angles() -> dict[str, Any]:
    gammas, betas, ratio = angles.fixed_angles_3_regular(2)
    result = evaluate_angles(maxcut(HEAWOOD_EDGES), gammas, betas)
    fraction = -result.expectation / len(HEAWOOD_EDGES)
    return {"ok": abs(fraction - ratio) < 1e-6, "measured": fraction,
            "expected": ratio, "detail": "Heawood graph, p=2 fixed angles"}


def check_gradient() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    simulator = QaoaSimulator(QuboModel(rng.integers(-3, 4, (7, 7)),
                                        rng.integers(-3, 4, 7)).energy_table())
    x = np.array([0.2, -0.5, 0.9, 0.4])
    _, gradient = simulator.value_and_gradient(x[:2], x[2:])
    step, error = 1e-5, 0.0
    for i in range(4):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        numeric = (simulator.expectation(up[:2], up[2:])
                   - simulator.expectation(down[:2], down[2:])) / (2 * step)
        error = max(error, abs(gradient[i] - numeric))
    return {"ok": error < 1e-6, "measured": error, "expected": "< 1e-6",
            "detail": "adjoint gradient against central differences"}


def check_grover() -> dict[str, Any]:
    mask = grover.marked_mask(10, [3, 17, 511])
    k = grover.optimal_iterations(1024, 3)
    state = grover.grover_state(10, mask, k)
    measured = float(np.sum(state[mask] ** 2))
    expected = math.sin((2 * k + 1) * math.asin(math.sqrt(3 / 1024))) ** 2
    marked, _ = grover.two_dimensional_amplitudes(1024, 3, k)
    error = max(abs(measured - expected), float(np.max(np.abs(state[mask] - marked))))
    return {"ok": error < 1e-12 and k == 14, "measured": measured, "expected": expected,
            "detail": f"N=1024, M=3, k={k}: state, closed form and 2-D path"}


def check_exact_optimum() -> dict[str, Any]:
    table = maxcut(PETERSEN_EDGES).energy_table()
    return {"ok": table.minimum == -12, "measured": -table.minimum, "expected": 12,
            "detail": "Petersen graph maximum cut by enumeration"}


def check_selection() -> dict[str, Any]:
    scores = [0.9, 0.8, 0.75, 0.3, 0.2]
    redundancy = np.zeros((5, 5))
    redundancy[0, 1] = redundancy[1, 0] = 1.0
    report = solve_subset_qubo(cardinality_selection(scores, redundancy, 2),
                               use_quantum=True, p=2, seed=1)
    return {"ok": report.classical.selected == [0, 2] and report.quantum is not None
            and report.quantum.optimum_probability > 1 / 32,
            "measured": {"selected": report.classical.selected,
                         "optimum_probability": report.optimum_probability},
            "expected": {"selected": [0, 2], "optimum_probability": "> 1/32"},
            "detail": "choose 2 of 5 with a redundant pair, exact and QAOA"}


def check_memory_limit() -> dict[str, Any]:
    try:
        statevector.check_memory(34, 16, "QAOA simulation", available=8 << 30)
    except ResourceLimit as error:
        text = str(error)
        ok = "34 qubits" in text and "29 qubits" in text
        return {"ok": ok, "measured": text, "expected": "names 34 and 29 qubits",
                "detail": "refusal message for a state beyond memory"}
    return {"ok": False, "measured": "no error", "expected": "ResourceLimit",
            "detail": "refusal message for a state beyond memory"}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "qaoa_dense_state": check_dense_state,
    "maxcut_p1_closed_form": check_closed_form_p1,
    "fixed_angles_heawood": check_fixed_angles,
    "adjoint_gradient": check_gradient,
    "grover_probability": check_grover,
    "exact_enumeration": check_exact_optimum,
    "subset_selection": check_selection,
    "memory_limit": check_memory_limit,
}


def run_selftest() -> dict[str, Any]:
    """Run every check; return `ok`, each check's result and the wall time.

    A check that raises is reported as failed with the error text, so the
    health command always gets a complete report.
    """
    started = time.perf_counter()
    results = []
    for name, check in CHECKS.items():
        begun = time.perf_counter()
        try:
            result = check()
        except Exception as error:  # reported as a failed check, never hidden
            result = {"ok": False, "measured": f"{type(error).__name__}: {error}",
                      "expected": None, "detail": "the check raised"}
        result["ok"] = bool(result["ok"])
        results.append({"name": name, **result,
                        "wall_time_s": time.perf_counter() - begun})
    return {"ok": all(item["ok"] for item in results), "checks": results,
            "wall_time_s": time.perf_counter() - started}
