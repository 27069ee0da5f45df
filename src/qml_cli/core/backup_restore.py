"""Verify and restore backups written by `qml_cli.core.backup`.

`verify` checks the manifest's HMAC (encrypted backups), the SHA-256 of every
file, decryption, and restores into a scratch database to compare every table's
checksum with the manifest. `restore` refuses a backup of another schema revision,
takes a safety backup, and replaces the rows in one transaction that is rolled
back unless every table's checksum matches the manifest.
"""

from __future__ import annotations

import base64
import gzip
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from qml_cli.core import backup_crypto, backup_tables, pgdump
from qml_cli.core.backup import (
    DUMP_FILE,
    _encryption_key,
    _sha256,
    backup_dir,
    create,
    find_backup,
    read_manifest,
)
from qml_cli.core.db import get_engine, is_postgres
from qml_cli.core.logs import get_logger
from qml_cli.errors import CheckFailed, Conflict, InvalidInput

log = get_logger("backup")


def check_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Raise `CheckFailed` unless every listed file exists with its SHA-256."""
    for name, info in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise CheckFailed(f"backup {manifest['id']}: file {name} is missing.")
        if _sha256(path) != info["sha256"]:
            raise CheckFailed(
                f"backup {manifest['id']}: file {name} does not match its "
                "SHA-256 in the manifest; the backup is corrupt."
            )


def _keys(manifest: dict[str, Any]) -> tuple[bytes, bytes] | None:
    encryption = manifest.get("encryption")
    if not encryption:
        return None
    key = _encryption_key()
    if not key:
        raise CheckFailed(
            f"backup {manifest['id']} is encrypted and ENCRYPTION_KEY is not set.",
            hint="Set the ENCRYPTION_KEY that encrypted it "
            f"({encryption['key_fingerprint']}).",
        )
    salt = base64.b64decode(encryption["salt"])
    return (
        backup_crypto.derive_key(key, salt, "data"),
        backup_crypto.derive_key(key, salt, "manifest"),
    )


def check_mac(manifest: dict[str, Any]) -> None:
    keys = _keys(manifest)
    if keys and not backup_crypto.mac_matches(manifest, keys[1]):
        raise CheckFailed(
            f"backup {manifest['id']}: the manifest failed authentication; "
            "it was modified or ENCRYPTION_KEY is not the key that wrote it."
        )


def plain_files(
    folder: Path, manifest: dict[str, Any], workdir: Path
) -> dict[str, Path]:
    """Return {plain file name: path}, decrypting encrypted files into `workdir`."""
    keys = _keys(manifest)
    result = {}
    for name in manifest["files"]:
        if keys is None:
            result[name] = folder / name
            continue
        plain = name.removesuffix(".enc")
        backup_crypto.decrypt_file(folder / name, workdir / plain, keys[0])
        result[plain] = workdir / plain
    return result


def _lines(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n")


def _compare(expected: dict[str, dict], actual: dict[str, dict]) -> list[str]:
    problems = []
    for name, info in expected.items():
        found = actual.get(name)
        if found is None:
            problems.append(f"table {name} missing")
        elif found != info:
            problems.append(
                f"table {name}: {found['rows']} rows, sha256 "
                f"{found['sha256'][:12]}, expected {info['rows']} rows, "
                f"sha256 {info['sha256'][:12]}"
            )
    return problems


# Tables that record what happened to a database. A restore into a database that
# has a schema keeps its own rows of them, so the releases survive a rollback.
KEPT_ON_RESTORE = ("releases", "job_runs")


def replace_rows(
    engine: Engine, manifest: dict[str, Any], files: dict[str, Path], tables: list[str]
) -> None:
    """Replace the rows of `tables` with the backup's in one transaction; roll back
    and raise `CheckFailed` unless their checksums then match the manifest."""
    with engine.connect() as connection, connection.begin():
        specs = {
            spec.name: spec
            for spec in backup_tables.table_specs(connection, manifest["scope"])
        }
        missing = [name for name in tables if name not in specs]
        if missing:
            # NOTE: tables outside the qml schema must already exist in the target,
            # because the restore loads rows and does not create tables.
            raise CheckFailed(
                f"the database has no table {', '.join(missing)} to restore into.",
                hint="Create those tables first.",
            )
        ordered = [spec for name, spec in specs.items() if name in tables]
        backup_tables.clear_tables(connection, ordered)
        if manifest["format"] == "pg_dump":
            pgdump.copy_data(
                _tools(engine),
                files[DUMP_FILE],
                connection,
                [spec.name for spec in ordered],
            )
        else:
            for spec in ordered:
                backup_tables.load_rows(
                    connection, spec, _lines(files[f"{spec.name}.jsonl.gz"])
                )
        backup_tables.reset_sequences(connection, ordered)
        expected = {name: manifest["tables"][name] for name in tables}
        problems = _compare(
            expected, backup_tables.table_checksums(connection, ordered)
        )
        if problems:
            raise CheckFailed(
                "restored rows do not match the backup, nothing changed: "
                + "; ".join(problems)
            )


def _checksums(engine: Engine, manifest: dict[str, Any]) -> dict[str, dict]:
    with engine.connect() as connection:
        specs = [
            spec
            for spec in backup_tables.table_specs(connection, manifest["scope"])
            if spec.name in manifest["tables"]
        ]
        return backup_tables.table_checksums(connection, specs)


def _tools(engine: Engine) -> pgdump.PgTools:
    with engine.connect() as connection:
        major = pgdump.server_major(connection)
    tools, reason = pgdump.find_tools(major)
    if tools is None:
        raise CheckFailed(
            f"cannot restore a pg_dump backup: {reason}.",
            hint="Install the PostgreSQL client of the server's version.",
        )
    return tools


def trial_restore(
    manifest: dict[str, Any], files: dict[str, Path], engine: Engine, workdir: Path
) -> str:
    """Restore into a scratch database and compare checksums; return a summary."""
    from qml_cli.core import migrate

    if manifest["format"] == "pg_dump":
        if not is_postgres(engine):
            raise CheckFailed(
                "a pg_dump backup needs a PostgreSQL server for the trial "
                "restore; DATABASE_URL is not PostgreSQL."
            )
        tools = _tools(engine)
        with pgdump.scratch_database(engine) as scratch:
            pgdump.restore(tools, scratch, files[DUMP_FILE])
            problems = _compare(manifest["tables"], _checksums(scratch, manifest))
        where = "a scratch PostgreSQL database"
    else:
        # NOTE: rows of tables outside the qml schema are checked by checksum only,
        # because the portable format has no table definitions to create them from.
        outside = sorted(set(manifest["tables"]) - backup_tables.model_table_names())
        scratch = create_engine(
            f"sqlite:///{workdir / 'scratch.sqlite3'}", poolclass=NullPool
        )
        try:
            migrate.upgrade(manifest["schema_revision"], scratch)
            trial = {
                **manifest,
                "tables": {
                    name: info
                    for name, info in manifest["tables"].items()
                    if name not in outside
                },
            }
            replace_rows(scratch, trial, files, list(trial["tables"]))
            problems = []
        except CheckFailed as exc:
            problems = [exc.message]
        finally:
            scratch.dispose()
        where = "a scratch SQLite database" + (
            f" ({len(outside)} tables outside the qml schema not loaded)"
            if outside
            else ""
        )
    if problems:
        raise CheckFailed(
            "trial restore differs from the manifest: " + "; ".join(problems)
        )
    rows = sum(info["rows"] for info in manifest["tables"].values())
    return f"{len(manifest['tables'])} tables, {rows} rows restored into {where}"


class _Verification:
    """The steps of `verify`, each returning its detail or raising `CheckFailed`."""

    def __init__(self, folder: Path, workdir: Path, engine: Engine | None) -> None:
        self.folder, self.workdir, self.engine = folder, workdir, engine
        self.manifest: dict[str, Any] = {}
        self.files: dict[str, Path] = {}

    def read(self) -> str:
        self.manifest = read_manifest(self.folder)
        return (
            f"revision {self.manifest['schema_revision']}, "
            f"format {self.manifest['format']}"
        )

    def authenticate(self) -> str:
        check_mac(self.manifest)
        return (
            "manifest HMAC matches"
            if self.manifest.get("encryption")
            else "not encrypted"
        )

    def checksums(self) -> str:
        check_files(self.folder, self.manifest)
        return f"{len(self.manifest['files'])} files match their SHA-256"

    def decrypt(self) -> str:
        self.files = plain_files(self.folder, self.manifest, self.workdir)
        return (
            "every file decrypted"
            if self.manifest.get("encryption")
            else "not encrypted"
        )

    def trial(self) -> str:
        return trial_restore(
            self.manifest, self.files, self.engine or get_engine(), self.workdir
        )


def verify(
    backup_id: str,
    directory: Path | None = None,
    *,
    trial: bool = True,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Run every check of one backup in order; a failed check skips the later ones,
    and `ok` is false when any failed."""
    folder = find_backup(backup_id, directory)
    checks: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".verify-") as work:
        state = _Verification(folder, Path(work), engine)
        steps = [
            ("manifest", state.read),
            ("authentication", state.authenticate),
            ("checksums", state.checksums),
            ("decryption", state.decrypt),
        ]
        if trial:
            steps.append(("trial restore", state.trial))
        failed = None
        for name, action in steps:
            if failed:
                checks.append(
                    {"check": name, "status": "skip", "detail": f"{failed} failed"}
                )
                continue
            try:
                checks.append({"check": name, "status": "pass", "detail": action()})
            except CheckFailed as exc:
                checks.append({"check": name, "status": "fail", "detail": str(exc)})
                failed = name
    return {"id": folder.name, "ok": failed is None, "checks": checks}


def check_revision(manifest: dict[str, Any], current: str | None) -> None:
    """Raise `Conflict` unless the backup's schema revision is the database's."""
    expected = manifest["schema_revision"]
    if current is None or current == expected:
        return
    from qml_cli.core import migrate

    order = [item["revision"] for item in migrate.revisions()]
    older = (
        expected in order
        and current in order
        and order.index(expected) < order.index(current)
    )
    relation = "an older" if older else "another"
    raise Conflict(
        f"backup {manifest['id']} is from {relation} schema revision ({expected}) "
        f"than the database ({current}): restore rejected.",
        hint=f"Run `qml rollback --to-backup {manifest['id']}`, which migrates "
        f"the schema to {expected} first, or `qml db downgrade --to "
        f"{expected}`."
        if older
        else f"Migrate the database to {expected} first.",
    )


def restore(
    backup_id: str,
    directory: Path | None = None,
    *,
    engine: Engine | None = None,
    safety: bool = True,
) -> dict[str, Any]:
    """Restore a backup; return its id, the safety backup's id, the row counts of
    the tables replaced and the tables kept (`KEPT_ON_RESTORE`).

    Raises `Conflict` (exit 2) for a backup of another schema revision, and
    `CheckFailed` when the backup fails its checks; either way nothing changes."""
    from qml_cli.core import migrate

    engine = engine or get_engine()
    folder = find_backup(backup_id, directory)
    manifest = read_manifest(folder)
    if manifest["format"] == "pg_dump" and not is_postgres(engine):
        raise InvalidInput(
            f"backup {manifest['id']} is a PostgreSQL dump and DATABASE_URL "
            "is not PostgreSQL."
        )
    current = migrate.current_revision(engine)
    check_revision(manifest, current)
    check_mac(manifest)
    check_files(folder, manifest)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".restore-") as work:
        files = plain_files(folder, manifest, Path(work))
        safety_id = None
        if safety and current is not None:
            safety_id = create(
                scope=manifest["scope"],
                output=backup_dir(directory),
                kind="safety",
                engine=engine,
            )["id"]
        if current is None:
            migrate.upgrade(manifest["schema_revision"], engine)
        tables = [
            name
            for name in manifest["tables"]
            if current is None or name not in KEPT_ON_RESTORE
        ]
        replace_rows(engine, manifest, files, tables)
    log.info("backup restored", extra={"operation": "backup_restore", "success": True})
    return {
        "id": manifest["id"],
        "safety_backup": safety_id,
        "schema_revision": manifest["schema_revision"],
        "tables": {name: manifest["tables"][name]["rows"] for name in tables},
        "kept": sorted(set(manifest["tables"]) - set(tables)),
    }
