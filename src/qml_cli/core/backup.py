"""Backups: create, list, verify and restore, each backup a folder with a manifest.

A backup is a PostgreSQL custom-format dump when a matching `pg_dump` is installed,
else the portable export of `backup_tables` (always on SQLite). The manifest
records the schema revision, row counts and checksums of every table, the SHA-256
of every file, the qml version and the time. With ENCRYPTION_KEY set, every data
file is encrypted and the manifest carries an HMAC, so any change to a backup fails
verification. A backup is written to a hidden folder and renamed when complete.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gzip
import hashlib
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from qml_cli import __version__
from qml_cli.core import backup_crypto, backup_tables, pgdump
from qml_cli.core.db import get_engine, is_postgres, mask_url, ping
from qml_cli.core.logs import get_logger
from qml_cli.core.models import utcnow
from qml_cli.errors import CheckFailed, InvalidInput, NotFound

log = get_logger("backup")
FORMAT_VERSION = 1
SCOPES = ("ml", "all")
MANIFEST = "manifest.json"
DUMP_FILE = "database.dump"


def backup_dir(output: Path | None = None) -> Path:
    """Return the backup folder: `output`, else $QML_HOME/backups."""
    from qml_cli.core.settings import get_settings

    return Path(output).expanduser() if output else get_settings().home / "backups"


def _encryption_key() -> str | None:
    from qml_cli.core.settings import get_settings

    return get_settings().values.get("ENCRYPTION_KEY")


def secret_values() -> list[tuple[str, str]]:
    """Return (name, value) of every configured secret long enough to search for."""
    from sqlalchemy.engine import make_url

    from qml_cli.core.settings import SPECS, get_settings

    settings = get_settings()
    found = [
        (spec.name, settings.values[spec.name])
        for spec in SPECS
        if spec.kind == "secret" and settings.values.get(spec.name)
    ]
    password = make_url(settings.database_url).password
    if password:
        found.append(("the DATABASE_URL password", password))
    redis_url = settings.values.get("REDIS_URL")
    if redis_url:
        from urllib.parse import urlsplit

        if urlsplit(redis_url).password:
            found.append(("the REDIS_URL password", urlsplit(redis_url).password))
    return [(name, str(value)) for name, value in found if len(str(value)) >= 8]


def _secret_scanner(encrypted: bool):
    """Return a row callback that rejects a configured secret in a clear backup."""
    if encrypted:
        return None
    watched = secret_values()

    def scan(table: str, line: str) -> None:
        for name, value in watched:
            if value in line:
                raise CheckFailed(
                    f"table {table} contains the value of {name}, and the "
                    "backup would store it in clear: backup rejected.",
                    hint="Set ENCRYPTION_KEY so that backups are encrypted.",
                )

    return scan if watched else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """Yield a connection in a transaction that reads one consistent state, with
    REPEATABLE READ on PostgreSQL and BEGIN IMMEDIATE (the engine's default) on
    SQLite."""
    with engine.connect() as connection:
        if is_postgres(engine):
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            if is_postgres(engine):
                connection.execute(text("SET TRANSACTION READ ONLY"))
            yield connection


def _export_portable(
    connection: Connection, scope: str, staging: Path, scanner
) -> tuple[dict, dict]:
    tables: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {}
    for spec in backup_tables.table_specs(connection, scope):
        name = f"{spec.name}.jsonl.gz"
        with gzip.GzipFile(staging / name, "wb", mtime=0) as handle:

            def write(table: str, line: str, handle=handle) -> None:
                if scanner:
                    scanner(table, line)
                handle.write(line.encode() + b"\n")

            tables.update(
                backup_tables.table_checksums(connection, [spec], on_line=write)
            )
        files[name] = {"table": spec.name}
    return tables, files


def _dump_postgres(
    connection: Connection,
    engine: Engine,
    tools: pgdump.PgTools,
    scope: str,
    staging: Path,
    scanner,
) -> tuple[dict, dict]:
    specs = backup_tables.table_specs(connection, scope)
    snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    names = [spec.name for spec in specs] + list(backup_tables.SKIPPED_TABLES)
    pgdump.dump(
        tools,
        engine,
        staging / DUMP_FILE,
        tables=names if scope == "ml" else None,
        snapshot=snapshot,
    )
    tables = backup_tables.table_checksums(connection, specs, on_line=scanner)
    return tables, {DUMP_FILE: {"table": None}}


def _seal(staging: Path, files: dict, key: str | None, salt: bytes) -> dict:
    """Encrypt the files when a key is set, then record each file's SHA-256."""
    sealed = {}
    for name, info in files.items():
        path = staging / name
        if key:
            target = staging / f"{name}.enc"
            backup_crypto.encrypt_file(
                path, target, backup_crypto.derive_key(key, salt, "data")
            )
            path.unlink()
            path, name = target, target.name
        path.chmod(0o600)
        sealed[name] = {**info, "sha256": _sha256(path), "bytes": path.stat().st_size}
    return sealed


def _write_manifest(folder: Path, manifest: dict, key: str | None) -> None:
    if key:
        salt = base64.b64decode(manifest["encryption"]["salt"])
        manifest["mac"] = backup_crypto.manifest_mac(
            manifest, backup_crypto.derive_key(key, salt, "manifest")
        )
    path = folder / MANIFEST
    path.write_text(
        json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n",
        encoding="utf-8",
    )
    path.chmod(0o600)


def create(
    *,
    scope: str = "ml",
    output: Path | None = None,
    keep: int | None = None,
    kind: str = "regular",
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Back up the tables of `scope`; keep the newest `keep` regular backups of that
    scope (those a release points at are never removed). Returns the manifest."""
    from qml_cli.core import migrate

    if scope not in SCOPES:
        raise InvalidInput(f"invalid scope {scope!r}.", hint="Use ml or all.")
    if keep is not None and keep < 1:
        raise InvalidInput(f"invalid --keep {keep}.", hint="Keep at least 1 backup.")
    engine = engine or get_engine()
    revision = migrate.current_revision(engine)
    if revision is None:
        raise CheckFailed(
            "the database has no qml schema: nothing to back up.",
            hint="Run: qml db migrate",
        )
    key = _encryption_key()
    folder = backup_dir(output)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = utcnow()
    backup_id = f"{created:%Y%m%dT%H%M%SZ}-{scope}-{secrets.token_hex(3)}"
    staging = folder / f".{backup_id}.partial"
    staging.mkdir(mode=0o700)
    try:
        manifest = _build(engine, scope, staging, key)
        manifest.update(
            {
                "id": backup_id,
                "kind": kind,
                "scope": scope,
                "created_at": created.isoformat(),
                "schema_revision": revision,
            }
        )
        _write_manifest(staging, manifest, key)
        staging.rename(folder / backup_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("backup created", extra={"operation": "backup_create", "success": True})
    manifest["path"] = str(folder / backup_id)
    manifest["pruned"] = prune(folder, scope, keep, engine) if keep else []
    return manifest


def _build(
    engine: Engine, scope: str, staging: Path, key: str | None
) -> dict[str, Any]:
    ping(engine)
    scanner = _secret_scanner(encrypted=bool(key))
    database: dict[str, Any] = {
        "backend": engine.dialect.name,
        "url": mask_url(str(engine.url)),
    }
    with _snapshot(engine) as connection:
        tools, reason = None, "SQLite: portable export"
        if is_postgres(engine):
            major = pgdump.server_major(connection)
            database["server_major"] = major
            tools, reason = pgdump.find_tools(major)
        if tools:
            tables, files = _dump_postgres(
                connection, engine, tools, scope, staging, scanner
            )
            backup_format = "pg_dump"
            database["pg_dump"] = tools.version
        else:
            tables, files = _export_portable(connection, scope, staging, scanner)
            backup_format = "jsonl"
    salt = backup_crypto.new_salt()
    encryption = None
    if key:
        from qml_cli.core.config_check import fingerprint

        encryption = {
            "cipher": "AES-256-GCM",
            "kdf": "HKDF-SHA256",
            "salt": base64.b64encode(salt).decode(),
            "key_fingerprint": fingerprint(key),
        }
    return {
        "format_version": FORMAT_VERSION,
        "qml_version": __version__,
        "format": backup_format,
        "format_reason": reason,
        "database": database,
        "tables": tables,
        "files": _seal(staging, files, key, salt),
        "encryption": encryption,
    }


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckFailed(
            f"backup {folder.name} has no readable manifest: {exc}."
        ) from None
    if not isinstance(manifest, dict):
        raise CheckFailed(
            f"backup {folder.name} has no readable manifest: it is not a JSON object."
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckFailed(
            f"backup {folder.name} has manifest format "
            f"{manifest.get('format_version')!r}; this qml reads "
            f"{FORMAT_VERSION}."
        )
    return manifest


def list_backups(directory: Path | None = None) -> list[dict[str, Any]]:
    """Return the complete backups in the folder, newest first, with their sizes."""
    folder = backup_dir(directory)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or not (path / MANIFEST).is_file():
            continue
        try:
            manifest = read_manifest(path)
        except CheckFailed as exc:
            log.warning("unreadable backup skipped", extra={"error": str(exc)})
            continue
        manifest["path"] = str(path)
        manifest["bytes"] = sum(
            info.get("bytes", 0) for info in manifest["files"].values()
        )
        manifest["rows"] = sum(info["rows"] for info in manifest["tables"].values())
        found.append(manifest)
    return sorted(found, key=lambda m: (m["created_at"], m["id"]), reverse=True)


def find_backup(backup_id: str, directory: Path | None = None) -> Path:
    """Return the folder of backup `backup_id` (or `latest`); raise `NotFound`."""
    folder = backup_dir(directory)
    if backup_id == "latest":
        backups = list_backups(directory)
        if not backups:
            raise NotFound(f"no backups in {folder}.", hint="Run: qml backup create")
        return Path(backups[0]["path"])
    path = folder / backup_id
    if "/" in backup_id or backup_id.startswith(".") or not (path / MANIFEST).is_file():
        raise NotFound(
            f"backup {backup_id!r} not found in {folder}.",
            hint="List them with: qml backup list",
        )
    return path


def prune(
    folder: Path, scope: str, keep: int, engine: Engine | None = None
) -> list[str]:
    """Delete regular backups of `scope` beyond the newest `keep`; return their ids."""
    protected = _release_backups(engine or get_engine())
    regular = [
        m
        for m in list_backups(folder)
        if m["scope"] == scope and m.get("kind") == "regular"
    ]
    removed = []
    for manifest in regular[keep:]:
        if manifest["id"] in protected:
            continue
        shutil.rmtree(manifest["path"])
        removed.append(manifest["id"])
    return removed


def _release_backups(engine: Engine) -> set[str]:
    from sqlalchemy import inspect, select

    from qml_cli.core.models import Release

    with engine.connect() as connection:
        if not inspect(connection).has_table(Release.__tablename__):
            return set()
        rows = connection.execute(select(Release.backup_id)).scalars()
        return {row for row in rows if row}


def age(manifest: dict[str, Any], now: dt.datetime) -> dt.timedelta:
    return now - dt.datetime.fromisoformat(manifest["created_at"])
