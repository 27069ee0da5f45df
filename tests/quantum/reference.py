"""Independent dense-matrix references for the quantum engine tests."""

from __future__ import annotations

from functools import reduce

import numpy as np


def energies_by_loop(Q: np.ndarray, c: np.ndarray, offset: float) -> np.ndarray:
    """Energies of every bit string, one string at a time (bit i = variable i)."""
    n = Q.shape[0]
    table = np.empty(1 << n)
    for index in range(1 << n):
        x = np.array([(index >> i) & 1 for i in range(n)], dtype=float)
        table[index] = x @ Q @ x + c @ x + offset
    return table


def rx(beta: float) -> np.ndarray:
    """exp(-i beta X) as a 2x2 matrix."""
    c, s = np.cos(beta), np.sin(beta)
    return np.array([[c, -1j * s], [-1j * s, c]])


def mixer_unitary(n: int, beta: float) -> np.ndarray:
    """exp(-i beta sum_j X_j) as a dense 2^n x 2^n matrix built with np.kron.

    np.kron(A, B) puts A on the most significant bit, so qubit n-1 comes first.
    """
    return reduce(np.kron, [rx(beta)] * n)


def qaoa_state(energies: np.ndarray, gammas, betas) -> np.ndarray:
    """QAOA state from dense unitaries: U_M(beta) U_C(gamma) per layer on |+>^n."""
    n = energies.shape[0].bit_length() - 1
    state = np.full(1 << n, (1 << n) ** -0.5, dtype=complex)
    for gamma, beta in zip(gammas, betas, strict=True):
        cost = np.diag(np.exp(-1j * gamma * energies))
        state = mixer_unitary(n, beta) @ (cost @ state)
    return state


def grover_state(n: int, marked: np.ndarray, iterations: int) -> np.ndarray:
    """Grover state from dense matrices: (2|s><s| - I) O applied k times to |s>."""
    size = 1 << n
    uniform = np.full(size, size ** -0.5)
    oracle = np.diag(np.where(np.isin(np.arange(size), marked), -1.0, 1.0))
    diffusion = 2 * np.outer(uniform, uniform) - np.eye(size)
    state = uniform.copy()
    for _ in range(iterations):
        state = diffusion @ (oracle @ state)
    return state
