"""Ensemble members chosen as a QUBO, by exact enumeration and QAOA on request.

For candidate models with scaled cross-validation errors e_i (one entry per origin
and step), the mean squared error of the average of a subset S of size k is
x^T G x / k^2 with x the 0/1 membership vector and G_ij = mean(e_i * e_j). Fixing
k with the penalty P * (sum(x) - k)^2 gives the QUBO x^T Q x + c^T x with
Q = G / k^2 + P * (J - I) and c = P * (1 - 2k) on the diagonal, up to a constant.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from qml_cli.core.logs import get_logger

log = get_logger("forecasting.ensemble")


def error_products(errors: np.ndarray) -> np.ndarray:
    """Return G (n, M, M) from scaled errors (n, M, K); NaN entries are skipped."""
    present = np.isfinite(errors).all(axis=1)
    clean = np.where(present[:, None, :], errors, 0.0)
    count = np.maximum(present.sum(axis=1), 1)[:, None, None]
    return np.einsum("imk,ijk->imj", clean, clean) / count


def member_qubo(
    products: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (Q, c, penalty) of the fixed-size member choice for one series."""
    models = products.shape[0]
    penalty = 2.0 * float(np.max(np.abs(products))) + 1.0
    quadratic = products / size**2 + penalty * (
        np.ones((models, models)) - np.eye(models)
    )
    linear = np.full(models, penalty * (1.0 - 2.0 * size))
    return quadratic, linear, penalty


def bit_strings(models: int) -> np.ndarray:
    """Return every 0/1 vector of length `models` as rows (2^models, models)."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=models)))


def qubo_energies(quadratic: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """Return x^T Q x + c^T x for every bit string x, batched over leading axes."""
    table = bit_strings(quadratic.shape[-1])
    quad = np.einsum("sm,...mj,sj->...s", table, quadratic, table)
    return quad + np.einsum("sm,...m->...s", table, linear)


def choose_members_exact(products: np.ndarray, size: int) -> np.ndarray:
    """Return the (n, M) 0/1 membership minimising each row's QUBO, by enumeration."""
    models = products.shape[-1]
    size = min(size, models)
    penalty = 2.0 * np.max(np.abs(products), axis=(1, 2)) + 1.0
    off_diagonal = np.ones((models, models)) - np.eye(models)
    quadratic = products / size**2 + penalty[:, None, None] * off_diagonal
    linear = penalty[:, None] * (1.0 - 2.0 * size) * np.ones(models)
    energies = qubo_energies(quadratic, linear)
    return bit_strings(models)[np.argmin(energies, axis=1)]


def choose_members(
    products: np.ndarray,
    names: list[str],
    size: int,
    use_quantum: bool = False,
    seed: int = 0,
) -> tuple[list[str], dict[str, Any]]:
    """Choose `size` members for one series; return the names and the report.

    Exact enumeration always runs. With `use_quantum`, QAOA from the quantum engine
    runs beside it and the lower-energy answer is used; the report carries both.
    """
    size = min(size, len(names))
    quadratic, linear, penalty = member_qubo(products, size)
    energies = qubo_energies(quadratic, linear)
    table = bit_strings(len(names))
    best = int(np.argmin(energies))
    exact = {"bits": table[best].astype(int).tolist(), "energy": float(energies[best])}
    report: dict[str, Any] = {
        "problem": "ensemble members",
        "candidates": list(names),
        "size": size,
        "penalty": penalty,
        "exact": exact,
        "used": "exact",
    }
    chosen = table[best]
    if use_quantum:
        report["qaoa"] = _run_qaoa(quadratic, linear, seed)
        qaoa_bits = report["qaoa"].get("bits")
        if qaoa_bits is not None and report["qaoa"]["energy"] < exact["energy"]:
            chosen = np.array(qaoa_bits, dtype=float)
            report["used"] = "qaoa"
    members = [name for name, bit in zip(names, chosen, strict=True) if bit]
    report["members"] = members
    return members, report


def _run_qaoa(quadratic: np.ndarray, linear: np.ndarray, seed: int) -> dict[str, Any]:
    """Solve the QUBO with the quantum engine's QAOA; report why when it cannot run."""
    try:
        from qml_cli.quantum.qubo import QuboModel
        from qml_cli.quantum.solve import solve_subset_qubo
    except ImportError as error:
        log.warning(
            "quantum solver not available; ensemble members chosen exactly",
            extra={
                "operation": "forecast_ensemble",
                "success": True,
                "error": str(error),
            },
        )
        return {"status": "unavailable", "bits": None, "reason": str(error)}
    from qml_cli.core.settings import get_settings

    report = solve_subset_qubo(
        QuboModel(quadratic, linear),
        use_quantum=True,
        p=2,
        seed=seed,
        max_iterations=get_settings().qaoa_iterations,
    )
    solved = report.to_dict()
    quantum = solved.get("quantum") or {}
    # Character i of the bit string is variable i, as in SolveReport.selected.
    bits = quantum.get("best_bitstring")
    return {
        "status": solved["quantum_status"],
        "bits": [int(bit) for bit in bits] if bits else None,
        "energy": quantum.get("best_energy"),
        "approximation_ratio": solved["approximation_ratio"],
        "optimum_probability": solved["optimum_probability"],
        "solver": solved,
    }
