"""Benchmark the QAOA engine on MaxCut of random 3-regular graphs against Qiskit Aer.

Run: python bench/quantum.py [--sizes 16,20,22,24] [--depths 1,6] [--repeat 3]
     [--dtype complex128] [--no-symmetry] [--no-aer] [--write FILE]

For each size and depth it prints qml's time per expectation and per layer and
its peak traced memory against the state vector. Beside them it prints the time
of one elementwise pass `psi *= phase` over a state of the same size, which is
the memory-bandwidth baseline. When qiskit-aer is installed (the `bench` extra),
it also runs Aer's statevector simulator on the same circuit and checks that the
expectations agree. BLAS and Aer run on
one thread. Times are the shortest of `--repeat` runs, to damp noise from other
load on the machine.

MaxCut energies are symmetric under flipping every bit, so by default qml stores
half of the state (see `qml_cli.quantum.symmetric`); `--no-symmetry` measures the
full state. Peak memory is always divided by the full state vector's size.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from qml_cli.quantum import angles, kernels  # noqa: E402
from qml_cli.quantum.graphs import random_regular_graph  # noqa: E402
from qml_cli.quantum.qubo import maxcut  # noqa: E402
from qml_cli.quantum.simulator import QaoaSimulator  # noqa: E402

TARGET_SECONDS = 1.0
TARGET_LAYER_RATIO = 10.0
TARGET_MEMORY_RATIO = 3.0


def pin_threads() -> str:
    """Limit BLAS to one thread; return a description of the BLAS in use."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "BLAS threads from OPENBLAS_NUM_THREADS=" + \
            os.environ["OPENBLAS_NUM_THREADS"]
    threadpool_limits(1)
    pools = [f"{pool['internal_api']} {pool.get('version')} "
             f"({pool.get('architecture')}, {pool['num_threads']} thread)"
             for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return ", ".join(pools)


def angles_for(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the 3-regular fixed angles for p <= 3, else a linear ramp."""
    if p in angles.FIXED_ANGLES_3_REGULAR:
        gammas, betas, _ = angles.fixed_angles_3_regular(p)
        return gammas, betas
    return angles.linear_ramp(p, scale=np.sqrt(3) / 2)


def best_time(function, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def measure_qml(simulator: QaoaSimulator, gammas, betas, repeat: int
                ) -> dict[str, float]:
    """Time one expectation and one layer; trace the peak memory of one expectation."""
    expectation = simulator.expectation(gammas, betas)
    total = best_time(lambda: simulator.expectation(gammas, betas), repeat)
    state = simulator.evolve(gammas, betas)
    rows = state.reshape(1, -1)
    layer = best_time(lambda: kernels.apply_layer(
        rows, simulator.phases, gammas[0], betas[0], simulator.plan, simulator.work),
        repeat)
    state = rows = None
    tracemalloc.start()
    simulator.expectation(gammas, betas)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"expectation": expectation, "seconds": total, "layer_seconds": layer,
            "peak_bytes": float(peak)}


def measure_bandwidth(n: int, dtype: np.dtype, repeat: int) -> float:
    """Time `psi *= phase` for two arrays of 2^n amplitudes."""
    rng = np.random.default_rng(0)
    psi = np.full(1 << n, 1.0, dtype=dtype)
    phase = np.exp(1j * rng.random(1 << n)).astype(dtype)
    return best_time(lambda: np.multiply(psi, phase, out=psi), repeat)


def aer_circuit(edges, n: int, gammas, betas):
    """Build the same QAOA circuit in Qiskit: H, then RZZ per edge and RX per qubit.

    The engine's cost layer exp(-i gamma E) with E = -cut equals, up to a global
    phase, the product of exp(-i gamma/2 Z_u Z_v) = RZZ(gamma) over the edges; its
    mixer exp(-i beta X) is RX(2 beta).
    """
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(n)
    circuit.h(range(n))
    for gamma, beta in zip(gammas, betas, strict=True):
        for u, v in edges:
            circuit.rzz(float(gamma), u, v)
        circuit.rx(2 * float(beta), range(n))
    circuit.save_statevector()
    return circuit


def measure_aer(edges, n: int, gammas, betas, energies: np.ndarray, repeat: int,
                precision: str) -> dict[str, float]:
    """Run Aer's statevector method on one thread; return time and expectation."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    backend = AerSimulator(method="statevector", max_parallel_threads=1,
                           max_parallel_experiments=1, precision=precision,
                           fusion_enable=True)
    circuit = transpile(aer_circuit(edges, n, gammas, betas), backend)
    state = None

    def run() -> None:
        nonlocal state
        state = backend.run(circuit, shots=1).result().get_statevector()

    seconds = best_time(run, repeat)
    probabilities = np.abs(np.asarray(state)) ** 2
    return {"seconds": seconds, "expectation": float(probabilities @ energies)}


def run(sizes: list[int], depths: list[int], repeat: int, dtype: str,
        use_aer: bool, use_symmetry: bool) -> list[dict[str, object]]:
    rows = []
    aer_ready = use_aer and importlib.util.find_spec("qiskit_aer") is not None
    for n in sizes:
        edges = random_regular_graph(n, 3, seed=n)
        table = maxcut(edges).energy_table()
        simulator = QaoaSimulator(table, dtype=dtype, gradients=False,
                                  use_symmetry=use_symmetry)
        bandwidth = measure_bandwidth(n, simulator.dtype, repeat)
        for p in depths:
            gammas, betas = angles_for(p)
            qml = measure_qml(simulator, gammas, betas, repeat)
            row = {"n": n, "p": p, "bandwidth_seconds": bandwidth,
                   "state_bytes": float((1 << n) * simulator.dtype.itemsize), **qml}
            if aer_ready:
                aer = measure_aer(edges, n, gammas, betas, table.as_float(),
                                  1 if n >= 22 else repeat,
                                  "double" if dtype == "complex128" else "single")
                row["aer_seconds"] = aer["seconds"]
                row["aer_difference"] = abs(aer["expectation"] - qml["expectation"])
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


HEADER = ("| n | p | qml s/expectation | qml s/layer | layer / bandwidth pass | "
          "bandwidth pass s | peak / state | Aer s | Aer / qml | abs(E_aer - E_qml) |")


def format_row(row: dict[str, object]) -> str:
    aer = row.get("aer_seconds")
    cells = [
        str(row["n"]), str(row["p"]), f"{row['seconds']:.4f}",
        f"{row['layer_seconds']:.4f}",
        f"{row['layer_seconds'] / row['bandwidth_seconds']:.1f}",
        f"{row['bandwidth_seconds']:.4f}",
        f"{row['peak_bytes'] / row['state_bytes']:.2f}",
        "-" if aer is None else f"{aer:.3f}",
        "-" if aer is None else f"{aer / row['seconds']:.1f}",
        "-" if aer is None else f"{row['aer_difference']:.1e}",
    ]
    return "| " + " | ".join(cells) + " |"


def verdicts(rows: list[dict[str, object]]) -> list[str]:
    """Compare the measured rows with the targets; one line per target."""
    lines = []
    largest = max(rows, key=lambda row: (row["n"], row["p"]))
    lines.append(f"n={largest['n']}, p={largest['p']} expectation: "
                 f"{largest['seconds']:.3f} s (target < {TARGET_SECONDS} s)")
    for row in rows:
        if row["n"] >= 22 and row["p"] == max(r["p"] for r in rows):
            ratio = row["layer_seconds"] / row["bandwidth_seconds"]
            lines.append(f"n={row['n']} layer / bandwidth pass: {ratio:.1f} "
                         f"(target <= {TARGET_LAYER_RATIO:.0f})")
    memory = max(row["peak_bytes"] / row["state_bytes"] for row in rows)
    lines.append(f"largest peak memory / state vector: {memory:.2f} "
                 f"(target < {TARGET_MEMORY_RATIO:.0f})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,20,22,24")
    parser.add_argument("--depths", default="1,6")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dtype", default="complex128")
    parser.add_argument("--no-aer", action="store_true")
    parser.add_argument("--no-symmetry", action="store_true")
    parser.add_argument("--write", type=Path, help="also write the table here")
    args = parser.parse_args()

    blas = pin_threads()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    stored = "full state" if args.no_symmetry else "half state (bit-flip symmetry)"
    print(f"qml quantum benchmark: {args.dtype}, {stored}, {blas}; {machine}")
    print(HEADER)
    print("|" + "---|" * 10)
    rows = run([int(n) for n in args.sizes.split(",")],
               [int(p) for p in args.depths.split(",")], args.repeat, args.dtype,
               not args.no_aer, not args.no_symmetry)
    lines = verdicts(rows)
    for line in lines:
        print(line)
    if args.write:
        table = "\n".join([HEADER, "|" + "---|" * 10, *map(format_row, rows)])
        args.write.write_text(
            f"Measured with `python bench/quantum.py --dtype {args.dtype}`"
            f"{' --no-symmetry' if args.no_symmetry else ''}: {stored}, {blas}; "
            f"{machine}.\n\n{table}\n\n" + "\n".join(f"- {line}"
                                                          for line in lines) + "\n")


if __name__ == "__main__":
    main()
