"""QUBO models: minimise `x^T Q x + c^T x + offset` over bit strings `x` in {0,1}^n.

Index convention used everywhere in the engine: bit `i` of a basis index (value
`2**i`) is variable `i`, which is qubit `i` of the state vector. A bit string printed
for people lists `x_0 x_1 ... x_{n-1}` from left to right.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qml_cli.errors import InvalidInput

# An integer table whose range fits in uint16 is stored as level indices, so a QAOA
# cost layer looks its phase up in a table of at most this many entries.
MAX_INTEGER_LEVELS = 1 << 16


@dataclass(frozen=True)
class EnergyTable:
    """Energies of all 2^n bit strings in the form the simulator uses.

    For an integer-valued problem `levels` contains `energy - minimum` as the
    smallest unsigned integer type, so `energy = minimum + levels`. Otherwise
    `values` contains float64 energies and `levels` is None.
    """

    num_variables: int
    minimum: float
    maximum: float
    values: np.ndarray | None
    levels: np.ndarray | None

    @property
    def is_integer(self) -> bool:
        return self.levels is not None

    @property
    def level_count(self) -> int:
        """Number of energy levels `maximum - minimum + 1` of an integer table."""
        return int(self.maximum - self.minimum) + 1

    def as_float(self) -> np.ndarray:
        """Return the energies as float64 (allocates for an integer table)."""
        if self.values is not None:
            return self.values
        return self.levels.astype(np.float64) + self.minimum

    def optimum_multiplicity(self) -> int:
        """Count the bit strings whose energy equals the minimum."""
        if self.levels is not None:
            return int(np.count_nonzero(self.levels == 0))
        return int(np.count_nonzero(self.values <= self.minimum + _tolerance(self)))

    def optimal_indices(self, limit: int = 64) -> np.ndarray:
        """Return up to `limit` basis indices of minimum energy, in increasing order."""
        if self.levels is not None:
            hits = np.flatnonzero(self.levels == 0)
        else:
            hits = np.flatnonzero(self.values <= self.minimum + _tolerance(self))
        return hits[:limit]


def _tolerance(table: EnergyTable) -> float:
    return 1e-9 * max(1.0, abs(table.minimum), abs(table.maximum))


# Largest sum of absolute coefficients accepted: the QAOA angle heuristics and
# expectations square energies, so they must stay below about 1e154.
MAX_ENERGY_BOUND = 1e150


class QuboModel:
    """A QUBO `x^T Q x + c^T x + offset` over n binary variables.

    `Q` need not be symmetric or triangular: only `Q[i, j] + Q[j, i]` matters for
    `i != j`, and the diagonal acts as a linear term because `x_i^2 = x_i`.
    Raises `InvalidInput` for wrong shapes or non-finite coefficients.
    """

    def __init__(
        self, Q: np.ndarray, c: np.ndarray | None = None, offset: float = 0.0
    ) -> None:
        Q = np.asarray(Q, dtype=np.float64)
        if Q.ndim != 2 or Q.shape[0] != Q.shape[1]:
            raise InvalidInput(f"Q must be a square matrix, got shape {Q.shape}.")
        n = Q.shape[0]
        c = np.zeros(n) if c is None else np.asarray(c, dtype=np.float64)
        if c.shape != (n,):
            raise InvalidInput(
                f"c must have {n} entries to match Q, got shape {c.shape}."
            )
        if not (
            np.all(np.isfinite(Q)) and np.all(np.isfinite(c)) and math.isfinite(offset)
        ):
            raise InvalidInput(
                "QUBO coefficients must be finite numbers, not NaN or infinity."
            )
        with np.errstate(over="ignore"):
            bound = float(np.abs(Q).sum() + np.abs(c).sum() + abs(offset))
        if not bound < MAX_ENERGY_BOUND:
            raise InvalidInput(
                f"QUBO energies could reach {bound:.3g}, beyond the {MAX_ENERGY_BOUND:g}"
                " that the engine accepts.",
                hint="Scale the coefficients down; the optimum does not change.",
            )
        if n < 1:
            raise InvalidInput("a QUBO needs at least one variable.")
        self.Q = Q
        self.c = c
        self.offset = float(offset)

    @property
    def num_variables(self) -> int:
        return self.Q.shape[0]

    def couplings(self) -> np.ndarray:
        """Return the pair weights `W[i, j] = Q[i, j] + Q[j, i]`, diagonal zero."""
        W = self.Q + self.Q.T
        np.fill_diagonal(W, 0.0)
        return W

    def linear(self) -> np.ndarray:
        """Return the linear weights `c + diag(Q)` that act on single variables."""
        return self.c + np.diag(self.Q)

    def is_integer_valued(self) -> bool:
        """Tell whether every coefficient, and so every energy, is an integer."""
        parts = (self.Q, self.c, np.array([self.offset]))
        return all(np.all(part == np.round(part)) for part in parts)

    def energy(self, bits: Sequence[int] | np.ndarray) -> float:
        """Return the energy of one bit string given as `[x_0, ..., x_{n-1}]`."""
        x = np.asarray(bits, dtype=np.float64)
        if x.shape != (self.num_variables,):
            raise InvalidInput(f"expected {self.num_variables} bits, got {x.shape[0]}.")
        return float(x @ self.Q @ x + self.c @ x + self.offset)

    def energies(self) -> np.ndarray:
        """Return the energies of all 2^n bit strings, index bit i = variable i.

        Built by doubling in O(2^n) array operations: the table of the first k+1
        variables is the table of the first k, followed by it plus the terms of
        variable k. Integer-valued problems give int32 when every energy fits
        (the sum of absolute coefficients is below 2^31), else int64; others give
        float64. Raises `ResourceLimit` when the table would not fit in memory.
        """
        from qml_cli.quantum.statevector import check_memory

        dtype = self._table_dtype()
        n = self.num_variables
        # The table, half a table of partial sums, and the level copy made later.
        check_memory(n, 1.5 * dtype.itemsize + 1, "the energy table")
        linear = self.linear()
        weights = self.couplings()
        table = np.empty(1 << n, dtype=dtype)
        partial = np.empty(max(1, 1 << (n - 1)), dtype=dtype)
        table[0] = self.offset
        for k in range(n):
            size = 1 << k
            _fill_linear_table(weights[k, :k], partial[:size])
            np.add(table[:size], partial[:size], out=table[size : 2 * size])
            table[size : 2 * size] += dtype.type(linear[k])
        return table

    def _table_dtype(self) -> np.dtype:
        if not self.is_integer_valued():
            return np.dtype(np.float64)
        bound = (
            abs(self.offset)
            + np.abs(self.linear()).sum()
            + np.abs(np.triu(self.couplings(), 1)).sum()
        )
        if bound >= 2**62:  # integer coefficients too large for int64 sums
            return np.dtype(np.float64)
        return np.dtype(np.int32 if bound < 2**31 else np.int64)

    def energy_table(self) -> EnergyTable:
        """Return the energies as an `EnergyTable`, with level indices when integer."""
        energies = self.energies()
        minimum, maximum = energies.min(), energies.max()
        span = int(maximum) - int(minimum)
        if energies.dtype.kind == "i" and span < MAX_INTEGER_LEVELS:
            dtype = np.uint8 if span < 256 else np.uint16
            energies -= minimum
            levels = energies.astype(dtype)
            return EnergyTable(
                self.num_variables, float(minimum), float(maximum), None, levels
            )
        return EnergyTable(
            self.num_variables,
            float(minimum),
            float(maximum),
            energies.astype(np.float64, copy=False),
            None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.num_variables,
            "Q": self.Q.tolist(),
            "c": self.c.tolist(),
            "offset": self.offset,
        }


def _fill_linear_table(weights: np.ndarray, out: np.ndarray) -> None:
    """Fill `out[x] = sum_j weights[j] * bit_j(x)` for all x < 2^len(weights)."""
    out[0] = 0
    for j, weight in enumerate(weights):
        size = 1 << j
        np.add(out[:size], out.dtype.type(weight), out=out[size : 2 * size])


def bits_of(index: int, n: int) -> list[int]:
    """Return `[x_0, ..., x_{n-1}]` of a basis index (bit i = variable i)."""
    return [(index >> i) & 1 for i in range(n)]


def bitstring(index: int, n: int) -> str:
    """Return the bit string `x_0 x_1 ... x_{n-1}` of a basis index, as text."""
    return "".join(str(bit) for bit in bits_of(index, n))


def maxcut(edges: Iterable[Sequence[float]], num_nodes: int | None = None) -> QuboModel:
    """Build the MaxCut QUBO of a weighted graph: energy = -(weight of the cut).

    Each edge is `(u, v)` or `(u, v, weight)` with integer node ids from 0. The
    weight defaults to 1, and parallel edges add up. Cutting edge (u, v) means
    `x_u != x_v`, so the cut weight is `sum w (x_u + x_v - 2 x_u x_v)`.
    Raises `InvalidInput` for self-loops, negative ids or non-finite weights.
    """
    parsed = [_parse_edge(edge) for edge in edges]
    if not parsed:
        raise InvalidInput("a MaxCut graph needs at least one edge.")
    highest = max(max(u, v) for u, v, _ in parsed)
    n = highest + 1 if num_nodes is None else num_nodes
    if n <= highest:
        raise InvalidInput(f"edge node {highest} is outside 0..{n - 1}.")
    Q = np.zeros((n, n))
    c = np.zeros(n)
    for u, v, weight in parsed:
        low, high = min(u, v), max(u, v)
        Q[low, high] += 2.0 * weight
        c[u] -= weight
        c[v] -= weight
    return QuboModel(Q, c, 0.0)


def _parse_edge(edge: Sequence[float]) -> tuple[int, int, float]:
    if len(edge) not in (2, 3):
        raise InvalidInput(f"an edge is (u, v) or (u, v, weight), got {list(edge)!r}.")
    u, v = edge[0], edge[1]
    if int(u) != u or int(v) != v or u < 0 or v < 0:
        raise InvalidInput(f"edge nodes must be integers from 0, got {u!r} and {v!r}.")
    if u == v:
        raise InvalidInput(f"self-loop on node {int(u)} is not a valid MaxCut edge.")
    weight = float(edge[2]) if len(edge) == 3 else 1.0
    if not math.isfinite(weight):
        raise InvalidInput(
            f"edge ({int(u)}, {int(v)}) has a non-finite weight {weight}."
        )
    return int(u), int(v), weight


def cardinality_selection(
    scores: Sequence[float] | np.ndarray,
    redundancy: np.ndarray | None,
    k: int,
    penalty: float | None = None,
) -> QuboModel:
    """Build the QUBO that picks exactly k of n items: high score, low redundancy.

    Energy = -sum_i s_i x_i + sum_{i<j} R_ij x_i x_j + penalty * (sum_i x_i - k)^2,
    with `redundancy` a symmetric (n, n) matrix whose upper triangle is used. The
    default penalty, 1 + max_i (|s_i| + sum_j |R_ij|), exceeds what flipping one bit
    can gain, so every minimiser selects exactly k items.
    Raises `InvalidInput` when k is outside 0..n or shapes disagree.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    if s.ndim != 1 or n < 1:
        raise InvalidInput("scores must be a non-empty list of numbers.")
    R = np.zeros((n, n)) if redundancy is None else np.asarray(redundancy, np.float64)
    if R.shape != (n, n):
        raise InvalidInput(
            f"redundancy must be {n}x{n} to match the scores, got {R.shape}."
        )
    if not 0 <= k <= n:
        raise InvalidInput(f"k must be between 0 and {n}, got {k}.")
    pairs = np.triu(R, 1)
    if penalty is None:
        symmetric = pairs + pairs.T
        penalty = 1.0 + float(np.max(np.abs(s) + np.abs(symmetric).sum(axis=1)))
    if not penalty > 0:
        raise InvalidInput(f"penalty must be positive, got {penalty}.")
    Q = pairs + 2.0 * penalty * np.triu(np.ones((n, n)), 1)
    c = -s + penalty * (1 - 2 * k)
    return QuboModel(Q, c, penalty * k * k)


def from_json(document: str | Mapping[str, Any]) -> QuboModel:
    """Build a QUBO from JSON text or its parsed object.

    Accepted keys: `Q` (dense n x n matrix) or `quadratic` (list of `[i, j, w]`),
    `c` or `linear` (list of n numbers, or an object from index to weight),
    `offset` (number) and `n` (needed when only `quadratic` entries are given).
    Raises `InvalidInput` naming the key that is wrong.
    """
    data = _load_object(document)
    unknown = set(data) - {"n", "Q", "quadratic", "c", "linear", "offset", "name"}
    if unknown:
        raise InvalidInput(
            f"unknown QUBO keys: {', '.join(sorted(unknown))}.",
            hint="Use Q or quadratic, c or linear, offset and n.",
        )
    n = _json_size(data)
    Q = np.zeros((n, n))
    if "Q" in data:
        Q = _json_matrix(data["Q"], n)
    for entry in data.get("quadratic", []):
        if not isinstance(entry, list | tuple) or len(entry) != 3:
            raise InvalidInput(f"quadratic entries are [i, j, w], got {entry!r}.")
        i, j = _json_index(entry[0], n), _json_index(entry[1], n)
        Q[i, j] += _json_number(entry[2], "quadratic weight")
    c = _json_linear(data.get("c", data.get("linear")), n)
    offset = _json_number(data.get("offset", 0.0), "offset")
    return QuboModel(Q, c, offset)


def _load_object(document: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"invalid JSON at line {exc.lineno}: {exc.msg}."
            ) from None
    if not isinstance(document, Mapping):
        raise InvalidInput("a QUBO document must be a JSON object.")
    return document


def _json_size(data: Mapping[str, Any]) -> int:
    if "Q" in data:
        if not isinstance(data["Q"], list) or not data["Q"]:
            raise InvalidInput("Q must be a non-empty list of rows.")
        n = len(data["Q"])
    elif "n" in data:
        n = data["n"]
    elif isinstance(data.get("c", data.get("linear")), list):
        n = len(data.get("c", data.get("linear")))
    else:
        raise InvalidInput(
            "cannot tell the number of variables.", hint="Give Q, a list c, or n."
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput(f"n must be a positive integer, got {n!r}.")
    if "n" in data and data["n"] != n:
        raise InvalidInput(f"n is {data['n']!r} but Q has {n} rows.")
    return n


def _json_matrix(rows: Any, n: int) -> np.ndarray:
    if not all(isinstance(row, list) and len(row) == n for row in rows):
        raise InvalidInput(f"Q must have {n} rows of {n} numbers.")
    return np.array([[_json_number(value, "Q entry") for value in row] for row in rows])


def _json_linear(value: Any, n: int) -> np.ndarray:
    c = np.zeros(n)
    if value is None:
        return c
    if isinstance(value, list):
        if len(value) != n:
            raise InvalidInput(f"c must have {n} entries, got {len(value)}.")
        return np.array([_json_number(item, "linear weight") for item in value])
    if isinstance(value, Mapping):
        for key, weight in value.items():
            try:
                index = int(key)
            except ValueError:
                raise InvalidInput(f"linear key {key!r} is not an index.") from None
            c[_json_index(index, n)] += _json_number(weight, "linear weight")
        return c
    raise InvalidInput("c must be a list of numbers or an object from index to weight.")


def _json_index(value: Any, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise InvalidInput(f"variable index {value!r} is outside 0..{n - 1}.")
    return value


def _json_number(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field_name} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise InvalidInput(f"{field_name} must be finite, got {value!r}.")
    return float(value)
