"""End-to-end checks of the basic commands through the Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from qml_cli.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_version_prints_version():
    from qml_cli import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"qml {__version__}"


def test_consume_replay_charges_once(engine):
    assert invoke("tenants", "create", "acme", "--plan", "standard").exit_code == 0
    first = invoke(
        "credits",
        "consume",
        "acme",
        "5",
        "--operation",
        "prediction",
        "--idempotency-key",
        "run-1",
        "--json",
    )
    second = invoke(
        "credits",
        "consume",
        "acme",
        "5",
        "--operation",
        "prediction",
        "--idempotency-key",
        "run-1",
        "--json",
    )
    assert json.loads(first.output)["charged"] == 5
    assert json.loads(second.output)["replayed"] is True
    status = json.loads(invoke("credits", "status", "acme", "--json").output)
    assert status["available"] == 25


def test_consume_overspend_exits_3(engine):
    invoke("tenants", "create", "acme", "--plan", "standard")
    result = invoke(
        "credits",
        "consume",
        "acme",
        "31",
        "--operation",
        "prediction",
        "--idempotency-key",
        "big",
    )
    assert result.exit_code == 3
    history = json.loads(invoke("credits", "history", "acme", "--json").output)
    assert [row["kind"] for row in history] == ["reset"]


def test_unknown_tenant_exits_2(engine):
    result = invoke("credits", "status", "nobody")
    assert result.exit_code == 2
    assert "tenant 'nobody' not found" in result.output
