"""`qml quantum` commands through the Typer app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qml_cli.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def problem(tmp_path):
    path = tmp_path / "problem.json"
    path.write_text(json.dumps({"n": 4, "quadratic": [[0, 1, 2], [1, 2, -3], [2, 3, 1]],
                                "linear": [1, -2, 0.5, -1], "offset": 0.5}))
    return path


@pytest.fixture
def square(tmp_path):
    """A 4-cycle with one heavy diagonal: the maximum cut weight is 5."""
    path = tmp_path / "edges.csv"
    path.write_text("u,v,weight\n0,1,1\n1,2,1\n2,3,1\n3,0,1\n0,2,3\n")
    return path


def test_qaoa_json_reports_both_results(problem):
    result = invoke("quantum", "qaoa", str(problem), "--p", "2", "--json")
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert document["classical"]["solver"] == "exact enumeration"
    assert document["quantum"]["p"] == 2
    assert document["quantum"]["optimum_energy"] == document["classical"]["energy"]
    assert document["quantum_status"] == "ran"


def test_qaoa_iterations_follow_setting(problem, monkeypatch):
    monkeypatch.setenv("QAOA_ITERATIONS", "1")
    document = json.loads(invoke("quantum", "qaoa", str(problem), "--p", "3",
                                 "--json").output)
    assert document["quantum"]["iterations"] <= 3


def test_qaoa_low_confidence_follows_setting(problem, monkeypatch):
    monkeypatch.setenv("SQD_CONFIDENCE", "1.0")
    document = json.loads(invoke("quantum", "qaoa", str(problem), "--json").output)
    assert document["low_confidence"] is True


def test_qaoa_cvar_objective_is_reported(problem):
    document = json.loads(invoke("quantum", "qaoa", str(problem), "--objective",
                                 "cvar", "--cvar-alpha", "0.2", "--json").output)
    assert document["quantum"]["objective"] == "cvar"
    assert document["quantum"]["cvar_alpha"] == 0.2


def test_disabled_engine_runs_only_classical(problem, monkeypatch):
    monkeypatch.setenv("QUANTUM_ALGORITHMS_ENABLED", "false")
    result = invoke("quantum", "qaoa", str(problem))
    assert result.exit_code == 0
    assert "QAOA: quantum algorithms disabled (QUANTUM_ALGORITHMS_ENABLED=false)." \
        in result.output
    assert "exact enumeration" in result.output


def test_maxcut_finds_heaviest_cut(square):
    result = invoke("quantum", "maxcut", str(square), "--p", "2", "--json")
    document = json.loads(result.output)
    assert result.exit_code == 0
    assert document["cut_weight"] == 5
    assert document["edges"] == 5


def test_maxcut_table_names_cut_weight(square):
    result = invoke("quantum", "maxcut", str(square), "--p", "1")
    assert result.exit_code == 0
    assert "Best cut weight: 5." in result.output


@pytest.mark.parametrize(("content", "message"), [
    ("0,1\n1,x\n", "expected numbers"),
    ("0,1,2,3\n", "u,v or u,v,weight"),
    ("0,0\n", "self-loop"),
    ("u,v\n", "has no edges"),
])
def test_maxcut_rejects_bad_csv(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = runner.invoke(app, ["quantum", "maxcut", str(path)])
    assert result.exit_code == 2
    assert message in result.output


def test_qaoa_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["quantum", "qaoa", str(tmp_path / "none.json")])
    assert result.exit_code == 2
    assert "file not found" in result.output


def test_qaoa_unknown_objective_exits_2(problem):
    result = runner.invoke(app, ["quantum", "qaoa", str(problem), "--objective", "x"])
    assert result.exit_code == 2
    assert "unknown objective" in result.output


def test_grover_reports_probability_and_scan():
    result = invoke("quantum", "grover", "--qubits", "12", "--marked", "3,17",
                    "--json")
    document = json.loads(result.output)
    assert result.exit_code == 0
    assert document["classical"]["index"] == 3
    assert document["quantum"]["iterations"] == 35
    assert document["quantum"]["success_probability"] > 0.99
    assert document["quantum"]["method"] == "state vector"


def test_grover_below_threshold_scans_classically():
    result = invoke("quantum", "grover", "--qubits", "6", "--marked", "5")
    assert result.exit_code == 0
    assert "classical scan only: 6 qubits is below GROVER_THRESHOLD=10" in result.output


def test_grover_fraction_marks_seeded_subset():
    first = json.loads(invoke("quantum", "grover", "--qubits", "10", "--fraction",
                              "0.01", "--seed", "4", "--json").output)
    second = json.loads(invoke("quantum", "grover", "--qubits", "10", "--fraction",
                               "0.01", "--seed", "4", "--json").output)
    assert first["marked_count"] == 10
    assert first["classical"]["index"] == second["classical"]["index"]


def test_grover_unknown_count_finds_marked():
    document = json.loads(invoke("quantum", "grover", "--qubits", "14", "--marked",
                                 "999", "--unknown", "--json").output)
    assert document["quantum"]["found"] is True
    assert document["quantum"]["index"] == 999


@pytest.mark.parametrize("args", [
    ["--qubits", "8"],
    ["--qubits", "8", "--marked", "1", "--fraction", "0.5"],
    ["--qubits", "8", "--marked", "256"],
    ["--qubits", "8", "--marked", "a,b"],
    ["--qubits", "0", "--marked", "1"],
])
def test_grover_rejects_bad_marked_sets(args):
    result = runner.invoke(app, ["quantum", "grover", *args])
    assert result.exit_code == 2


def test_selftest_json_passes():
    result = invoke("quantum", "selftest", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["ok"] is True


def test_info_lists_largest_sizes():
    document = json.loads(invoke("quantum", "info", "--json").output)
    assert document["default_dtype"] == "complex128"
    largest = document["largest_qubits"]
    assert largest["qaoa_expectation_complex64"] >= \
        largest["qaoa_expectation_complex128"]


def test_qaoa_beyond_memory_exits_2(problem, monkeypatch):
    from qml_cli.quantum import statevector

    monkeypatch.setattr(statevector, "available_memory", lambda: 256)
    result = runner.invoke(app, ["quantum", "qaoa", str(problem)])
    assert result.exit_code == 2
    assert "4 qubits needs" in result.output
    assert "largest size that fits" in result.output


def test_qaoa_allow_classical_reports_skip(problem, monkeypatch):
    from qml_cli.quantum import statevector

    monkeypatch.setattr(statevector, "available_memory", lambda: 256)
    result = invoke("quantum", "qaoa", str(problem), "--allow-classical", "--json")
    document = json.loads(result.output)
    assert result.exit_code == 0
    assert document["quantum"] is None
    assert document["quantum_status"].startswith("skipped: QAOA simulation on 4 qubits")
    assert document["classical"]["solver"] == "exact enumeration"
