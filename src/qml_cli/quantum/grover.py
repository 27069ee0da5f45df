"""Grover search: amplitude amplification of a marked set of basis states.

One iteration is the oracle (sign flip of every marked index) followed by the
diffusion `2|s><s| - I` about the uniform state |s>. With N = 2^n indices, M of
them marked and `theta = arcsin(sqrt(M / N))`, k iterations leave probability
`sin^2((2k + 1) theta)` on the marked set. Amplitudes stay real, so the state
vector is stored as float64 (float32 for the complex64 precision).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qml_cli.errors import InvalidInput
from qml_cli.quantum import statevector

Predicate = Callable[[np.ndarray], np.ndarray]


def marked_mask(num_qubits: int, marked: Sequence[int] | np.ndarray | Predicate
                ) -> np.ndarray:
    """Return the boolean mask of marked indices from indices or a predicate.

    A predicate receives the int64 array of all indices and returns a boolean
    array of the same shape. Raises `InvalidInput` for indices outside 0..N-1.
    """
    size = 1 << num_qubits
    if callable(marked):
        mask = np.asarray(marked(np.arange(size, dtype=np.int64)), dtype=bool)
        if mask.shape != (size,):
            raise InvalidInput(f"the marking predicate returned shape {mask.shape}, "
                               f"expected ({size},).")
        return mask
    indices = np.asarray(marked, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        bad = indices[(indices < 0) | (indices >= size)][0]
        raise InvalidInput(f"marked index {bad} is outside 0..{size - 1} for "
                           f"{num_qubits} qubits.")
    mask = np.zeros(size, dtype=bool)
    mask[indices] = True
    return mask


def rotation_angle(size: int, marked_count: int) -> float:
    """Return `theta = arcsin(sqrt(M / N))`; raise `InvalidInput` unless 0 < M <= N."""
    if not 0 < marked_count <= size:
        raise InvalidInput(f"the marked count must be between 1 and {size}, "
                           f"got {marked_count}.")
    return math.asin(math.sqrt(marked_count / size))


def success_probability(size: int, marked_count: int, iterations: int) -> float:
    """Return `sin^2((2k + 1) theta)`, the marked probability after k iterations."""
    theta = rotation_angle(size, marked_count)
    return math.sin((2 * iterations + 1) * theta) ** 2


def optimal_iterations(size: int, marked_count: int) -> int:
    """Return the count k >= 0 that maximises the success probability on its first rise.

    The first maximum of `sin^2((2k + 1) theta)` over real k is at
    `pi / (4 theta) - 1/2`, so the best integer is its floor or ceiling, whichever
    gives the higher probability. This can differ from
    `floor(pi / 4 * sqrt(N / M))`, which ignores the half and the arcsine. Later
    revivals at larger k are not considered because they cost more oracle calls.
    """
    theta = rotation_angle(size, marked_count)
    peak = math.pi / (4 * theta) - 0.5
    candidates = {max(0, math.floor(peak)), max(0, math.ceil(peak))}
    return max(sorted(candidates),
               key=lambda k: math.sin((2 * k + 1) * theta) ** 2)


def two_dimensional_amplitudes(size: int, marked_count: int, iterations: int
                               ) -> tuple[float, float]:
    """Return (amplitude of each marked index, of each unmarked index) after k steps.

    A uniform start and a diagonal oracle keep the state in the span of the
    uniform marked and uniform unmarked states, so two numbers describe it
    exactly. This iterates the 2x2 map of oracle and diffusion.
    """
    rotation_angle(size, marked_count)
    marked = unmarked = 1 / math.sqrt(size)
    for _ in range(iterations):
        marked = -marked
        mean = (marked_count * marked + (size - marked_count) * unmarked) / size
        marked, unmarked = 2 * mean - marked, 2 * mean - unmarked
    return marked, unmarked


def grover_state(num_qubits: int, mask: np.ndarray, iterations: int,
                 dtype: str = "complex128", available: int | None = None
                 ) -> np.ndarray:
    """Return the full state vector after k Grover iterations on `mask`.

    Raises `ResourceLimit` when the state would not fit in memory.
    """
    real = np.dtype(statevector.resolve_dtype(dtype).char.lower())
    statevector.check_memory(num_qubits, real.itemsize + 1, "Grover search", available)
    size = 1 << num_qubits
    state = np.full(size, 1 / math.sqrt(size), dtype=real)
    for _ in range(iterations):
        np.negative(state, out=state, where=mask)
        mean = state.mean(dtype=np.float64)
        np.subtract(real.type(2 * mean), state, out=state)
    return state


@dataclass
class GroverResult:
    """Result of a Grover run: counts, success probability, a seeded measurement."""

    num_qubits: int
    marked_count: int
    iterations: int
    textbook_iterations: int
    success_probability: float
    textbook_success_probability: float
    measured_index: int
    measured_is_marked: bool
    oracle_calls: int
    method: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_known_count(num_qubits: int, mask: np.ndarray, seed: int = 0,
                       full_state: bool = False) -> GroverResult:
    """Run Grover with the optimal count for the known M and measure once.

    With `full_state` the measurement is drawn from the simulated state vector.
    Otherwise it is drawn from the exact two-dimensional form, which gives the
    same distribution at a cost independent of N.
    """
    size, count = 1 << num_qubits, int(mask.sum())
    k = optimal_iterations(size, count)
    textbook = math.floor(math.pi / 4 * math.sqrt(size / count))
    rng = np.random.default_rng(seed)
    if full_state:
        state = grover_state(num_qubits, mask, k)
        index = int(_draw_from_state(state, rng))
        method = "state vector"
    else:
        index = _draw_two_dimensional(size, mask, k, rng)
        method = "two-dimensional subspace"
    return GroverResult(
        num_qubits=num_qubits, marked_count=count, iterations=k,
        textbook_iterations=textbook,
        success_probability=success_probability(size, count, k),
        textbook_success_probability=success_probability(size, count, textbook),
        measured_index=index, measured_is_marked=bool(mask[index]),
        oracle_calls=k, method=method, seed=seed)


def _draw_from_state(state: np.ndarray, rng: np.random.Generator) -> int:
    cumulative = np.cumsum(state.astype(np.float64) ** 2)
    draw = rng.random() * cumulative[-1]
    return min(int(np.searchsorted(cumulative, draw, side="right")),
               state.shape[0] - 1)


def _draw_two_dimensional(size: int, mask: np.ndarray, iterations: int,
                          rng: np.random.Generator) -> int:
    count = int(mask.sum())
    hit = rng.random() < success_probability(size, count, iterations)
    if count == size:
        hit = True
    pool = np.flatnonzero(mask) if hit else np.flatnonzero(~mask)
    return int(pool[rng.integers(pool.shape[0])])


@dataclass
class UnknownCountResult:
    """Result of a randomised search for an unknown number of marked indices."""

    num_qubits: int
    found: bool
    index: int | None
    oracle_calls: int
    rounds: int
    budget: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_unknown_count(num_qubits: int, mask: np.ndarray, seed: int = 0,
                         growth: float = 6 / 5, budget: int | None = None
                         ) -> UnknownCountResult:
    """Search without knowing M (Boyer, Brassard, Hoyer and Tapp, 1998).

    Each round draws k uniformly from `0 .. ceil(m) - 1`, runs k iterations,
    measures and checks the result with one more oracle call; on a miss,
    `m <- min(growth * m, sqrt(N))`. The measurement is drawn exactly from the
    two-dimensional form for the true M, which the algorithm itself never reads.
    `budget` caps the oracle calls (default `10 * sqrt(N) + 10`), after which the
    search reports not found, as it must when nothing is marked.
    """
    if not 1 < growth < 4 / 3:
        raise InvalidInput(f"growth must be between 1 and 4/3, got {growth}.")
    size = 1 << num_qubits
    count = int(mask.sum())
    budget = int(10 * math.sqrt(size) + 10) if budget is None else budget
    rng = np.random.default_rng(seed)
    m, calls, rounds = 1.0, 0, 0
    while calls < budget:
        rounds += 1
        k = int(rng.integers(0, math.ceil(m)))
        calls += k + 1
        if count:
            index = _draw_two_dimensional(size, mask, k, rng)
        else:
            index = int(rng.integers(size))
        if mask[index]:
            return UnknownCountResult(num_qubits, True, index, calls, rounds, budget,
                                      seed)
        m = min(growth * m, math.sqrt(size))
    return UnknownCountResult(num_qubits, False, None, calls, rounds, budget, seed)


def classical_scan(mask: np.ndarray) -> dict[str, Any]:
    """Scan indices in order: oracle calls to the first marked index, and the
    expected calls `(N + 1) / (M + 1)` of a scan in uniformly random order."""
    hits = np.flatnonzero(mask)
    size, count = mask.shape[0], hits.shape[0]
    first = int(hits[0]) if count else None
    return {"solver": "classical scan", "found": bool(count), "index": first,
            "oracle_calls": first + 1 if count else size,
            "expected_calls_random_order": (size + 1) / (count + 1)}
