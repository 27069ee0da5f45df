"""State vectors of 2^n amplitudes: dtypes, the memory check, frames and sampling.

Amplitude `psi[x]` belongs to the basis state whose bit i is qubit i (variable i).
"""

from __future__ import annotations

import os

import numpy as np

from qml_cli.errors import ResourceLimit

DTYPES = {"complex128": np.complex128, "complex64": np.complex64}
# Beyond this many qubits even the index arithmetic of a table needs care; the
# memory check stops far earlier on any ordinary machine.
MAX_QUBITS = 40


def resolve_dtype(name: str | np.dtype | type) -> np.dtype:
    """Return the complex dtype named `complex128` or `complex64`.

    Raises `InvalidInput` for any other name.
    """
    from qml_cli.errors import InvalidInput

    key = np.dtype(name).name if not isinstance(name, str) else name
    if key not in DTYPES:
        raise InvalidInput(f"unsupported state dtype {key!r}.",
                           hint="Use complex128 or complex64.")
    return np.dtype(DTYPES[key])


def available_memory() -> int:
    """Return the bytes of free physical memory, from `os.sysconf` page counts.

    Free pages exclude the page cache the kernel could reclaim, so this is a
    conservative figure. Platforms without these counts get 4 GiB.
    """
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30
    return int(pages) * int(page_size)


def required_bytes(num_qubits: int, bytes_per_index: float) -> int:
    """Return the bytes needed for `bytes_per_index` bytes of arrays per basis state."""
    return int(bytes_per_index * (1 << num_qubits))


def largest_fitting(bytes_per_index: float, available: int) -> int:
    """Return the largest qubit count whose arrays fit in `available` bytes."""
    n = 0
    while n < MAX_QUBITS and required_bytes(n + 1, bytes_per_index) <= available:
        n += 1
    return n


def check_memory(num_qubits: int, bytes_per_index: float, what: str,
                 available: int | None = None) -> None:
    """Raise `ResourceLimit` before allocating when the arrays would not fit.

    The message names the qubit count, the bytes needed, the bytes available and
    the largest qubit count that fits.
    """
    available = available_memory() if available is None else available
    needed = required_bytes(num_qubits, bytes_per_index)
    if num_qubits <= MAX_QUBITS and needed <= available:
        return
    fits = largest_fitting(bytes_per_index, available)
    raise ResourceLimit(
        f"{what} on {num_qubits} qubits needs {format_bytes(needed)} "
        f"({needed} bytes) but {format_bytes(available)} is available.",
        hint=f"The largest size that fits is {fits} qubits.")


def format_bytes(count: float) -> str:
    """Format a byte count with binary units (KiB, MiB, GiB, TiB)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def popcount_phases(num_qubits: int, unit: complex, dtype: np.dtype) -> np.ndarray:
    """Return `unit ** popcount(x)` for every x < 2^num_qubits, built by doubling."""
    out = np.empty(1 << num_qubits, dtype=dtype)
    out[0] = 1
    for j in range(num_qubits):
        size = 1 << j
        np.multiply(out[:size], dtype.type(unit), out=out[size:2 * size])
    return out


def apply_popcount_phase(state: np.ndarray, unit: complex, block_bits: int) -> None:
    """Multiply `state[x]` by `unit ** popcount(x)` in place, one block at a time.

    The index splits into a block number `h` and an offset `l` within a block of
    2^block_bits, so the factor is `unit**popcount(h) * unit**popcount(l)`.
    """
    num_qubits = state.shape[0].bit_length() - 1
    block_bits = min(block_bits, num_qubits)
    low = popcount_phases(block_bits, unit, state.dtype)
    blocks = state.reshape(-1, low.shape[0])
    high = popcount_phases(num_qubits - block_bits, unit, state.dtype)
    for h, factor in enumerate(high):
        np.multiply(blocks[h], low * factor, out=blocks[h])


def probabilities(state: np.ndarray) -> np.ndarray:
    """Return `|psi[x]|^2` as float64 for every basis state."""
    out = np.multiply(state.real, state.real, dtype=np.float64)
    out += np.multiply(state.imag, state.imag, dtype=np.float64)
    return out


def sample_indices(state: np.ndarray, shots: int, seed: int,
                   block_bits: int = 15) -> np.ndarray:
    """Draw `shots` basis indices from `|psi|^2` with a seeded generator.

    Draws a block of 2^block_bits indices by its total probability, then an
    index within the block, so no full-length probability array is allocated.
    """
    rng = np.random.default_rng(seed)
    size = min(state.shape[0], 1 << block_bits)
    blocks = state.reshape(-1, size)
    totals = np.array([probabilities(block).sum() for block in blocks])
    block_cumulative = np.cumsum(totals)
    draws = rng.random(shots) * block_cumulative[-1]
    chosen = np.minimum(np.searchsorted(block_cumulative, draws, side="right"),
                        blocks.shape[0] - 1)
    offsets = draws - (block_cumulative[chosen] - totals[chosen])
    samples = np.empty(shots, dtype=np.int64)
    for block in np.unique(chosen):
        rows = np.flatnonzero(chosen == block)
        cumulative = np.cumsum(probabilities(blocks[block]))
        within = np.searchsorted(cumulative, offsets[rows], side="right")
        samples[rows] = block * size + np.minimum(within, size - 1)
    return samples
