"""Scheduled job runs: one lock per job name and one `job_runs` row per run.

PostgreSQL locks with `pg_try_advisory_xact_lock` inside a transaction that a
dedicated connection keeps open for the whole run. The lock ends with the run or
with its connection. It stays correct behind a transaction-pooling proxy, because
such a proxy pins one server connection for the length of a transaction. SQLite
locks with `fcntl.flock` on a file next to the database, released when the process
exits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.engine import Engine, make_url

from qml_cli.core.db import get_engine, is_postgres, mask_url, session_scope
from qml_cli.core.logs import get_logger
from qml_cli.core.models import JobRun, utcnow
from qml_cli.errors import CheckFailed, InvalidInput, LockHeld

log = get_logger("jobs")

WAIT_POLL_S = 0.2
APPLICATION_PREFIX = "qml job "


def _signed32(value: int) -> int:
    return value - 2**32 if value >= 2**31 else value


# First key of every qml advisory lock: CRC-32 of "qml", as a signed 32-bit integer.
LOCK_NAMESPACE = _signed32(zlib.crc32(b"qml"))


def lock_key(name: str) -> tuple[int, int]:
    """Return the two 32-bit advisory lock keys of job `name`."""
    return LOCK_NAMESPACE, _signed32(zlib.crc32(name.encode()))


def holder_description(
    host: str | None, pid: int | None, started_at: dt.datetime | None
) -> str:
    since = (
        started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        if started_at
        else "an unknown time"
    )
    return f"host {host or 'unknown'}, pid {pid or 'unknown'}, since {since}"


def _lock_held(name: str, holder: str) -> LockHeld:
    return LockHeld(
        f"job {name!r} is already running ({holder}).",
        hint="Wait for it to finish, or pass --wait SECONDS to queue behind it.",
    )


def _recorded_holder(engine: Engine, name: str) -> str | None:
    with session_scope(engine) as session:
        row = session.scalar(
            select(JobRun)
            .where(JobRun.job == name, JobRun.status == "running")
            .order_by(JobRun.id.desc())
        )
        if row is None:
            return None
        return holder_description(row.host, row.pid, row.started_at)


def _pg_holder(engine: Engine, name: str) -> str | None:
    """Describe the session holding the advisory lock, from `pg_locks` and
    `pg_stat_activity`. The holder's application_name contains its host and pid."""
    classid, objid = lock_key(name)
    query = text(
        "SELECT a.application_name, a.xact_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :classid "
        "AND l.objid::bigint = :objid AND l.objsubid = 2 AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with engine.connect() as connection:
        row = connection.execute(
            query, {"classid": classid % 2**32, "objid": objid % 2**32}
        ).first()
    if row is None or not (row.application_name or "").startswith(APPLICATION_PREFIX):
        return None
    fields = dict(
        part.split("=", 1)
        for part in row.application_name[len(APPLICATION_PREFIX) :].split()
        if "=" in part
    )
    pid = int(fields["pid"]) if fields.get("pid", "").isdigit() else None
    started = row.xact_start.astimezone(dt.UTC) if row.xact_start else None
    return holder_description(fields.get("host"), pid, started)


@contextlib.contextmanager
def _pg_lock(engine: Engine, name: str, wait_s: float | None) -> Iterator[None]:
    classid, objid = lock_key(name)
    deadline = time.monotonic() + (wait_s or 0)
    # application_name is limited to 63 bytes; the host is cut to fit.
    label = f"{APPLICATION_PREFIX}pid={os.getpid()} host={socket.gethostname()}"[:63]
    with engine.connect() as connection:
        while True:
            transaction = connection.begin()
            connection.execute(
                text("SELECT set_config('application_name', :label, true)"),
                {"label": label},
            )
            acquired = connection.execute(
                text("SELECT pg_try_advisory_xact_lock(:a, :b)"),
                {"a": classid, "b": objid},
            ).scalar_one()
            if acquired:
                break
            transaction.rollback()
            if time.monotonic() >= deadline:
                holder = _pg_holder(engine, name) or _recorded_holder(engine, name)
                raise _lock_held(name, holder or "holder unknown")
            time.sleep(WAIT_POLL_S)
        try:
            yield
        finally:
            transaction.rollback()


def lock_path(engine: Engine, name: str) -> Path:
    """Return the lock file of job `name`: next to the SQLite file, else in QML_HOME."""
    database = make_url(str(engine.url)).database
    if database and database != ":memory:":
        path = Path(database).expanduser()
        return path.with_name(f"{path.name}.{name}.lock")
    from qml_cli.core.settings import get_settings

    return get_settings().home / f"{name}.lock"


def _read_lock_file(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        started = (
            dt.datetime.fromisoformat(info["started_at"])
            if "started_at" in info
            else None
        )
        return holder_description(info.get("host"), info.get("pid"), started)
    except (OSError, ValueError, KeyError):
        return "holder unknown"


@contextlib.contextmanager
def _file_lock(engine: Engine, name: str, wait_s: float | None) -> Iterator[None]:
    path = lock_path(engine, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + (wait_s or 0)
    with open(path, "a+", encoding="utf-8") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _lock_held(name, _read_lock_file(path)) from None
                time.sleep(WAIT_POLL_S)
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started_at": utcnow().isoformat(),
                }
            )
        )
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def job_lock(engine: Engine, name: str, wait_s: float | None = None):
    """Hold job `name`'s lock for a `with` block.

    Raises `LockHeld` (exit 5) naming the holder when the lock is still taken after
    `wait_s` seconds; None means no wait."""
    if wait_s is not None and wait_s < 0:
        raise InvalidInput(f"invalid --wait {wait_s}.", hint="Use 0 or more seconds.")
    if is_postgres(engine):
        return _pg_lock(engine, name, wait_s)
    return _file_lock(engine, name, wait_s)


_engines_with_table: set[str] = set()


def require_job_table(engine: Engine) -> None:
    """Raise `CheckFailed` naming the fix when the schema has no `job_runs` yet."""
    from sqlalchemy import inspect

    url = str(engine.url)
    if url in _engines_with_table:
        return
    with engine.connect() as connection:
        if not inspect(connection).has_table(JobRun.__tablename__):
            raise CheckFailed(
                f"the database {mask_url(url)} has no job_runs table.",
                hint="Run: qml db migrate",
            )
    _engines_with_table.add(url)


def result_counts(result: Any) -> dict[str, int]:
    """Summarise a job's result: its integer fields, and the length of its lists."""
    counts: dict[str, int] = {}
    if not isinstance(result, dict):
        return counts
    for key, value in result.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            counts[key] = value
        elif isinstance(value, list | tuple):
            counts[key] = len(value)
    return counts


def _start_run(engine: Engine, name: str) -> int:
    with session_scope(engine) as session:
        # The lock is ours, so a row still marked running is from a process that died.
        session.execute(
            update(JobRun)
            .where(JobRun.job == name, JobRun.status == "running")
            .values(
                status="abandoned",
                finished_at=utcnow(),
                error="the process ended without recording a result",
            )
        )
        run = JobRun(
            job=name,
            status="running",
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=utcnow(),
            counts={},
        )
        session.add(run)
        session.flush()
        return run.id


def _finish_run(
    engine: Engine, run_id: int, status: str, counts: dict[str, int], error: str | None
) -> None:
    with session_scope(engine) as session:
        run = session.get(JobRun, run_id)
        run.status, run.finished_at, run.counts, run.error = (
            status,
            utcnow(),
            counts,
            error,
        )


def run_job(
    name: str,
    fn: Callable[[], dict],
    *,
    wait_s: float | None = None,
    engine: Engine | None = None,
) -> dict:
    """Run `fn` under job `name`'s lock, recorded in `job_runs`; return its result.

    Raises `LockHeld` (exit 5) when another run holds the lock after `wait_s`
    seconds. The run is recorded as failed when `fn` returns a non-empty `failed`
    list, or raises, and then the exception propagates."""
    engine = engine or get_engine()
    require_job_table(engine)
    with job_lock(engine, name, wait_s):
        run_id = _start_run(engine, name)
        started = time.perf_counter()
        log.info("job started", extra={"operation": name})
        try:
            result = fn()
        except BaseException as exc:
            message = str(exc) or type(exc).__name__
            _finish_run(engine, run_id, "failed", {}, message)
            log.error(
                "job failed",
                extra={
                    "operation": name,
                    "success": False,
                    "error": message,
                    "processing_time": _elapsed_ms(started),
                },
            )
            raise
        counts = result_counts(result)
        # A job that returns a non-empty `failed` list ran, but not for every item.
        failed = counts.get("failed", 0)
        error = f"{failed} items failed; see the job's output" if failed else None
        _finish_run(engine, run_id, "failed" if failed else "ok", counts, error)
        log.info(
            "job finished",
            extra={
                "operation": name,
                "success": not failed,
                "processing_time": _elapsed_ms(started),
            },
        )
    return result


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def recent_runs(
    engine: Engine | None = None, *, job: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Return the latest `job_runs` rows, newest first; `job` also matches the
    per-worker runs named `job@worker`."""
    statement = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc())
    if job:
        statement = statement.where(
            or_(JobRun.job == job, JobRun.job.startswith(f"{job}@", autoescape=True))
        )
    engine = engine or get_engine()
    require_job_table(engine)
    with session_scope(engine) as session:
        rows = session.scalars(statement.limit(limit)).all()
        return [
            {
                "id": r.id,
                "job": r.job,
                "status": r.status,
                "host": r.host,
                "pid": r.pid,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "counts": r.counts,
                "error": r.error,
            }
            for r in rows
        ]
