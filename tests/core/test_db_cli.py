"""`qml db` exit codes: 0 at head, 1 behind, 4 unreachable."""

from __future__ import annotations

from typer.testing import CliRunner

from qml_cli.cli.app import app

runner = CliRunner()


def test_check_at_head_exits_0(sqlite_engine):
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 0
    assert "at head" in result.output


def test_check_empty_database_exits_1(sqlite_url):
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 1
    assert "Run: qml db migrate" in result.output


def test_check_unreachable_exits_4(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://qml:secret@127.0.0.1:1/none")
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 4
    assert "secret" not in result.output
    assert "***" in result.output


def test_verify_fresh_unseeded_lists_seeds(sqlite_url):
    runner.invoke(app, ["db", "migrate"])
    result = runner.invoke(app, ["db", "verify"])
    assert result.exit_code == 1
    assert "seeded plan standard" in result.output


def test_seed_plans_is_idempotent(sqlite_url):
    import json

    runner.invoke(app, ["db", "migrate"])
    first = json.loads(runner.invoke(app, ["seed", "plans", "--json"]).output)
    second = json.loads(runner.invoke(app, ["seed", "plans", "--json"]).output)
    assert set(first.values()) == {"created"}
    assert set(second.values()) == {"unchanged"}


def test_downgrade_without_yes_off_terminal_exits_2(sqlite_engine):
    result = runner.invoke(app, ["db", "downgrade", "--to", "base"])
    assert result.exit_code == 2
    assert "--yes" in result.output
