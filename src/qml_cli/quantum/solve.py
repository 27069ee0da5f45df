"""Subset selection as a QUBO: the classical result, and QAOA beside it on request.

Callers decide whether the quantum engine may run (settings are read by the CLI
and core, never here) and pass `use_quantum`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from qml_cli.quantum import classical
from qml_cli.quantum.qaoa import QaoaResult, run_qaoa
from qml_cli.quantum.qubo import QuboModel

# Up to this many variables the classical baseline enumerates all 2^n strings
# (2^22 float64 energies are 32 MiB); beyond it runs simulated annealing.
EXACT_LIMIT = 22
# QAOA beside the baseline runs up to this many variables, where one
# optimisation takes seconds rather than milliseconds.
QUANTUM_LIMIT = 20
DEFAULT_ITERATIONS = 100


@dataclass
class SolveReport:
    """The classical and (optionally) QAOA results of one QUBO, and the winner.

    `winner` is `classical`, `quantum` or `tie`, decided by the lower energy of
    the best bit string each found. `low_confidence` is true when QAOA ran and
    its optimum probability is below `min_confidence`.
    """

    num_variables: int
    classical: classical.ClassicalResult
    quantum: QaoaResult | None
    quantum_status: str
    winner: str
    best_bitstring: str
    best_energy: float
    selected: list[int]
    min_confidence: float
    low_confidence: bool | None
    wall_time_s: float

    @property
    def approximation_ratio(self) -> float | None:
        return None if self.quantum is None else self.quantum.approximation_ratio

    @property
    def optimum_probability(self) -> float | None:
        return None if self.quantum is None else self.quantum.optimum_probability

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_variables": self.num_variables,
            "classical": self.classical.to_dict(),
            "quantum": None if self.quantum is None else self.quantum.to_dict(),
            "quantum_status": self.quantum_status,
            "winner": self.winner,
            "best_bitstring": self.best_bitstring,
            "best_energy": self.best_energy,
            "selected": self.selected,
            "approximation_ratio": self.approximation_ratio,
            "optimum_probability": self.optimum_probability,
            "min_confidence": self.min_confidence,
            "low_confidence": self.low_confidence,
            "wall_time_s": self.wall_time_s,
        }


def solve_subset_qubo(model: QuboModel, *, use_quantum: bool, p: int = 2,
                      seed: int = 0, max_iterations: int | None = None,
                      min_confidence: float = 0.5, shots: int = 256,
                      dtype: str = "complex128", objective: str = "expectation",
                      cvar_alpha: float | None = None,
                      initialisation: str = "interp",
                      quantum_limit: int = QUANTUM_LIMIT) -> SolveReport:
    """Solve `model` classically and, with `use_quantum`, by QAOA at depth p.

    The classical result is exact enumeration up to `EXACT_LIMIT` variables, or
    whenever QAOA runs, and simulated annealing otherwise. QAOA runs when
    `use_quantum` is true and the model has at most `quantum_limit` variables.
    Otherwise `quantum_status` gives the reason it did not run. `max_iterations`
    bounds the optimiser per depth step.
    Raises `ResourceLimit` when the QAOA state vectors do not fit in memory.
    """
    started = time.perf_counter()
    n = model.num_variables
    # QAOA needs the full energy table anyway, so enumeration is then free.
    enumerate_all = n <= EXACT_LIMIT or (use_quantum and n <= quantum_limit)
    table = model.energy_table() if enumerate_all else None
    baseline = classical.solve_exact(table) if table is not None else \
        classical.simulated_annealing(model, seed=seed)

    quantum, status = None, "not requested"
    if use_quantum and n > quantum_limit:
        status = f"skipped: {n} variables exceed the QAOA limit of {quantum_limit}"
    elif use_quantum:
        quantum = run_qaoa(model, p, seed=seed, shots=shots, dtype=dtype, table=table,
                           max_iterations=max_iterations or DEFAULT_ITERATIONS,
                           objective=objective, cvar_alpha=cvar_alpha,
                           initialisation=initialisation)
        status = "ran"

    winner, bits, energy = _pick_winner(baseline, quantum, n)
    low_confidence = None if quantum is None else \
        quantum.optimum_probability < min_confidence
    return SolveReport(
        num_variables=n, classical=baseline, quantum=quantum, quantum_status=status,
        winner=winner, best_bitstring=bits, best_energy=energy,
        selected=[i for i, bit in enumerate(bits) if bit == "1"],
        min_confidence=min_confidence, low_confidence=low_confidence,
        wall_time_s=time.perf_counter() - started)


def _pick_winner(baseline: classical.ClassicalResult, quantum: QaoaResult | None,
                 n: int) -> tuple[str, str, float]:
    if quantum is None:
        return "classical", baseline.bitstring, baseline.energy
    tolerance = 1e-9 * max(1.0, abs(baseline.energy))
    if quantum.best_energy < baseline.energy - tolerance:
        return "quantum", quantum.best_bitstring, quantum.best_energy
    if quantum.best_energy <= baseline.energy + tolerance:
        return "tie", baseline.bitstring, baseline.energy
    return "classical", baseline.bitstring, baseline.energy

