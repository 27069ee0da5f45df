"""Shared fixtures: a migrated SQLite database per test and a throwaway PostgreSQL
database per test session (created and dropped here)."""

from __future__ import annotations

import os
import uuid

import pytest

PG_ADMIN_URL = os.environ.get(
    "QML_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Give each test its own QML_HOME and no inherited qml settings."""
    from qml_cli.core import settings

    monkeypatch.setenv("QML_HOME", str(tmp_path / "home"))
    for spec in settings.SPECS:
        monkeypatch.delenv(spec.name, raising=False)
    monkeypatch.delenv("QML_FAKE_NOW", raising=False)
    monkeypatch.chdir(tmp_path)
    settings.configure(None)
    yield
    settings.configure(None)


def _migrate(url: str):
    from qml_cli.core import migrate, seeds
    from qml_cli.core.db import make_engine, session_scope

    engine = make_engine(url)
    migrate.upgrade("head", engine)
    with session_scope(engine) as session:
        seeds.upsert_plans(session)
        seeds.seed_ml_config(session)
    return engine


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'qml.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def sqlite_engine(sqlite_url):
    """A migrated and seeded SQLite database, also set as DATABASE_URL."""
    return _migrate(sqlite_url)


def _pg_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3
        ):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_server_url():
    """Create a throwaway PostgreSQL database for the test session; drop it after."""
    import psycopg

    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    name = f"qml_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True
    ) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from qml_cli.core.db import make_engine

    make_engine.cache_clear()
    with psycopg.connect(
        "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True
    ) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server_url, monkeypatch):
    """An empty schema-less PostgreSQL database for one test, set as DATABASE_URL."""
    import psycopg

    from qml_cli.core.db import make_engine

    make_engine.cache_clear()
    dsn = pg_server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    monkeypatch.setenv("DATABASE_URL", pg_server_url)
    return pg_server_url


@pytest.fixture
def pg_engine(pg_url):
    """A migrated and seeded PostgreSQL database, also set as DATABASE_URL."""
    return _migrate(pg_url)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    """Run the test on SQLite and on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


@pytest.fixture
def redis_url():
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail("Redis at 127.0.0.1:6379 is required in CI")
        pytest.skip("Redis at 127.0.0.1:6379 is not running")
    client.flushdb()
    yield url
    client.flushdb()
