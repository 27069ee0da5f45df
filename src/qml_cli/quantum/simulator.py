"""Exact state-vector simulation of QAOA circuits with adjoint gradients.

Convention. With energy table E (the QUBO, minimised) and angles
`gammas[0..p-1]`, `betas[0..p-1]`, the state is

    |psi> = U_M(beta_p) U_C(gamma_p) ... U_M(beta_1) U_C(gamma_1) |+>^n,
    U_C(gamma) = exp(-i gamma E),   U_M(beta) = exp(-i beta sum_j X_j),

so `U_M` is `RX(2 beta)` on every qubit in the `RX(t) = exp(-i t X / 2)` convention.
Qubit j is index bit j (variable j). For MaxCut the engine's energy is minus the
cut, so its gamma is minus the gamma of papers that write `exp(-i gamma C_cut)`.

Internally states are kept in the S frame of `kernels`. When the table is
symmetric under flipping every bit, only the half with qubit n-1 equal to 0 is
stored (see `symmetric`). `stored_weight` is then 2, because each stored
amplitude also gives the amplitude of the complementary bit string.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qml_cli.quantum import kernels, statevector, symmetric
from qml_cli.quantum.qubo import EnergyTable


class QaoaSimulator:
    """QAOA on one energy table; raises `ResourceLimit` when the state vectors it
    needs would not fit in `available` bytes (default: free memory)."""

    def __init__(self, table: EnergyTable, dtype: str = "complex128",
                 available: int | None = None, plan: kernels.MixerPlan | None = None,
                 gradients: bool = True, use_symmetry: bool = True) -> None:
        self.table = table
        self.n = table.num_variables
        self.dtype = statevector.resolve_dtype(dtype)
        # NOTE: without the bit-flip symmetry the full state is simulated, about
        # twice the work: 1.75 s for n = 24, p = 6 in bench/quantum.py on one
        # Zen 4 core, against the 1 s target that the symmetric half meets.
        self.reduced = use_symmetry and self.n >= 3 and symmetric.is_symmetric(table)
        self.stored = symmetric.half_table(table) if self.reduced else table
        self.stored_weight = 2.0 if self.reduced else 1.0
        stored_qubits = self.stored.num_variables
        # Gradients keep a second state and float64 energies and probabilities.
        if gradients:
            per_index = 2 * self.dtype.itemsize + 16
        else:
            per_index = self.dtype.itemsize + 1
        statevector.check_memory(self.n, per_index / self.stored_weight,
                                 "QAOA simulation", available)
        if plan is not None and plan.num_qubits != stored_qubits:
            raise ValueError(f"the plan is for {plan.num_qubits} qubits, the stored "
                             f"state has {stored_qubits}")
        self.plan = plan or kernels.make_plan(stored_qubits,
                                              itemsize=self.dtype.itemsize)
        self.work = kernels.Workspace(self.plan, self.dtype)
        self.pair_work = kernels.Workspace(self.plan, self.dtype, vectors=2) \
            if gradients else None
        self.phases = kernels.PhaseTable(self.stored, self.dtype)
        self._energy_levels = table.minimum + np.arange(table.level_count) \
            if table.is_integer else None
        self._initial_cache: tuple[np.ndarray, np.ndarray] | None = None
        self._energies_cache: np.ndarray | None = None
        self._order_cache: np.ndarray | None = None

    # -- evolution -------------------------------------------------------------

    def evolve(self, gammas: Sequence[float], betas: Sequence[float],
               out: np.ndarray | None = None) -> np.ndarray:
        """Return the stored final QAOA state in the S frame (see `kernels`).

        `out`, a vector of the stored size, receives the state when given.
        """
        _check_angles(gammas, betas)
        if out is None:
            out = np.empty(1 << self.stored.num_variables, dtype=self.dtype)
        rows = out.reshape(1, -1)
        initial = self._initial_pattern()
        for gamma, beta in zip(gammas, betas, strict=True):
            hook = self._pair_hook(beta, self.work)
            kernels.apply_layer(rows, self.phases, gamma, beta, self.plan, self.work,
                                initial=initial, pair_hook=hook)
            initial = None
            if self.reduced and hook is None:
                symmetric.rotate_top(rows, beta, self.n)
        return out

    def state(self, gammas: Sequence[float], betas: Sequence[float]) -> np.ndarray:
        """Return the full final QAOA state `|psi>` in the computational basis."""
        state = self.evolve(gammas, betas)
        statevector.apply_popcount_phase(state, -1j, self.plan.block_bits)
        return symmetric.expand(state) if self.reduced else state

    def _initial_pattern(self) -> tuple[np.ndarray, np.ndarray]:
        """Return `S^n |+>^n`, amplitudes `i^popcount(x) / sqrt(2^n)`, as the pattern
        of one block and a factor per block."""
        if self._initial_cache is None:
            low_bits = self.plan.block_bits
            high_bits = self.stored.num_variables - low_bits
            pattern = statevector.popcount_phases(low_bits, 1j, self.dtype)
            pattern *= self.dtype.type(1 / math.sqrt(1 << self.n))
            factors = statevector.popcount_phases(high_bits, 1j, self.dtype)
            self._initial_cache = (pattern, factors)
        return self._initial_cache

    def _pair_hook(self, beta: float, work: kernels.Workspace
                   ) -> kernels.PairHook | None:
        """Return the top-qubit rotation fused into the high slabs, when both exist."""
        if not (self.reduced and self.plan.high_groups):
            return None
        return symmetric.slab_rotation(beta, self.n, self.plan, work.vectors,
                                       self.dtype)

    def _mix(self, rows: np.ndarray, beta: float, work: kernels.Workspace) -> None:
        hook = self._pair_hook(beta, work)
        kernels.apply_mixer(rows, beta, self.plan, work, pair_hook=hook)
        if self.reduced and hook is None:
            symmetric.rotate_top(rows, beta, self.n)

    # -- measurements ----------------------------------------------------------

    def level_distribution(self, state: np.ndarray) -> np.ndarray:
        """Return the probability of each level `minimum + l` of an integer table."""
        size = self.work.phase.shape[0]
        counts = np.zeros(self.table.level_count)
        for start in range(0, state.shape[0], size):
            weights = statevector.probabilities(state[start:start + size])
            counts += np.bincount(self.stored.levels[start:start + size],
                                  weights=weights, minlength=counts.shape[0])
        return counts * self.stored_weight

    def expectation_of(self, state: np.ndarray) -> float:
        """Return `<psi|E|psi>` of a state from this simulator."""
        if self.table.is_integer:
            return float(self.level_distribution(state) @ self._energy_levels)
        size = self.work.phase.shape[0]
        total = 0.0
        for start in range(0, state.shape[0], size):
            weights = statevector.probabilities(state[start:start + size])
            total += float(weights @ self.stored.values[start:start + size])
        return total * self.stored_weight

    def optimum_probability(self, state: np.ndarray) -> float:
        """Return the probability of measuring a bit string of minimum energy."""
        if self.table.is_integer:
            return float(self.level_distribution(state)[0])
        weights = statevector.probabilities(state)
        tolerance = 1e-9 * max(1.0, abs(self.table.minimum), abs(self.table.maximum))
        optimal = self.stored.values <= self.table.minimum + tolerance
        return float(weights[optimal].sum()) * self.stored_weight

    def sample(self, state: np.ndarray, shots: int, seed: int) -> np.ndarray:
        """Draw `shots` full basis indices from the state, with a seeded generator.

        For a stored half each draw is reflected to `~x` with probability 1/2,
        which is exact because `psi(x) = psi(~x)`.
        """
        samples = statevector.sample_indices(state, shots, seed)
        if self.reduced:
            flips = np.random.default_rng([seed, 1]).random(shots) < 0.5
            samples = np.where(flips, (1 << self.n) - 1 - samples, samples)
        return samples

    def expectation(self, gammas: Sequence[float], betas: Sequence[float]) -> float:
        """Return the energy expectation `<psi(gamma, beta)|E|psi(gamma, beta)>`."""
        return self.expectation_of(self.evolve(gammas, betas))

    # -- objectives with gradients ---------------------------------------------

    def objective_weights(self, state: np.ndarray, cvar_alpha: float | None
                          ) -> tuple[float, float, np.ndarray]:
        """Return (value, constant, per-index weights) of the objective.

        The objective is `constant + sum_x p(x) w(x)`. For the expectation `w = E`
        and the constant is 0. For CVaR at level alpha (the mean energy of the
        lowest alpha of the probability mass, Barkoutsos et al., Quantum 4, 256,
        2020) `w = min(E - tau, 0) / alpha` and the constant is the alpha-quantile
        tau, whose derivative terms cancel, so `w` is also the adjoint observable.
        """
        energies = self._stored_energies()
        if cvar_alpha is None:
            return self.expectation_of(state), 0.0, energies
        weights = statevector.probabilities(state) * self.stored_weight
        order = self._energy_order()
        cumulative = np.cumsum(weights[order])
        position = int(np.searchsorted(cumulative, cvar_alpha * cumulative[-1]))
        tau = float(energies[order[min(position, order.shape[0] - 1)]])
        observable = np.minimum(energies - tau, 0.0) / cvar_alpha
        return tau + float(weights @ observable), tau, observable

    def value_and_gradient(self, gammas: Sequence[float], betas: Sequence[float],
                           cvar_alpha: float | None = None
                           ) -> tuple[float, np.ndarray]:
        """Return the objective and its exact gradient by the adjoint method.

        The gradient vector is `[d/dgamma_1..p, d/dbeta_1..p]`. One forward pass,
        then the layers are undone on the state and on `lambda = W psi` together:
        `df/dbeta_l = 2 Re <lambda|G|psi>` with the mixer generator G, and
        `df/dgamma_l = 2 sum_x E(x) Im(conj(lambda_x) psi_x)` right after the cost
        phase of layer l. Raises `ValueError` when built with `gradients=False`.
        """
        if self.pair_work is None:
            raise ValueError("this simulator was built with gradients=False")
        pair = np.empty((2, 1 << self.stored.num_variables), dtype=self.dtype)
        state, adjoint = pair[0], pair[1]
        self.evolve(gammas, betas, out=state)
        value, _, observable = self.objective_weights(state, cvar_alpha)
        np.multiply(state, observable, out=adjoint)
        p = len(gammas)
        gradient = np.zeros(2 * p)
        energies = self._stored_energies()
        scale = 2 * self.stored_weight
        for layer in range(p - 1, -1, -1):
            overlap = kernels.mixer_generator_overlap(adjoint, state, self.plan)
            if self.reduced:
                overlap += symmetric.top_overlap(adjoint, state, self.n)
            gradient[p + layer] = scale * overlap
            self._mix(pair, -betas[layer], self.pair_work)
            gradient[layer] = scale * _phase_overlap(adjoint, state, energies)
            if layer:
                kernels.apply_phase(pair, self.phases, -gammas[layer], self.pair_work)
        return value, gradient

    def _stored_energies(self) -> np.ndarray:
        if self._energies_cache is None:
            self._energies_cache = self.stored.as_float()
        return self._energies_cache

    def _energy_order(self) -> np.ndarray:
        if self._order_cache is None:
            self._order_cache = np.argsort(self._stored_energies(), kind="stable")
        return self._order_cache


def _phase_overlap(adjoint: np.ndarray, state: np.ndarray,
                   energies: np.ndarray) -> float:
    """Return `sum_x E(x) Im(conj(adjoint_x) state_x)`."""
    left = adjoint.view(adjoint.real.dtype).reshape(-1, 2)
    right = state.view(state.real.dtype).reshape(-1, 2)
    cross = left[:, 0] * right[:, 1] - left[:, 1] * right[:, 0]
    return float(cross @ energies)


def _check_angles(gammas: Sequence[float], betas: Sequence[float]) -> None:
    from qml_cli.errors import InvalidInput

    if len(gammas) != len(betas) or not len(gammas):
        raise InvalidInput(f"QAOA needs as many gammas as betas, at least one; got "
                           f"{len(gammas)} and {len(betas)}.")
    if not all(math.isfinite(value) for value in (*gammas, *betas)):
        raise InvalidInput("QAOA angles must be finite numbers.")
