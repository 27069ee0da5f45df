"""Engines and sessions for SQLite (embedded default) and PostgreSQL (psycopg 3).

SQLite transactions start with BEGIN IMMEDIATE, so two writers queue on the database
lock instead of failing mid-transaction; PostgreSQL relies on row locks taken by the
callers (`SELECT ... FOR UPDATE`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from qml_cli.errors import CheckFailed, InvalidInput, LockHeld, ServiceUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000


def mask_url(url: str) -> str:
    """Return `url` with its password replaced by `***`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def normalise_url(url: str) -> str:
    """Map plain `postgresql://` URLs to the psycopg 3 driver."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 -- a malformed port or host raises here
    except (ArgumentError, ValueError):
        from qml_cli.core.logs import redact

        raise InvalidInput(
            f"invalid DATABASE_URL {redact(url)!r}.",
            hint="Use postgresql://user:pass@host/db or sqlite:///path.",
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(
            f"unsupported database {parsed.get_backend_name()!r} in DATABASE_URL.",
            hint="qml supports PostgreSQL and SQLite.",
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The driver's own transaction handling is off; BEGIN IMMEDIATE is issued below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # A read-only session takes no write lock; with WAL journaling it reads while a
    # writer holds the lock instead of waiting for it.
    if connection.get_execution_options().get("qml_readonly"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache(maxsize=8)
def make_engine(url: str) -> Engine:
    """Create (once per URL) the engine; the SQLite file's folder is created."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _check_sqlite_path(parsed.database)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def _check_sqlite_path(database: str) -> None:
    """Create the embedded database's folder; reject other missing folders, since
    a mistyped DATABASE_URL would otherwise start a new, empty database."""
    from pathlib import Path

    from qml_cli.core.settings import default_home

    path = Path(database).expanduser()
    if path.is_dir():
        raise InvalidInput(
            f"the SQLite database path {path} is a directory.",
            hint="Point DATABASE_URL at a file, e.g. sqlite:///var/lib/qml/qml.sqlite3.",
        )
    if path.parent.is_dir():
        return
    if path.parent.resolve() == default_home().resolve():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(
                f"cannot create the data folder {path.parent}: {exc.strerror}.",
                hint="Set QML_HOME to a writable folder.",
            ) from None
        return
    raise InvalidInput(
        f"the folder of the SQLite database {path} does not exist.",
        hint="Create it first, or fix the path in DATABASE_URL.",
    )


def get_engine(url: str | None = None) -> Engine:
    """Return the engine for `url`, or for the configured database."""
    if url is None:
        from qml_cli.core.settings import get_settings

        url = get_settings().database_url
    return make_engine(url)


def is_postgres(engine_or_session) -> bool:
    bind = (
        engine_or_session.get_bind()
        if isinstance(engine_or_session, Session)
        else engine_or_session
    )
    return bind.dialect.name == "postgresql"


def ping(engine: Engine) -> None:
    """Run `SELECT 1`; raise `ServiceUnavailable` naming the masked URL on failure."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ServiceUnavailable(
            f"database unreachable at {mask_url(str(engine.url))}: {reason}",
            hint="Check DATABASE_URL and that the server is running.",
        ) from None


@contextlib.contextmanager
def session_scope(
    engine: Engine | None = None, *, readonly: bool = False
) -> Iterator[Session]:
    """Yield a session in one transaction: commit on success, roll back on error.

    `readonly` sessions take no SQLite write lock. Connection failures become
    `ServiceUnavailable` (exit 4), a busy SQLite file `LockHeld` (exit 5), and a
    schema that does not match this release `CheckFailed` (exit 1) naming the fix."""
    engine = engine or get_engine()
    session = _session_factory(engine)()
    if readonly:
        session.connection(execution_options={"qml_readonly": True})
    try:
        yield session
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        raise translate_error(exc, engine) from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@lru_cache(maxsize=8)
def _session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def translate_error(exc: DBAPIError, engine: Engine) -> Exception:
    """Map a driver error to the qml error an operator can act on, else return it."""
    message = str(exc.orig or exc).lower()
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if "database is locked" in message:
        return LockHeld(
            "the SQLite database is locked by another writer (waited "
            f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s).",
            hint="Retry when the other command has finished; use PostgreSQL for "
            "concurrent work.",
        )
    if (
        "no such table" in message
        or "no such column" in message
        or ("relation" in message and "does not exist" in message)
        or ("column" in message and "does not exist" in message)
    ):
        return CheckFailed(
            f"the schema of the database at {mask_url(str(engine.url))} does not "
            f"match this qml ({reason}).",
            hint="Run: qml db migrate (or `qml db current` to see the revision)",
        )
    if isinstance(exc, OperationalError) and _is_connection_error(exc):
        return ServiceUnavailable(
            f"database unreachable at {mask_url(str(engine.url))}: {reason}",
            hint="Check DATABASE_URL and that the server is running.",
        )
    return exc


def _is_connection_error(exc: OperationalError) -> bool:
    message = str(exc.orig or exc).lower()
    needles = (
        "connection",
        "could not connect",
        "unable to open database",
        "server closed",
        "timeout expired",
        "no such host",
        "name or service",
    )
    return any(needle in message for needle in needles)
