"""pg_dump and pg_restore: finding a client that matches the server, and running it.

The password goes to the tools in the PGPASSWORD environment variable, never on
the command line, where other users of the machine could read it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from qml_cli.core.logs import get_logger
from qml_cli.errors import CheckFailed

log = get_logger("pgdump")
TOOL_DIR_PATTERN = "/usr/lib/postgresql/*/bin"
TIMEOUT_S = 6 * 3600


@dataclass(frozen=True)
class PgTools:
    bin_dir: Path
    major: int
    version: str

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def client_version(pg_dump: str) -> tuple[int, str] | None:
    """Return (major, full version) of a pg_dump binary, or None when it cannot run."""
    try:
        output = subprocess.run(
            [pg_dump, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.(\d+))?", output)
    if not match:
        return None
    return int(match.group(1)), match.group(0)


def server_major(connection: Connection) -> int:
    return (
        int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    )


def find_tools(major: int) -> tuple[PgTools | None, str]:
    """Find pg_dump and pg_restore of the server's major version.

    Looks in /usr/lib/postgresql/MAJOR/bin, then in the other versions there, then
    on PATH; a newer client is accepted because it can dump an older server, an
    older one is not. Returns (tools or None, the reason for the choice)."""
    candidates = sorted(glob.glob(TOOL_DIR_PATTERN), reverse=True)
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    seen: list[str] = []
    for folder in candidates:
        dump, restore = Path(folder) / "pg_dump", Path(folder) / "pg_restore"
        if not (dump.is_file() and restore.is_file()):
            continue
        version = client_version(str(dump))
        if version is None:
            continue
        seen.append(f"{version[1]} in {folder}")
        if version[0] == major:
            return PgTools(
                Path(folder), version[0], version[1]
            ), f"pg_dump {version[1]} matches server {major}"
    for folder in candidates:
        version = client_version(str(Path(folder) / "pg_dump"))
        if version and version[0] > major and (Path(folder) / "pg_restore").is_file():
            return PgTools(
                Path(folder), version[0], version[1]
            ), f"pg_dump {version[1]} is newer than server {major}"
    found = ", ".join(seen) or "none found"
    return None, f"no pg_dump of version {major} or newer (found: {found})"


def libpq_environment(engine: Engine) -> tuple[str, dict[str, str]]:
    """Return (connection string without password, environment with PGPASSWORD)."""
    from psycopg.conninfo import make_conninfo

    url = make_url(str(engine.url))
    params = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "dbname": url.database,
    }
    params.update(
        {key: value for key, value in url.query.items() if isinstance(value, str)}
    )
    conninfo = make_conninfo(
        **{key: value for key, value in params.items() if value is not None}
    )
    environment = dict(os.environ)
    if url.password:
        environment["PGPASSWORD"] = url.password
    return conninfo, environment


def _tool_failed(action: str, code: int, stderr: str) -> CheckFailed:
    """Build the error of a failed tool run from the last line of its stderr."""
    lines = stderr.strip().splitlines()
    return CheckFailed(
        f"{action} failed with exit code {code}: {lines[-1] if lines else 'no message'}"
    )


def _run(arguments: list[str], environment: dict[str, str], action: str) -> None:
    log.info(f"{action} started", extra={"operation": action})
    try:
        completed = subprocess.run(
            arguments,
            env=environment,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{action} timed out after {TIMEOUT_S} s.") from None
    if completed.returncode != 0:
        raise _tool_failed(action, completed.returncode, completed.stderr)


def dump(
    tools: PgTools,
    engine: Engine,
    target: Path,
    *,
    tables: list[str] | None,
    snapshot: str | None,
) -> None:
    """Write a custom-format dump of the database (or of `tables`) to `target`."""
    conninfo, environment = libpq_environment(engine)
    arguments = [
        tools.tool("pg_dump"),
        "--format=custom",
        "--no-owner",
        "--no-privileges",
        f"--file={target}",
        f"--dbname={conninfo}",
    ]
    if snapshot:
        arguments.append(f"--snapshot={snapshot}")
    for table in tables or []:
        arguments.append(f"--table=public.{table}")
    _run(arguments, environment, "pg_dump")


def restore(tools: PgTools, engine: Engine, source: Path) -> None:
    """Restore a custom-format dump, schema and rows, into an empty database in one
    transaction: all of it or nothing."""
    conninfo, environment = libpq_environment(engine)
    arguments = [
        tools.tool("pg_restore"),
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        f"--dbname={conninfo}",
        str(source),
    ]
    _run(arguments, environment, "pg_restore")


def _admin_engine(engine: Engine) -> Engine:
    return create_engine(
        engine.url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )


@contextlib.contextmanager
def scratch_database(engine: Engine) -> Iterator[Engine]:
    """Create an empty database on `engine`'s server for a trial restore; drop it
    afterwards. Needs the CREATEDB privilege; raises `CheckFailed` without it."""
    name = f"qml_scratch_{secrets.token_hex(6)}"
    admin = _admin_engine(engine)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        admin.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise CheckFailed(
            f"cannot create a scratch database for the trial restore: {reason}",
            hint="Grant CREATEDB to the database user, or pass --skip-trial.",
        ) from None
    scratch = create_engine(engine.url.set(database=name), poolclass=NullPool)
    try:
        yield scratch
    finally:
        scratch.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _copy_table(statement: str) -> str:
    """Return the table name of a `COPY schema.table (...) FROM stdin;` line."""
    target = statement[len("COPY ") :].split(" (", 1)[0].split(" FROM", 1)[0]
    return target.split(".", 1)[-1].strip('"')


def copy_data(
    tools: PgTools, dump_file: Path, connection: Connection, tables: list[str]
) -> None:
    """Load the rows of `tables` from a custom-format dump into the connection's
    open transaction with COPY, in the order of `tables` (parents first).

    pg_restore only converts the dump to SQL text here, and its SET statements are
    not run, so the connection's session settings stay as they are. The rows of each
    table go through a temporary file because the dump orders tables by name, not
    by foreign key."""
    with tempfile.TemporaryDirectory() as work:
        statements = _split_copy_blocks(tools, dump_file, Path(work), set(tables))
        cursor = connection.connection.driver_connection.cursor()
        for table in tables:
            if table not in statements:
                continue
            with (
                cursor.copy(statements[table]) as copy,
                open(Path(work) / f"{table}.copy", encoding="utf-8") as rows,
            ):
                for block in iter(lambda: rows.read(1 << 20), ""):
                    copy.write(block)


def _split_copy_blocks(
    tools: PgTools, dump_file: Path, work: Path, tables: set[str]
) -> dict[str, str]:
    """Write each wanted table's COPY data to `work/TABLE.copy`; return the COPY
    statement of each table found."""
    statements: dict[str, str] = {}
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [tools.tool("pg_restore"), "--data-only", "--file=-", str(dump_file)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            encoding="utf-8",
            errors="replace",  # a damaged dump must fail its checksums, not decoding
        )
        target = None
        skipping = False
        for line in process.stdout:
            if target is not None or skipping:
                if line == "\\.\n":
                    if target is not None:
                        target.close()
                    target, skipping = None, False
                elif target is not None:
                    target.write(line)
            elif line.startswith("COPY "):
                table = _copy_table(line)
                if table in tables:
                    statements[table] = line.rstrip().rstrip(";")
                    target = open(work / f"{table}.copy", "w", encoding="utf-8")
                else:
                    skipping = True
        code = process.wait()
        if target is not None:
            target.close()
        if code != 0:
            errors.seek(0)
            raise _tool_failed(
                "pg_restore", code, errors.read().decode(errors="replace")
            )
    return statements
