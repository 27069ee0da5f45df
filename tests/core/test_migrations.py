"""Migrations: up, down to base and up again on SQLite and PostgreSQL, and the
revisions create exactly the schema of the models."""

from __future__ import annotations

from sqlalchemy import inspect

from qml_cli.core import migrate
from qml_cli.core.db import make_engine
from qml_cli.core.models import Base


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _schema_diff(engine) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        return compare_metadata(context, Base.metadata)


def test_revision_files_are_named_in_order():
    from pathlib import Path

    names = sorted(
        p.name for p in Path(migrate.MIGRATIONS_DIR, "versions").glob("*.py")
    )
    assert names[:5] == [
        "001_create_subscription_plans.py",
        "002_create_ml_credits.py",
        "003_create_ml_usage_history.py",
        "004_create_auto_predictions.py",
        "005_create_indexes.py",
    ]


def test_up_down_up_sqlite(sqlite_url):
    _up_down_up(make_engine(sqlite_url))


def test_up_down_up_postgres(pg_url):
    _up_down_up(make_engine(pg_url))


def _up_down_up(engine):
    migrate.upgrade("head", engine)
    assert _tables(engine) == set(Base.metadata.tables)
    assert _schema_diff(engine) == []
    migrate.downgrade("base", engine)
    assert _tables(engine) == set()
    assert migrate.current_revision(engine) is None
    migrate.upgrade("head", engine)
    assert _tables(engine) == set(Base.metadata.tables)
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_downgrade_to_004_drops_indexes(sqlite_url):
    engine = make_engine(sqlite_url)
    migrate.upgrade("head", engine)
    migrate.downgrade("004", engine)
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("auto_predictions")}
    assert "ix_auto_predictions_due" not in indexes
    assert migrate.current_revision(engine) == "004"


def test_unknown_revision_is_rejected(sqlite_url):
    import pytest

    from qml_cli.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown revision '999'"):
        migrate.upgrade("999", make_engine(sqlite_url))


def test_verify_reports_dropped_index(engine):
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_auto_predictions_due"))
    report = migrate.verify(engine)
    assert report["ok"] is False
    assert report["missing"] == ["index ix_auto_predictions_due on auto_predictions"]
