"""Choice of a non-redundant set of at most `max_n` findings, posed as a QUBO and
solved by exact enumeration and, when asked, by the quantum engine's QAOA.

Energy = -sum_i r_i x_i + sum_{i<j} R_ij min(r_i, r_j) x_i x_j
         + A (sum_i x_i + sum_k w_k s_k - max_n)^2,
with r the relevance, R the redundancy in [0, 1] and slack bits s_k of weights w_k
(1, 2, 4, ..., summing to max_n) that turn "at most max_n" into an equality. Two
fully redundant findings together score no more than the better one alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qml_cli.core.insights.finding import Finding
from qml_cli.core.logs import get_logger

log = get_logger("insights.selection")

# At most this many findings enter the QUBO (the most relevant), so that with the
# slack bits the state vector stays at 2^15 amplitudes or fewer.
MAX_CANDIDATES = 12
PAIR_REDUNDANCY = {
    frozenset(("trend", "prediction")): 0.4,
    frozenset(("trend", "changepoint")): 0.3,
    frozenset(("seasonality", "optimization")): 0.3,
    frozenset(("segmentation", "changepoint")): 0.4,
    frozenset(("segmentation", "seasonality")): 0.3,
}
SAME_TYPE_REDUNDANCY = {"anomaly": 0.3, "recommendation": 0.2, "correlation": 0.3}


@dataclass
class Selection:
    """The chosen keys (the exact optimum) and both solutions."""

    chosen: list[str]
    candidates: list[str]
    max_n: int
    exact: dict[str, Any]
    quantum: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "candidates": self.candidates,
            "max_n": self.max_n,
            "exact": self.exact,
            "quantum": self.quantum,
        }


def _index(finding: Finding) -> int | None:
    value = finding.evidence.get("index")
    return int(value) if isinstance(value, int | float) else None


def redundancy(first: Finding, second: Finding) -> float:
    """Return the redundancy of two findings, from 0 (distinct) to 1 (the same fact)."""
    if first.key in second.cites or second.key in first.cites:
        return 0.7
    near = (
        _index(first) is not None
        and _index(second) is not None
        and abs(_index(first) - _index(second)) <= 2
    )
    if near:
        return 0.9 if first.type == second.type else 0.6
    if first.type == second.type:
        if first.type == "recommendation" and first.title == second.title:
            return 0.5
        return SAME_TYPE_REDUNDANCY.get(first.type, 0.5)
    return PAIR_REDUNDANCY.get(frozenset((first.type, second.type)), 0.0)


def slack_weights(max_n: int) -> list[int]:
    """Return slack weights 1, 2, 4, ... whose sum is exactly max_n."""
    weights: list[int] = []
    while sum(weights) < max_n:
        weights.append(min(1 << len(weights), max_n - sum(weights)))
    return weights


def build_qubo(candidates: list[Finding], max_n: int):
    """Build the selection QUBO; the first len(candidates) variables are the
    findings and any further ones are slack bits."""
    from qml_cli.quantum.qubo import QuboModel

    relevance = np.array([f.relevance for f in candidates])
    n = len(candidates)
    slack = slack_weights(max_n) if n > max_n else []
    size = n + len(slack)
    quadratic = np.zeros((size, size))
    linear = np.zeros(size)
    linear[:n] = -relevance
    for i in range(n):
        for j in range(i + 1, n):
            pair = redundancy(candidates[i], candidates[j])
            quadratic[i, j] = pair * min(relevance[i], relevance[j])
    offset = 0.0
    if slack:
        # Adding a finding past max_n gains at most max(r) and costs A.
        penalty = 1.0 + float(relevance.max())
        coefficients = np.array([1.0] * n + [float(w) for w in slack])
        quadratic += penalty * 2.0 * np.triu(np.outer(coefficients, coefficients), 1)
        linear += penalty * (coefficients**2 - 2.0 * max_n * coefficients)
        offset = penalty * max_n * max_n
    return QuboModel(quadratic, linear, offset)


def solve_exact(model) -> tuple[list[int], float]:
    """Return the minimising bit string (variable order) and its energy by
    enumerating all 2^n energies."""
    from qml_cli.quantum.qubo import bits_of

    energies = model.energies()
    best = int(np.argmin(energies))
    return bits_of(best, model.num_variables), float(energies[best])


def solve_quantum(
    model, *, p: int, seed: int, max_iterations: int | None = None
) -> dict[str, Any]:
    """Solve with the quantum engine's QAOA at depth p; report `unavailable` when
    the engine's solver module is not installed."""
    try:
        from qml_cli.quantum.solve import solve_subset_qubo
    except ImportError:
        return {
            "status": "unavailable",
            "reason": "the QAOA solver (qml_cli.quantum.solve) is not installed",
        }
    report = solve_subset_qubo(
        model, use_quantum=True, p=p, seed=seed, max_iterations=max_iterations
    )
    if report.quantum is None:
        return {"status": report.quantum_status}
    qaoa = report.quantum
    return {
        "status": "ok",
        "bits": [int(bit) for bit in qaoa.best_bitstring],
        "energy": float(qaoa.best_energy),
        "p": qaoa.p,
        "approximation_ratio": qaoa.approximation_ratio,
        "optimum_probability": qaoa.optimum_probability,
        "best_is_optimal": qaoa.best_is_optimal,
        "iterations": qaoa.iterations,
        "wall_time_s": qaoa.wall_time_s,
    }


def select(
    findings: list[Finding],
    max_n: int = 5,
    *,
    use_quantum: bool = False,
    p: int = 2,
    seed: int = 0,
    max_iterations: int | None = None,
) -> Selection:
    """Choose at most `max_n` detected, confident findings by exact enumeration,
    and report QAOA's best measured choice beside it when `use_quantum`. The exact
    optimum is what is chosen, since QAOA cannot find a lower energy."""
    pool = [f for f in findings if f.detected and not f.low_confidence]
    pool.sort(key=lambda f: (-f.relevance, f.key))
    candidates = pool[:MAX_CANDIDATES]
    keys = [f.key for f in candidates]
    if max_n < 1 or not candidates:
        return Selection(
            [],
            keys,
            max_n,
            {"bits": [], "energy": 0.0, "chosen": []},
            {"status": "skipped"},
        )
    model = build_qubo(candidates, max_n)
    bits, energy = solve_exact(model)
    exact = {
        "bits": bits,
        "energy": energy,
        "variables": model.num_variables,
        "chosen": [k for k, b in zip(keys, bits, strict=False) if b],
    }
    selection = Selection(exact["chosen"], keys, max_n, exact, {"status": "disabled"})
    if use_quantum:
        selection.quantum = solve_quantum(
            model, p=p, seed=seed, max_iterations=max_iterations
        )
        quantum_bits = selection.quantum.get("bits")
        if quantum_bits is not None:
            selection.quantum["chosen"] = [
                k for k, b in zip(keys, quantum_bits, strict=False) if b
            ]
    log.info(
        "insights selected", extra={"operation": "insight_select", "success": True}
    )
    return selection
