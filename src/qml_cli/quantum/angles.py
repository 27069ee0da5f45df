"""QAOA angle schedules: linear ramp, INTERP growth and published fixed angles.

Angles follow the convention of `simulator`: `U_C = exp(-i gamma E)` with E the
energy being minimised, `U_M = exp(-i beta sum_j X_j)`.
"""

from __future__ import annotations

import math

import numpy as np

from qml_cli.quantum.qubo import QuboModel

# Wurtz and Lykov, "The fixed angle conjecture for QAOA on regular MaxCut graphs",
# Phys. Rev. A 104, 052419 (2021), 3-regular table, mapped to the convention
# exp(-i gamma C_cut) exp(-i beta sum X) by gamma -> gamma + pi (mod 2 pi) and
# beta -> pi/2 - beta where the published values use the other branch. `ratio` is
# the expected cut fraction (cut edges / edges) on graphs of girth above 2p + 1.
FIXED_ANGLES_3_REGULAR: dict[int, dict[str, tuple[float, ...] | float]] = {
    1: {"gamma": (0.6154800227,), "beta": (0.3927001282,), "ratio": 0.69245005020442},
    2: {"gamma": (0.4878873536, 0.8977585872), "beta": (0.5547554568, 0.2922573968),
        "ratio": 0.7559063097485101},
    3: {"gamma": (0.41787832, 0.79214776, 0.93232948),
        "beta": (0.60032889, 0.45241986, 0.23511412), "ratio": 0.792315514902161},
}


def energy_scale(model: QuboModel) -> float:
    """Return the RMS local field of the Ising form of the model, in energy units.

    With `x_i = (1 - z_i) / 2` the QUBO becomes `sum h_i z_i + sum J_ij z_i z_j`;
    the local field of spin i is `sqrt(h_i^2 + sum_j J_ij^2)`. A gamma of order
    `1 / scale` then turns phases by about one radian per spin, which is where
    good QAOA angles lie (about 0.62 for unweighted MaxCut, whose scale is
    `sqrt(degree) / 2`).
    """
    W = model.couplings()
    coupling = W / 4.0
    field = -(model.linear() + W.sum(axis=1) / 2.0) / 2.0
    local = np.sqrt(field ** 2 + (coupling ** 2).sum(axis=1))
    scale = float(np.sqrt(np.mean(local ** 2)))
    return scale if scale > 0 else 1.0


def linear_ramp(p: int, scale: float = 1.0, step: float = 0.75
                ) -> tuple[np.ndarray, np.ndarray]:
    """Return ramp angles: |gamma| rises and beta falls linearly over the p layers.

    `gamma_l = -step * (l - 1/2) / p / scale` and `beta_l = step * (1 - (l - 1/2) / p)`
    for l = 1..p, a discretised annealing path from the mixer to the cost
    Hamiltonian. Gamma is negative because the energy is minimised: the
    textbook `exp(-i gamma C)` with gamma > 0 maximises C = -E.
    """
    if p < 1:
        raise ValueError("p must be at least 1")
    fractions = (np.arange(1, p + 1) - 0.5) / p
    return -step * fractions / scale, step * (1.0 - fractions)


def interp_next(gammas: np.ndarray, betas: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Return depth p+1 starting angles from the optimum at depth p (INTERP).

    Zhou, Wang, Choi, Pichler and Lukin, Phys. Rev. X 10, 021067 (2020):
    `x'_i = (i - 1) / p * x_{i-1} + (p - i + 1) / p * x_i` for i = 1..p+1, with
    `x_0 = x_{p+1} = 0`.
    """
    return _interp(np.asarray(gammas, float)), _interp(np.asarray(betas, float))


def _interp(values: np.ndarray) -> np.ndarray:
    p = values.shape[0]
    padded = np.concatenate([[0.0], values, [0.0]])
    i = np.arange(1, p + 2)
    return (i - 1) / p * padded[i - 1] + (p - i + 1) / p * padded[i]


def fixed_angles_3_regular(p: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (gammas, betas, cut fraction) of the 3-regular fixed angles.

    The gammas are for an energy equal to minus the cut, which is how `maxcut`
    builds the QUBO, so they are the published ones with the sign flipped.
    Raises `KeyError` for depths without a tabulated entry.
    """
    entry = FIXED_ANGLES_3_REGULAR[p]
    gammas = -np.array(entry["gamma"], dtype=float)
    return gammas, np.array(entry["beta"], dtype=float), float(entry["ratio"])


def wrap_angles(gammas: np.ndarray, betas: np.ndarray, integer_energies: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Reduce angles to one period where the circuit is periodic, for reports.

    Beta has period pi, because `exp(-i pi X)` is `-I`. Gamma has period 2 pi
    only when every energy is an integer, and is otherwise returned unchanged.
    """
    betas = np.mod(np.asarray(betas, float) + math.pi / 2, math.pi) - math.pi / 2
    gammas = np.asarray(gammas, float)
    if integer_energies:
        gammas = np.mod(gammas + math.pi, 2 * math.pi) - math.pi
    return gammas, betas
