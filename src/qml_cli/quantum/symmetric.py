"""Half-size simulation of QAOA for energies symmetric under flipping every bit.

When `E(x) = E(~x)` for all x (MaxCut, and any QUBO without a linear term in the
Ising form), the QAOA state keeps `psi(x) = psi(~x)`, because `|+>^n`, the cost
phase and the mixer all commute with `X^n`. Storing only the amplitudes with the
top qubit 0 halves memory and work. The other qubits act on the stored half as
usual. For qubit n-1 the partner of a stored index l is `~l`, whose amplitude is
stored at `M - l` with `M = 2^(n-1) - 1`, so its mixer pairs l with `M - l`.

In the S frame of the n-1 stored qubits the top-qubit mixer is
`T(beta) = cos(beta) I + sin(beta) K` with `(K phi)(l) = kappa sigma(l) phi(M - l)`,
`kappa = (-i)^n` and `sigma(l) = (-1)^popcount(l)`. Because `K^2 = -I`, T is
`exp(beta K)`, and K is the generator used by the adjoint gradient.
"""

from __future__ import annotations

import numpy as np

from qml_cli.quantum.kernels import MixerPlan, PairHook
from qml_cli.quantum.qubo import EnergyTable
from qml_cli.quantum.statevector import popcount_phases

CHUNK_BITS = 14


def is_symmetric(table: EnergyTable) -> bool:
    """Tell whether `E(x) = E(~x)` for every x; `~x` is index `2^n - 1 - x`.

    Float tables are compared with a tolerance of 1e-12 of the energy range,
    because the doubling sum adds the terms of x and ~x in different orders.
    """
    if table.levels is not None:
        return bool(np.array_equal(table.levels, table.levels[::-1]))
    tolerance = 1e-12 * max(1.0, table.maximum - table.minimum)
    return bool(np.all(np.abs(table.values - table.values[::-1]) <= tolerance))


def half_table(table: EnergyTable) -> EnergyTable:
    """Return the energies of the indices with the top bit 0, as views."""
    half = 1 << (table.num_variables - 1)
    return EnergyTable(
        table.num_variables - 1, table.minimum, table.maximum,
        None if table.values is None else table.values[:half],
        None if table.levels is None else table.levels[:half])


def _kappa(num_qubits: int) -> complex:
    return (-1j) ** (num_qubits % 4)


def _pair_views(rows: np.ndarray, start: int, stop: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Return views of indices `start..stop` and of their partners `M - l`."""
    size = rows.shape[1]
    return rows[:, start:stop], rows[:, size - stop:size - start][:, ::-1]


def _signs(start: int, count: int, low: np.ndarray) -> np.ndarray:
    """Return `(-1)^popcount(l)` for `l = start .. start + count - 1`."""
    offset = -1.0 if bin(start).count("1") % 2 else 1.0
    return low[:count] * offset


def rotate_top(rows: np.ndarray, beta: float, num_qubits: int) -> None:
    """Apply `T(beta)` of the top qubit in place to each row (a stored half)."""
    size = rows.shape[1]
    chunk = min(size // 2, 1 << CHUNK_BITS)
    low = popcount_phases(chunk.bit_length() - 1, -1, np.dtype(np.float64))
    c, s = np.cos(beta), np.sin(beta)
    kappa = _kappa(num_qubits)
    mirror = -1.0 if (num_qubits - 1) % 2 else 1.0
    for start in range(0, size // 2, chunk):
        first, second = _pair_views(rows, start, start + chunk)
        weights = (s * kappa) * _signs(start, chunk, low)
        saved = first.copy()
        first *= c
        first += weights * second
        second *= c
        second += (mirror * weights) * saved


def slab_rotation(beta: float, num_qubits: int, plan: MixerPlan, vectors: int,
                  dtype: np.dtype) -> PairHook:
    """Return the `_mix_high` pair hook that applies `T(beta)` to a slab pair.

    In the stack of a slab (columns c0 .. c0+w) and its mirror slab, element
    `[r, j]` of the slab pairs with element `[R-1-r, w-1-j]` of the mirror, and
    its sign is `(-1)^(popcount(r) + popcount(c0) + popcount(j))` because the
    row, c0 and j occupy disjoint bits of the stored index.
    """
    rows, columns = 1 << plan.high_bits, plan.slab_columns
    pattern = np.outer(popcount_phases(plan.high_bits, -1, np.dtype(np.float64)),
                       popcount_phases(columns.bit_length() - 1, -1,
                                       np.dtype(np.float64)))
    c, s = np.cos(beta), np.sin(beta)
    scale = s * _kappa(num_qubits)
    mirror = -1.0 if (num_qubits - 1) % 2 else 1.0
    partner = np.empty((vectors, rows, columns), dtype=dtype)
    saved = np.empty_like(partner)
    weights = np.empty((rows, columns), dtype=dtype)
    product = np.empty_like(partner)

    def rotate(stack: np.ndarray, start: int) -> None:
        first, second = stack[:vectors], stack[vectors:, ::-1, ::-1]
        sign = -1.0 if bin(start).count("1") % 2 else 1.0
        np.multiply(pattern, scale * sign, out=weights)
        np.copyto(partner, second)
        np.copyto(saved, first)
        first *= c
        np.multiply(weights, partner, out=product)
        first += product
        np.multiply(partner, c, out=partner)
        np.multiply(weights, saved, out=product)
        if mirror < 0:
            np.subtract(partner, product, out=partner)
        else:
            np.add(partner, product, out=partner)
        np.copyto(second, partner)

    return rotate


def top_overlap(left: np.ndarray, right: np.ndarray, num_qubits: int) -> float:
    """Return `Re <left|K|right>` over a stored half (not doubled)."""
    size = left.shape[0]
    chunk = min(size // 2, 1 << CHUNK_BITS)
    low = popcount_phases(chunk.bit_length() - 1, -1, np.dtype(np.float64))
    kappa = _kappa(num_qubits)
    mirror = -1.0 if (num_qubits - 1) % 2 else 1.0
    total = 0.0
    rows_left, rows_right = left.reshape(1, -1), right.reshape(1, -1)
    for start in range(0, size // 2, chunk):
        left_a, left_b = _pair_views(rows_left, start, start + chunk)
        right_a, right_b = _pair_views(rows_right, start, start + chunk)
        signs = _signs(start, chunk, low)
        terms = np.conj(left_a[0]) * right_b[0]
        terms += mirror * np.conj(left_b[0]) * right_a[0]
        total += float((kappa * (signs @ terms)).real)
    return total


def expand(half: np.ndarray) -> np.ndarray:
    """Return the full state from the stored half of a symmetric state (psi frame)."""
    return np.concatenate([half, half[::-1]])
