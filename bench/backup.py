"""Benchmark `qml backup create`, `verify` and `restore` against the plain tools.

Run: `python bench/backup.py [--rows 200000]`. It fills a throwaway SQLite file and
a throwaway PostgreSQL database (127.0.0.1:5432, dropped afterwards) with ledger
rows, then times each step beside a baseline measured in the same run. The SQLite
baseline is the sqlite3 online backup API. The PostgreSQL baseline is a bare
`pg_dump -Fc` of the same database. qml's extra time is the checksum pass over every
row, the manifest, and for verify the trial restore.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def _fill(engine, rows: int) -> None:
    from sqlalchemy import insert

    from qml_cli.core import tenants
    from qml_cli.core.db import session_scope
    from qml_cli.core.models import MlUsageHistory

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with session_scope(engine) as session:
        tenant = tenants.create_tenant(
            session,
            "bench",
            name=None,
            plan_name="standard",
            timezone="UTC",
            is_test=True,
            now=start,
        )
        tenant_id = tenant.id
    batch = 10_000
    with engine.begin() as connection:
        for first in range(0, rows, batch):
            connection.execute(
                insert(MlUsageHistory),
                [
                    {
                        "tenant_id": tenant_id,
                        "operation": "prediction",
                        "kind": "consume",
                        "credits": 0,
                        "balance_after": 30,
                        "buckets": {},
                        "idempotency_key": f"bench-{index}",
                        "success": True,
                        "context": {"run": index},
                        "processing_time_ms": 1.5,
                        "created_at": start + dt.timedelta(seconds=index),
                    }
                    for index in range(first, min(first + batch, rows))
                ],
            )


def _timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _report(label: str, rows: int, seconds: float, baseline: float | None) -> None:
    ratio = f"{seconds / baseline:5.1f}x baseline" if baseline else ""
    print(f"  {label:<28} {seconds:8.2f} s  {rows / seconds:>10,.0f} rows/s  {ratio}")


def bench_sqlite(rows: int, home: Path) -> None:
    from qml_cli.core import backup, backup_restore
    from tests.conftest import _migrate

    path = home / "bench.sqlite3"
    url = f"sqlite:///{path}"
    os.environ["DATABASE_URL"] = url
    engine = _migrate(url)
    _fill(engine, rows)
    total = rows + 4

    def online_backup():
        with sqlite3.connect(path) as source, sqlite3.connect(home / "copy.db") as copy:
            source.backup(copy)

    baseline, _ = _timed(online_backup)
    print(f"SQLite, {rows:,} ledger rows")
    _report("baseline: sqlite3 backup API", total, baseline, None)
    seconds, manifest = _timed(lambda: backup.create(engine=engine))
    _report("qml backup create (jsonl)", total, seconds, baseline)
    seconds, _ = _timed(lambda: backup_restore.verify(manifest["id"], engine=engine))
    _report("qml backup verify", total, seconds, baseline)
    seconds, _ = _timed(
        lambda: backup_restore.restore(manifest["id"], engine=engine, safety=False)
    )
    _report("qml backup restore", total, seconds, baseline)
    engine.dispose()


def bench_postgres(rows: int) -> None:
    import psycopg

    from qml_cli.core import backup, backup_restore, pgdump
    from qml_cli.core.db import make_engine
    from tests.conftest import _migrate

    name = f"qml_bench_{uuid.uuid4().hex[:8]}"
    admin = "host=127.0.0.1 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    os.environ["DATABASE_URL"] = url
    try:
        engine = _migrate(url)
        _fill(engine, rows)
        total = rows + 4
        with engine.connect() as connection:
            tools, _ = pgdump.find_tools(pgdump.server_major(connection))
        with tempfile.TemporaryDirectory() as work:
            dump = Path(work) / "plain.dump"
            dsn = f"--dbname=postgresql://postgres@127.0.0.1:5432/{name}"
            baseline, _ = _timed(
                lambda: subprocess.run(
                    [tools.tool("pg_dump"), "-Fc", f"--file={dump}", dsn], check=True
                )
            )
        print(f"PostgreSQL, {rows:,} ledger rows ({tools.version})")
        _report("baseline: pg_dump -Fc", total, baseline, None)
        seconds, manifest = _timed(lambda: backup.create(engine=engine))
        _report("qml backup create (pg_dump)", total, seconds, baseline)
        seconds, _ = _timed(
            lambda: backup_restore.verify(manifest["id"], engine=engine)
        )
        _report("qml backup verify", total, seconds, baseline)
        seconds, _ = _timed(
            lambda: backup_restore.restore(manifest["id"], engine=engine, safety=False)
        )
        _report("qml backup restore", total, seconds, baseline)
        engine.dispose()
        make_engine.cache_clear()
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=200_000, help="Ledger rows to back up."
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["QML_HOME"] = home
        for name in ("ENCRYPTION_KEY", "JWT_SECRET"):
            os.environ.pop(name, None)
        bench_sqlite(options.rows, Path(home))
        bench_postgres(options.rows)


if __name__ == "__main__":
    main()
