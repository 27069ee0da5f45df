"""`qml rollback`: to a recorded release and back, to a backup, and ML flags."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import backup, migrate, releases, rollback
from qml_cli.core.db import session_scope
from qml_cli.core.flags import effective_settings, stored_flags
from qml_cli.core.models import Release, Tenant
from qml_cli.errors import InvalidInput, NotFound
from tests.ops.conftest import populate
from tests.ops.test_backup import checksums

runner = CliRunner()
KEPT = ("releases", "job_runs")


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def data_checksums(engine) -> dict:
    return {
        name: value for name, value in checksums(engine).items() if name not in KEPT
    }


def _flags(engine) -> dict:
    with session_scope(engine) as session:
        return stored_flags(session)


def test_ml_only_turns_features_off_and_undo_restores(engine):
    off = invoke("rollback", "--ml-only", "--yes")

    assert off.exit_code == 0
    assert "qml rollback --ml-only --undo" in off.output
    assert _flags(engine) == dict.fromkeys(rollback.ML_FLAGS, False)
    with session_scope(engine) as session:
        assert effective_settings(session)["ML_CREDITS_ENABLED"] is False

    back = invoke("rollback", "--ml-only", "--undo", "--yes")

    assert back.exit_code == 0
    assert _flags(engine) == {}


def test_ml_only_flag_makes_consumption_free(engine):
    invoke("tenants", "create", "acme", "--plan", "standard")
    invoke("rollback", "--ml-only", "--yes")

    result = invoke(
        "credits",
        "consume",
        "acme",
        "5",
        "--operation",
        "prediction",
        "--idempotency-key",
        "k1",
    )

    assert "at cost 0" in result.output


def test_ml_only_stops_due_predictions(engine):
    invoke("rollback", "--ml-only", "--yes")

    result = invoke("predict", "run", "--due", "--json")

    assert result.exit_code == 0
    assert json.loads(result.output)["enabled"] is False


def test_rollback_without_yes_off_terminal_changes_nothing(engine):
    result = invoke("rollback", "--ml-only")

    assert result.exit_code == 2
    assert "Rollback plan" in result.output
    assert _flags(engine) == {}
    assert backup.list_backups() == []


def test_dry_run_prints_plan_only(engine):
    result = invoke("rollback", "--ml-only", "--dry-run")

    assert result.exit_code == 0
    assert "1. Take a safety backup of the ML tables." in result.output
    assert "Dry run: nothing changed." in result.output
    assert _flags(engine) == {}


def test_rollback_to_version_and_back(engine):
    populate(engine, "acme")
    releases.record("1.0.0", engine=engine)
    state_one = data_checksums(engine)
    populate(engine, "globex")
    releases.record("2.0.0", engine=engine)
    state_two = data_checksums(engine)

    down = invoke("rollback", "--to-version", "1.0.0", "--restore", "--yes")

    assert down.exit_code == 0, down.output
    assert data_checksums(engine) == state_one
    with session_scope(engine) as session:
        assert session.scalars(select(Tenant.slug)).all() == ["acme"]
        assert session.scalars(select(Release.version).order_by(Release.id)).all() == [
            "1.0.0",
            "2.0.0",
        ]

    up = invoke("rollback", "--to-version", "2.0.0", "--restore", "--yes")

    assert up.exit_code == 0, up.output
    assert data_checksums(engine) == state_two


def test_rollback_to_older_revision_downgrades_and_back(sqlite_engine):
    populate(sqlite_engine)
    before = checksums(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        session.add(Release(version="0.9.0", schema_revision="006"))
    head = migrate.head_revision()

    plan = rollback.plan(to_version="0.9.0", engine=sqlite_engine)
    result = rollback.execute(plan, engine=sqlite_engine)

    assert [step["action"] for step in result["steps"]] == [
        "safety_backup",
        "downgrade",
    ]
    assert migrate.current_revision(sqlite_engine) == "006"
    assert "Downgrade the schema from" in plan["steps"][1]["description"]

    back = invoke("rollback", "--to-backup", result["safety_backup"], "--yes")

    assert back.exit_code == 0, back.output
    assert migrate.current_revision(sqlite_engine) == head
    after = checksums(sqlite_engine)
    assert {k: v for k, v in after.items() if k not in KEPT} == {
        k: v for k, v in before.items() if k not in KEPT
    }


def test_to_backup_restores_rows(engine):
    populate(engine)
    manifest = backup.create(engine=engine)
    before = data_checksums(engine)
    with session_scope(engine) as session:
        session.query(Tenant).delete()

    result = invoke("rollback", "--to-backup", manifest["id"], "--yes", "--json")

    assert result.exit_code == 0
    document = json.loads(result.output)
    assert [step["action"] for step in document["steps"]] == [
        "safety_backup",
        "restore",
    ]
    assert data_checksums(engine) == before


def test_unknown_release_lists_recorded_ones(sqlite_engine):
    releases.record("1.0.0", engine=sqlite_engine, take_backup=False)

    with pytest.raises(NotFound) as raised:
        rollback.plan(to_version="9.9.9", engine=sqlite_engine)

    assert "Recorded releases: 1.0.0" in str(raised.value)


def test_restore_without_release_backup_is_refused(sqlite_engine):
    releases.record("1.0.0", engine=sqlite_engine, take_backup=False)

    result = invoke("rollback", "--to-version", "1.0.0", "--restore", "--yes")

    assert result.exit_code == 1
    assert "has no backup to restore" in result.output


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"ml_only": True, "to_backup": "x"},
        {"ml_only": True, "restore": True},
        {"to_backup": "x", "undo": True},
    ],
)
def test_plan_rejects_inconsistent_options(sqlite_engine, arguments):
    with pytest.raises(InvalidInput):
        rollback.plan(engine=sqlite_engine, **arguments)
