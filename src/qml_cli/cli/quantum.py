"""`qml quantum`: QAOA, MaxCut and Grover on the exact state-vector engine."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from qml_cli.cli.common import JsonOption
from qml_cli.cli.output import print_fields, print_json, say, warn
from qml_cli.errors import CheckFailed, InvalidInput, ResourceLimit

app = typer.Typer(help="Run QAOA and Grover search on the state-vector engine.",
                  no_args_is_help=True)

DISABLED = "quantum algorithms disabled (QUANTUM_ALGORITHMS_ENABLED=false)"

DepthOption = Annotated[int, typer.Option("--p", help="QAOA depth: layers of cost "
                                          "and mixer, 1 to 64.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the measurement "
                                         "sample and of any random choice.")]
ObjectiveOption = Annotated[str, typer.Option(
    "--objective", help="Optimise the energy expectation or its CVaR: "
    "expectation or cvar.")]
AlphaOption = Annotated[float, typer.Option(
    "--cvar-alpha", help="Fraction of the probability mass the CVaR averages, "
    "in (0, 1].")]
InitOption = Annotated[str, typer.Option(
    "--init", help="Angle start: interp (grow p from 1) or ramp (linear ramp at p).")]
DtypeOption = Annotated[str, typer.Option(
    "--dtype", help="State precision: complex128 or complex64.")]
ClassicalOption = Annotated[bool, typer.Option(
    "--allow-classical", help="When the state vector does not fit in memory, "
    "report the classical result instead of failing.")]


def _settings():
    from qml_cli.core.settings import get_settings

    return get_settings()


def _quantum_enabled(settings) -> bool:
    """Return QUANTUM_ALGORITHMS_ENABLED with a flag stored by `rollback --ml-only`
    taking precedence; without a reachable database the environment decides."""
    from qml_cli.core.db import session_scope
    from qml_cli.core.flags import effective_settings
    from qml_cli.errors import QmlError

    try:
        with session_scope(readonly=True) as session:
            return bool(effective_settings(session)["QUANTUM_ALGORITHMS_ENABLED"])
    except QmlError:
        return bool(settings.quantum_algorithms_enabled)


def _solve(model, p: int, seed: int, objective: str, cvar_alpha: float, init: str,
           dtype: str, allow_classical: bool) -> dict[str, Any]:
    from qml_cli.quantum.solve import solve_subset_qubo

    settings = _settings()
    enabled = _quantum_enabled(settings)
    options = dict(p=p, seed=seed, max_iterations=settings.qaoa_iterations,
                   min_confidence=settings.sqd_confidence, shots=1024, dtype=dtype,
                   objective=objective, cvar_alpha=cvar_alpha,
                   initialisation=init, quantum_limit=40)
    try:
        report = solve_subset_qubo(model, use_quantum=enabled, **options)
    except ResourceLimit as error:
        if not allow_classical:
            raise
        report = solve_subset_qubo(model, use_quantum=False, **options)
        report.quantum_status = f"skipped: {error}"
    document = report.to_dict()
    if not enabled:
        document["quantum_status"] = DISABLED
    return document


def _render(document: dict[str, Any], title: str) -> None:
    baseline = document["classical"]
    say(f"{title}: {document['num_variables']} variables.")
    print_fields("Classical baseline", {
        "solver": baseline["solver"],
        "bit string (x_0..x_n-1)": baseline["bitstring"],
        "energy": baseline["energy"],
        "optimal strings": baseline["optimum_multiplicity"],
        "time (s)": round(baseline["wall_time_s"], 4),
    })
    quantum = document["quantum"]
    if quantum is None:
        say(f"QAOA: {document['quantum_status']}.")
        return
    print_fields(f"QAOA p={quantum['p']} ({quantum['objective']}, "
                 f"{quantum['initialisation']} start, {quantum['dtype']})", {
        "best sampled bit string": quantum["best_bitstring"],
        "best sampled energy": quantum["best_energy"],
        "expected energy": round(quantum["expectation"], 6),
        "exact optimum energy": quantum["optimum_energy"],
        "optimum multiplicity": quantum["optimum_multiplicity"],
        "approximation ratio": round(quantum["approximation_ratio"], 6),
        "optimum probability": round(quantum["optimum_probability"], 6),
        "optimiser iterations": quantum["iterations"],
        "shots (seed)": f"{quantum['shots']} ({quantum['seed']})",
        "time (s)": round(quantum["wall_time_s"], 4),
    })
    say(f"Winner: {document['winner']}.")
    if document["low_confidence"]:
        warn(f"low confidence: the optimum probability "
             f"{quantum['optimum_probability']:.4f} is below SQD_CONFIDENCE="
             f"{document['min_confidence']}.")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text ({exc.reason}).",
                           hint="Save it as UTF-8.") from None
    except FileNotFoundError:
        raise InvalidInput(f"file not found: {path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path}: {error}.") from None


@app.command()
def qaoa(
    problem: Annotated[Path, typer.Argument(help="QUBO as JSON: Q or quadratic, "
                                            "c or linear, offset, n.")],
    p: DepthOption = 3,
    seed: SeedOption = 0,
    objective: ObjectiveOption = "expectation",
    cvar_alpha: AlphaOption = 0.25,
    init: InitOption = "interp",
    dtype: DtypeOption = "complex128",
    allow_classical: ClassicalOption = False,
    json_output: JsonOption = False,
) -> None:
    """Minimise a QUBO by QAOA beside exact enumeration."""
    from qml_cli.quantum.qubo import from_json

    model = from_json(_read_text(problem))
    document = _solve(model, p, seed, objective, cvar_alpha, init, dtype,
                      allow_classical)
    if json_output:
        print_json(document)
    else:
        _render(document, f"QUBO {problem.name}")


def read_edges(path: Path) -> list[tuple[int, int, float]]:
    """Read `u,v[,weight]` rows; a first row that is not numeric is a header."""
    rows = list(csv.reader(_read_text(path).splitlines()))
    edges = []
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row if cell.strip()]
        if not cells or cells[0].startswith("#"):
            continue
        try:
            values = [float(cell) for cell in cells]
        except ValueError:
            if number == 1:
                continue
            raise InvalidInput(f"{path}:{number}: expected numbers, got {row!r}.",
                               hint="Write each edge as u,v or u,v,weight.") from None
        if len(values) not in (2, 3) or values[0] != int(values[0]) \
                or values[1] != int(values[1]):
            raise InvalidInput(f"{path}:{number}: expected u,v or u,v,weight with "
                               f"integer nodes, got {row!r}.")
        weight = values[2] if len(values) == 3 else 1.0
        edges.append((int(values[0]), int(values[1]), weight))
    if not edges:
        raise InvalidInput(f"{path} has no edges.")
    return edges


@app.command()
def maxcut(
    edges: Annotated[Path, typer.Argument(help="CSV edge list: u,v or u,v,weight "
                                          "per line, nodes numbered from 0.")],
    p: DepthOption = 3,
    seed: SeedOption = 0,
    objective: ObjectiveOption = "expectation",
    cvar_alpha: AlphaOption = 0.25,
    init: InitOption = "interp",
    dtype: DtypeOption = "complex128",
    allow_classical: ClassicalOption = False,
    json_output: JsonOption = False,
) -> None:
    """Find a maximum cut of a weighted graph by QAOA beside exact enumeration."""
    from qml_cli.quantum.qubo import maxcut as build_maxcut

    graph = read_edges(edges)
    document = _solve(build_maxcut(graph), p, seed, objective, cvar_alpha, init,
                      dtype, allow_classical)
    document["edges"] = len(graph)
    document["cut_weight"] = -document["best_energy"]
    if json_output:
        print_json(document)
        return
    _render(document, f"MaxCut of {edges.name} ({len(graph)} edges)")
    say(f"Best cut weight: {document['cut_weight']:g}.")


def _marked_set(qubits: int, marked: str | None, fraction: float | None,
                seed: int):
    from qml_cli.quantum import grover

    if (marked is None) == (fraction is None):
        raise InvalidInput("give exactly one of --marked and --fraction.")
    if marked is not None:
        try:
            indices = [int(part) for part in marked.split(",") if part.strip()]
        except ValueError:
            raise InvalidInput(f"--marked must be comma-separated integers, got "
                               f"{marked!r}.") from None
        return grover.marked_mask(qubits, indices)
    if not 0 < fraction <= 1:
        raise InvalidInput(f"--fraction must be in (0, 1], got {fraction}.")
    import numpy as np

    size = 1 << qubits
    count = max(1, round(fraction * size))
    chosen = np.random.default_rng(seed).choice(size, size=count, replace=False)
    return grover.marked_mask(qubits, chosen)


@app.command("grover")
def grover_command(
    qubits: Annotated[int, typer.Option("--qubits", help="Search space of 2^N "
                                        "indices, N from 1 to 30.")],
    marked: Annotated[str | None, typer.Option(
        "--marked", help="Comma-separated marked indices, e.g. 3,17.")] = None,
    fraction: Annotated[float | None, typer.Option(
        "--fraction", help="Mark this fraction of the indices, chosen with --seed.")
    ] = None,
    unknown: Annotated[bool, typer.Option(
        "--unknown", help="Search as if the marked count were unknown (randomised "
        "schedule of Boyer, Brassard, Hoyer and Tapp).")] = False,
    method: Annotated[str, typer.Option(
        "--method", help="Simulation: state (full state vector), subspace (exact "
        "2-D form) or auto (state up to 24 qubits).")] = "auto",
    seed: SeedOption = 0,
    json_output: JsonOption = False,
) -> None:
    """Search marked indices with Grover's algorithm beside a classical scan."""
    from qml_cli.quantum import grover, statevector

    if not 1 <= qubits <= 30:
        raise InvalidInput(f"--qubits must be between 1 and 30, got {qubits}.")
    if method not in ("auto", "state", "subspace"):
        raise InvalidInput(f"unknown --method {method!r}.",
                           hint="Use auto, state or subspace.")
    statevector.check_memory(qubits, 1, "the marked set")
    mask = _marked_set(qubits, marked, fraction, seed)
    settings = _settings()
    document: dict[str, Any] = {"qubits": qubits, "marked_count": int(mask.sum()),
                                "classical": grover.classical_scan(mask)}
    if not _quantum_enabled(settings):
        document["quantum_status"] = DISABLED
        document["quantum"] = None
    elif qubits < settings.grover_threshold:
        document["quantum_status"] = (f"classical scan only: {qubits} qubits is "
                                      f"below GROVER_THRESHOLD="
                                      f"{settings.grover_threshold}")
        document["quantum"] = None
    elif unknown:
        document["quantum"] = grover.search_unknown_count(qubits, mask, seed).to_dict()
        document["quantum_status"] = "ran"
    else:
        full = method == "state" or (method == "auto" and qubits <= 24)
        result = grover.search_known_count(qubits, mask, seed, full_state=full)
        document["quantum"] = result.to_dict()
        document["quantum_status"] = "ran"
        document["low_confidence"] = \
            result.success_probability < settings.sqd_confidence
    if json_output:
        print_json(document)
    else:
        _render_grover(document)


def _render_grover(document: dict[str, Any]) -> None:
    scan = document["classical"]
    say(f"Search space 2^{document['qubits']}, {document['marked_count']} marked.")
    print_fields("Classical scan", {
        "first marked index": scan["index"],
        "oracle calls in index order": scan["oracle_calls"],
        "expected calls in random order": round(scan["expected_calls_random_order"], 2),
    })
    quantum = document["quantum"]
    if quantum is None:
        say(f"Grover: {document['quantum_status']}.")
        return
    if "rounds" in quantum:
        print_fields("Grover, unknown marked count", {
            "found": quantum["found"], "index": quantum["index"],
            "oracle calls": quantum["oracle_calls"], "rounds": quantum["rounds"],
            "seed": quantum["seed"]})
        return
    print_fields(f"Grover ({quantum['method']})", {
        "iterations": quantum["iterations"],
        "success probability": round(quantum["success_probability"], 6),
        "floor(pi/4 sqrt(N/M))": quantum["textbook_iterations"],
        "its success probability": round(quantum["textbook_success_probability"], 6),
        "measured index (seed)": f"{quantum['measured_index']} ({quantum['seed']})",
        "measured index is marked": quantum["measured_is_marked"],
    })
    if document.get("low_confidence"):
        warn("low confidence: the success probability is below SQD_CONFIDENCE.")


@app.command()
def selftest(json_output: JsonOption = False) -> None:
    """Check the engine against known results (exit 1 when a check fails)."""
    from qml_cli.quantum.selftest import run_selftest

    result = run_selftest()
    if json_output:
        print_json(result)
    else:
        from qml_cli.cli.output import print_table

        print_table("Quantum engine self-test", ["check", "ok", "measured", "time (s)"],
                    [[check["name"], "yes" if check["ok"] else "NO",
                      _short(check["measured"]), round(check["wall_time_s"], 3)]
                     for check in result["checks"]])
        say(f"{'passed' if result['ok'] else 'FAILED'} in "
            f"{result['wall_time_s']:.2f} s.")
    if not result["ok"]:
        failed = [check["name"] for check in result["checks"] if not check["ok"]]
        raise CheckFailed(f"quantum self-test failed: {', '.join(failed)}.")


def _short(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@app.command()
def info(json_output: JsonOption = False) -> None:
    """Show the largest problem sizes for this machine, dtypes and BLAS threads."""
    from qml_cli.quantum import kernels, statevector

    available = statevector.available_memory()
    document = {
        "available_memory_bytes": available,
        "default_dtype": "complex128",
        "dtypes": list(statevector.DTYPES),
        # Bytes per basis state: the state vectors, one byte of energy level and,
        # while the table is built, 7 bytes of int32 partial sums. A symmetric
        # problem such as MaxCut stores half of each state vector.
        "largest_qubits": {
            "qaoa_expectation_complex128": statevector.largest_fitting(17, available),
            "qaoa_expectation_complex64": statevector.largest_fitting(9, available),
            "maxcut_expectation_complex128": statevector.largest_fitting(9, available),
            "qaoa_optimisation_complex128": statevector.largest_fitting(48, available),
            "grover": statevector.largest_fitting(9, available),
        },
        "block_bytes": kernels.BLOCK_BYTES,
        "blas_threads": _blas_threads(),
    }
    if json_output:
        print_json(document)
        return
    print_fields("Quantum engine", {
        "free memory": statevector.format_bytes(available),
        "dtypes": "complex128 (default), complex64",
        **{f"largest n, {key.replace('_', ' ')}": value
           for key, value in document["largest_qubits"].items()},
        "cache block": statevector.format_bytes(kernels.BLOCK_BYTES),
        "BLAS threads": document["blas_threads"],
    })


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import os

        return os.environ.get("OPENBLAS_NUM_THREADS", "unknown (BLAS default)")
    pools = [f"{pool['internal_api']} {pool['num_threads']}"
             for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return ", ".join(pools) or "no BLAS library found"
