"""QAOA on a QUBO: angle optimisation with SciPy and a report of what it found.

Angles, qubit order and signs are those of `simulator`. The optimiser is SciPy's
L-BFGS-B with exact adjoint gradients. Depth grows from 1 to p by INTERP, unless
a linear ramp at depth p is requested.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qml_cli.errors import InvalidInput
from qml_cli.quantum import angles
from qml_cli.quantum.qubo import EnergyTable, QuboModel, bitstring
from qml_cli.quantum.simulator import QaoaSimulator

OBJECTIVES = ("expectation", "cvar")
INITIALISATIONS = ("interp", "ramp")
DEFAULT_SHOTS = 1024
DEFAULT_CVAR_ALPHA = 0.25


@dataclass
class QaoaResult:
    """One QAOA run: angles, exact measures of the final state and a seeded sample.

    `approximation_ratio` is `(E_max - <E>) / (E_max - E_min)` of the final state,
    which for MaxCut equals expected cut / maximum cut; `sample_*` fields come
    from `shots` measurements drawn with `seed`.
    """

    num_qubits: int
    p: int
    objective: str
    cvar_alpha: float | None
    initialisation: str
    gammas: list[float]
    betas: list[float]
    expectation: float
    objective_value: float
    approximation_ratio: float
    optimum_probability: float
    optimum_energy: float
    optimum_multiplicity: int
    maximum_energy: float
    best_index: int
    best_bitstring: str
    best_energy: float
    best_is_optimal: bool
    shots: int
    seed: int
    iterations: int
    evaluations: int
    wall_time_s: float
    dtype: str
    depth_history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def approximation_ratio(value: float, table: EnergyTable) -> float:
    """Return `(E_max - value) / (E_max - E_min)`, or 1 for a constant table."""
    span = table.maximum - table.minimum
    if span <= 0:
        return 1.0
    # Rounding can carry an exact 0 or 1 a few ulps outside the interval.
    return float(min(1.0, max(0.0, (table.maximum - value) / span)))


def optimise_angles(simulator: QaoaSimulator, gammas: np.ndarray, betas: np.ndarray,
                    max_iterations: int, cvar_alpha: float | None
                    ) -> tuple[np.ndarray, np.ndarray, float, int, int]:
    """Minimise the objective from the given start; return angles, value, counts."""
    from scipy.optimize import minimize

    p = gammas.shape[0]

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        return simulator.value_and_gradient(x[:p], x[p:], cvar_alpha)

    start = np.concatenate([gammas, betas])
    result = minimize(objective, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iterations})
    return result.x[:p], result.x[p:], float(result.fun), int(result.nit), \
        int(result.nfev)


def run_qaoa(model: QuboModel, p: int = 3, *, seed: int = 0,
             objective: str = "expectation", cvar_alpha: float | None = None,
             max_iterations: int = 100, initialisation: str = "interp",
             shots: int = DEFAULT_SHOTS, dtype: str = "complex128",
             table: EnergyTable | None = None,
             available: int | None = None) -> QaoaResult:
    """Optimise QAOA angles at depth p for `model` and report the final state.

    `max_iterations` bounds the optimiser iterations of each depth step (INTERP
    runs one step per depth 1..p). Raises `InvalidInput` for bad options and
    `ResourceLimit` when the state vectors would not fit in memory.
    """
    _check_options(p, objective, cvar_alpha, max_iterations, initialisation, shots)
    started = time.perf_counter()
    table = model.energy_table() if table is None else table
    simulator = QaoaSimulator(table, dtype=dtype, available=available)
    alpha = (cvar_alpha or DEFAULT_CVAR_ALPHA) if objective == "cvar" else None

    scale = angles.energy_scale(model)
    depths = range(1, p + 1) if initialisation == "interp" else [p]
    gammas, betas = angles.linear_ramp(depths[0], scale)
    history: list[dict[str, float]] = []
    iterations = evaluations = 0
    for depth in depths:
        if depth > depths[0]:
            gammas, betas = angles.interp_next(gammas, betas)
        gammas, betas, value, nit, nfev = optimise_angles(
            simulator, gammas, betas, max_iterations, alpha)
        iterations += nit
        evaluations += nfev
        history.append({"p": depth, "objective_value": value, "iterations": nit})

    state = simulator.evolve(gammas, betas)
    result = _report(simulator, state, gammas, betas, seed, shots)
    gammas, betas = angles.wrap_angles(gammas, betas, table.is_integer)
    return QaoaResult(
        num_qubits=table.num_variables, p=p, objective=objective, cvar_alpha=alpha,
        initialisation=initialisation, gammas=[float(g) for g in gammas],
        betas=[float(b) for b in betas], objective_value=history[-1]["objective_value"],
        iterations=iterations, evaluations=evaluations,
        wall_time_s=time.perf_counter() - started, dtype=simulator.dtype.name,
        depth_history=history, shots=shots, seed=seed, **result)


def evaluate_angles(model: QuboModel, gammas: np.ndarray, betas: np.ndarray, *,
                    seed: int = 0, shots: int = DEFAULT_SHOTS,
                    dtype: str = "complex128") -> QaoaResult:
    """Report the QAOA state at given angles, without optimising them."""
    started = time.perf_counter()
    table = model.energy_table()
    simulator = QaoaSimulator(table, dtype=dtype, gradients=False)
    state = simulator.evolve(gammas, betas)
    result = _report(simulator, state, gammas, betas, seed, shots)
    return QaoaResult(
        num_qubits=table.num_variables, p=len(gammas), objective="expectation",
        cvar_alpha=None, initialisation="given", gammas=[float(g) for g in gammas],
        betas=[float(b) for b in betas], objective_value=result["expectation"],
        iterations=0, evaluations=1, wall_time_s=time.perf_counter() - started,
        dtype=simulator.dtype.name, shots=shots, seed=seed, **result)


def _report(simulator: QaoaSimulator, state: np.ndarray, gammas: np.ndarray,
            betas: np.ndarray, seed: int, shots: int) -> dict[str, Any]:
    table = simulator.table
    expectation = simulator.expectation_of(state)
    samples = simulator.sample(state, shots, seed)
    energies = table.as_float()[samples] if table.values is not None else \
        table.levels[samples].astype(np.float64) + table.minimum
    best = int(samples[int(np.argmin(energies))])
    best_energy = float(energies.min())
    return {
        "expectation": expectation,
        "approximation_ratio": approximation_ratio(expectation, table),
        "optimum_probability": min(1.0, simulator.optimum_probability(state)),
        "optimum_energy": table.minimum,
        "optimum_multiplicity": table.optimum_multiplicity(),
        "maximum_energy": table.maximum,
        "best_index": best,
        "best_bitstring": bitstring(best, table.num_variables),
        "best_energy": best_energy,
        "best_is_optimal": bool(best_energy <= table.minimum + 1e-9 * max(
            1.0, abs(table.minimum))),
    }


def _check_options(p: int, objective: str, cvar_alpha: float | None,
                   max_iterations: int, initialisation: str, shots: int) -> None:
    if not 1 <= p <= 64:
        raise InvalidInput(f"p must be between 1 and 64, got {p}.")
    if objective not in OBJECTIVES:
        raise InvalidInput(f"unknown objective {objective!r}.",
                           hint=f"Use one of {', '.join(OBJECTIVES)}.")
    if cvar_alpha is not None and not 0 < cvar_alpha <= 1:
        raise InvalidInput(f"CVaR alpha must be in (0, 1], got {cvar_alpha}.")
    if max_iterations < 1:
        raise InvalidInput(f"max_iterations must be at least 1, got {max_iterations}.")
    if initialisation not in INITIALISATIONS:
        raise InvalidInput(f"unknown initialisation {initialisation!r}.",
                           hint=f"Use one of {', '.join(INITIALISATIONS)}.")
    if shots < 1:
        raise InvalidInput(f"shots must be at least 1, got {shots}.")
