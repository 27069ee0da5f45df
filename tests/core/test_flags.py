"""Stored feature flags override the environment in every command group."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core.db import session_scope
from qml_cli.core.flags import set_flags

runner = CliRunner()


def test_stored_flag_disables_quantum_commands(sqlite_engine):
    with session_scope() as session:
        set_flags(session, {"QUANTUM_ALGORITHMS_ENABLED": False}, "rollback test")
    result = runner.invoke(
        app, ["quantum", "grover", "--qubits", "12", "--marked", "3", "--json"]
    )
    document = json.loads(result.stdout)
    assert result.exit_code == 0
    assert document.get("quantum") is None


def test_stored_flag_makes_consumption_free(sqlite_engine):
    runner.invoke(app, ["tenants", "create", "acme"])
    with session_scope() as session:
        set_flags(session, {"ML_CREDITS_ENABLED": False}, "rollback test")
    result = runner.invoke(
        app,
        [
            "credits",
            "consume",
            "acme",
            "5",
            "--operation",
            "prediction",
            "--idempotency-key",
            "k",
            "--json",
        ],
    )
    assert json.loads(result.stdout)["charged"] == 0
