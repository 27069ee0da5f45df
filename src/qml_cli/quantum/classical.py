"""Classical baselines for QUBOs: exact enumeration and simulated annealing."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qml_cli.quantum.qubo import EnergyTable, QuboModel, bits_of, bitstring

EXACT_SOLVER = "exact enumeration"
ANNEALING_SOLVER = "simulated annealing with 1- and 2-flip descent"


@dataclass
class ClassicalResult:
    """The best bit string a classical solver found, `exact` when proven optimal."""

    solver: str
    exact: bool
    index: int | None
    bitstring: str
    selected: list[int]
    energy: float
    optimum_multiplicity: int | None
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def solve_exact(table: EnergyTable) -> ClassicalResult:
    """Return the first minimum-energy bit string of an enumerated table."""
    started = time.perf_counter()
    index = int(table.optimal_indices(limit=1)[0])
    n = table.num_variables
    bits = bits_of(index, n)
    return ClassicalResult(
        solver=EXACT_SOLVER, exact=True, index=index, bitstring=bitstring(index, n),
        selected=[i for i, bit in enumerate(bits) if bit], energy=table.minimum,
        optimum_multiplicity=table.optimum_multiplicity(),
        wall_time_s=time.perf_counter() - started)


def simulated_annealing(model: QuboModel, seed: int = 0, sweeps: int = 400,
                        replicas: int = 16) -> ClassicalResult:
    """Anneal `replicas` independent chains with Metropolis single-bit flips.

    The temperature falls geometrically from the largest to the smallest nonzero
    single-flip energy change of a random state. Each chain then descends by the
    best flip of one or two bits until none lowers its energy, so a penalised
    cardinality constraint can still swap items. Not proven optimal.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = model.num_variables
    W, h = model.couplings(), model.linear()
    x = rng.integers(0, 2, (replicas, n)).astype(np.float64)
    field = h + x @ W
    hot, cold = _temperature_range(field, x)
    for temperature in np.geomspace(hot, cold, sweeps):
        for i in range(n):
            delta = (1 - 2 * x[:, i]) * field[:, i]
            accept = (delta <= 0) | (rng.random(replicas) < np.exp(
                -np.maximum(delta, 0) / temperature))
            change = np.where(accept, 1 - 2 * x[:, i], 0.0)
            x[:, i] += change
            field += np.outer(change, W[i])
    x = _descend(x, W, h)
    energies = np.einsum("ri,ij,rj->r", x, np.triu(W, 1), x) + x @ h + model.offset
    best = int(np.argmin(energies))
    bits = x[best].astype(int).tolist()
    index = sum(bit << i for i, bit in enumerate(bits)) if n <= 62 else None
    return ClassicalResult(
        solver=ANNEALING_SOLVER, exact=False, index=index,
        bitstring="".join(map(str, bits)),
        selected=[i for i, bit in enumerate(bits) if bit],
        energy=float(energies[best]), optimum_multiplicity=None,
        wall_time_s=time.perf_counter() - started)


def _temperature_range(field: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    changes = np.abs((1 - 2 * x) * field)
    nonzero = changes[changes > 1e-12]
    if nonzero.size == 0:
        return 1.0, 1e-3
    hot = float(nonzero.max())
    cold = max(float(nonzero.min()) / 10, hot * 1e-4)
    return hot, cold


def _descend(x: np.ndarray, W: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Apply the best one- or two-bit flip of each chain while it lowers the energy.

    Flipping bits i and j changes the energy by `d_i + d_j + W_ij s_i s_j`, with
    `d` the single-flip changes and `s = 1 - 2x`.
    """
    n = x.shape[1]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    for _ in range(10 * n):
        signs = 1 - 2 * x
        single = signs * (h + x @ W)
        pairs = single[:, :, None] + single[:, None, :] + \
            W[None] * signs[:, :, None] * signs[:, None, :]
        pairs[:, ~upper] = np.inf
        np.einsum("rii->ri", pairs)[:] = single
        flat = pairs.reshape(x.shape[0], -1)
        best = np.argmin(flat, axis=1)
        improving = flat[np.arange(x.shape[0]), best] < -1e-12
        if not improving.any():
            break
        for row in np.flatnonzero(improving):
            i, j = divmod(int(best[row]), n)
            x[row, i] = 1 - x[row, i]
            if j != i:
                x[row, j] = 1 - x[row, j]
    return x

