"""Backups on SQLite and PostgreSQL: round trips, tampering, revisions, encryption."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import backup, backup_crypto, backup_restore, backup_tables, pgdump
from qml_cli.core.db import session_scope
from qml_cli.core.models import AutoPrediction, SubscriptionPlan, Tenant
from qml_cli.errors import CheckFailed, Conflict
from tests.ops.conftest import populate

runner = CliRunner()
KEY = "6f1d0c2b9e8a7f6d5c4b3a29180f7e6d5c4b3a2918"


def set_setting(monkeypatch, name: str, value: str) -> None:
    from qml_cli.core import settings

    monkeypatch.setenv(name, value)
    settings.reset_settings()


def checksums(engine) -> dict:
    with engine.connect() as connection:
        specs = backup_tables.table_specs(connection, "ml")
        return backup_tables.table_checksums(connection, specs)


def destroy(engine) -> None:
    with session_scope(engine) as session:
        session.execute(delete(Tenant))
        session.execute(update(SubscriptionPlan).values(monthly_ml_credits=0))


def flip_byte(path: Path, offset: int = 40) -> None:
    data = bytearray(path.read_bytes())
    data[min(offset, len(data) - 1)] ^= 0x01
    path.write_bytes(bytes(data))


def data_file(manifest: dict) -> Path:
    folder = Path(manifest["path"])
    names = [
        name for name in manifest["files"] if name.startswith(("ml_usage", "database"))
    ]
    return folder / names[0]


def test_roundtrip_restores_identical_rows(engine):
    populate(engine)
    before = checksums(engine)
    manifest = backup.create(engine=engine)
    destroy(engine)
    assert checksums(engine) != before

    result = backup_restore.restore(manifest["id"], engine=engine)

    assert checksums(engine) == before
    assert result["safety_backup"] is not None
    assert result["tables"]["tenants"] == 1


def test_postgres_uses_pg_dump(pg_engine):
    manifest = backup.create(engine=pg_engine)

    assert manifest["format"] == "pg_dump"
    assert list(manifest["files"]) == ["database.dump"]
    assert "matches server" in manifest["format_reason"]


def test_portable_roundtrip_on_postgres(pg_engine, monkeypatch):
    monkeypatch.setattr(pgdump, "find_tools", lambda major: (None, "no pg_dump"))
    populate(pg_engine)
    before = checksums(pg_engine)
    manifest = backup.create(engine=pg_engine)
    destroy(pg_engine)

    backup_restore.restore(manifest["id"], engine=pg_engine)

    assert manifest["format"] == "jsonl"
    assert checksums(pg_engine) == before


def test_restore_keeps_sql_null_apart_from_json_null(engine):
    populate(engine)
    query = (
        select(func.count())
        .select_from(AutoPrediction)
        .where(AutoPrediction.last_result.is_(None))
    )
    with session_scope(engine) as session:
        nulls_before = session.scalar(query)
    manifest = backup.create(engine=engine)
    destroy(engine)

    backup_restore.restore(manifest["id"], engine=engine)

    with session_scope(engine) as session:
        assert session.scalar(query) == nulls_before


def test_restored_ids_continue_after_restore(engine):
    populate(engine)
    manifest = backup.create(engine=engine)
    destroy(engine)
    backup_restore.restore(manifest["id"], engine=engine)

    populate(engine, "globex")

    with session_scope(engine) as session:
        ids = session.scalars(select(Tenant.id).order_by(Tenant.id)).all()
    assert len(ids) == 2
    assert ids[1] > ids[0]


def test_sqlite_backup_restores_into_empty_postgres(sqlite_engine, pg_url):
    from qml_cli.core.db import make_engine

    populate(sqlite_engine)
    manifest = backup.create(engine=sqlite_engine)
    pg_engine = make_engine(pg_url)

    result = backup_restore.restore(manifest["id"], engine=pg_engine)

    assert result["kept"] == []
    assert checksums(pg_engine) == checksums(sqlite_engine)


def test_restore_keeps_releases_and_job_runs(engine):
    from qml_cli.core.models import JobRun, Release

    manifest = backup.create(engine=engine)
    with session_scope(engine) as session:
        session.add(Release(version="2.0.0", schema_revision="head"))
        session.add(JobRun(job="backup-create", status="ok", counts={}))

    result = backup_restore.restore(manifest["id"], engine=engine)

    assert result["kept"] == ["job_runs", "releases"]
    with session_scope(engine) as session:
        assert session.scalars(select(Release.version)).all() == ["2.0.0"]
        assert session.scalar(select(func.count()).select_from(JobRun)) == 1


def test_verify_passes_on_intact_backup(engine):
    populate(engine)
    manifest = backup.create(engine=engine)

    report = backup_restore.verify(manifest["id"], engine=engine)

    assert report["ok"] is True
    assert [check["status"] for check in report["checks"]] == ["pass"] * 5
    assert "scratch" in report["checks"][-1]["detail"]


def test_verify_catches_flipped_byte(engine):
    populate(engine)
    manifest = backup.create(engine=engine)
    flip_byte(data_file(manifest))

    report = backup_restore.verify(manifest["id"], engine=engine)

    assert report["ok"] is False
    failed = [check for check in report["checks"] if check["status"] == "fail"]
    assert [check["check"] for check in failed] == ["checksums"]
    assert "does not match its SHA-256" in failed[0]["detail"]


def test_restore_of_corrupt_backup_changes_nothing(engine):
    populate(engine)
    before = checksums(engine)
    manifest = backup.create(engine=engine)
    flip_byte(data_file(manifest))

    with pytest.raises(CheckFailed):
        backup_restore.restore(manifest["id"], engine=engine)

    assert checksums(engine) == before


def test_encrypted_backup_holds_no_clear_rows(engine, monkeypatch):
    set_setting(monkeypatch, "ENCRYPTION_KEY", KEY)
    populate(engine, "plaintext-marker")
    manifest = backup.create(engine=engine)

    for name in manifest["files"]:
        raw = (Path(manifest["path"]) / name).read_bytes()
        assert raw.startswith(backup_crypto.MAGIC)
        assert b"plaintext-marker" not in raw
    assert manifest["encryption"]["cipher"] == "AES-256-GCM"
    assert backup_restore.verify(manifest["id"], engine=engine)["ok"] is True


def test_encrypted_backup_rejects_edited_manifest(engine, monkeypatch):
    set_setting(monkeypatch, "ENCRYPTION_KEY", KEY)
    populate(engine)
    manifest = backup.create(engine=engine)
    target = data_file(manifest)
    flip_byte(target)
    path = Path(manifest["path"]) / backup.MANIFEST
    stored = json.loads(path.read_text())
    stored["files"][target.name]["sha256"] = backup._sha256(target)
    path.write_text(json.dumps(stored))

    report = backup_restore.verify(manifest["id"], engine=engine)

    assert report["checks"][1]["check"] == "authentication"
    assert report["checks"][1]["status"] == "fail"


def test_encrypted_backup_needs_the_right_key(engine, monkeypatch):
    set_setting(monkeypatch, "ENCRYPTION_KEY", KEY)
    manifest = backup.create(engine=engine)
    set_setting(monkeypatch, "ENCRYPTION_KEY", KEY[::-1])

    report = backup_restore.verify(manifest["id"], engine=engine)

    assert report["ok"] is False
    assert "not the key that wrote it" in report["checks"][1]["detail"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "rename"])
def test_decrypt_rejects_damaged_file(tmp_path, damage):
    key = backup_crypto.derive_key(KEY, b"s" * 16, "data")
    plain = tmp_path / "rows.jsonl.gz"
    plain.write_bytes(b"x" * (backup_crypto.CHUNK_BYTES * 2 + 10))
    sealed = tmp_path / "rows.jsonl.gz.enc"
    backup_crypto.encrypt_file(plain, sealed, key)
    if damage == "flip":
        flip_byte(sealed, offset=backup_crypto.CHUNK_BYTES + 100)
    elif damage == "truncate":
        data = sealed.read_bytes()
        chunk = 4 + backup_crypto.CHUNK_BYTES + backup_crypto.TAG_BYTES
        sealed.write_bytes(data[: len(backup_crypto.MAGIC) + 7 + 2 * chunk])
    else:
        sealed = sealed.rename(tmp_path / "other.jsonl.gz.enc")

    with pytest.raises(CheckFailed):
        backup_crypto.decrypt_file(sealed, tmp_path / "out", key)


def test_decrypt_roundtrip_of_empty_file(tmp_path):
    key = backup_crypto.derive_key(KEY, b"s" * 16, "data")
    (tmp_path / "empty").write_bytes(b"")
    backup_crypto.encrypt_file(tmp_path / "empty", tmp_path / "empty.enc", key)

    backup_crypto.decrypt_file(tmp_path / "empty.enc", tmp_path / "plain", key)

    assert (tmp_path / "plain").read_bytes() == b""


def test_clear_backup_rejects_stored_secret(engine, monkeypatch):
    secret = "jwt-" + "9" * 40
    set_setting(monkeypatch, "JWT_SECRET", secret)
    populate(engine, "leaky")
    with session_scope(engine) as session:
        session.execute(update(Tenant).values(name=f"token {secret}"))

    with pytest.raises(CheckFailed) as raised:
        backup.create(engine=engine)

    assert "contains the value of JWT_SECRET" in str(raised.value)
    assert backup.list_backups() == []
    assert not any(backup.backup_dir().iterdir())


def test_clear_backup_files_are_readable_json_lines(sqlite_engine):
    populate(sqlite_engine)
    manifest = backup.create(engine=sqlite_engine)

    with gzip.open(Path(manifest["path"]) / "tenants.jsonl.gz", "rt") as handle:
        rows = [json.loads(line) for line in handle]

    assert [row["slug"] for row in rows] == ["acme"]
    assert rows[0]["created_at"].endswith("+00:00")


def test_restore_rejects_older_schema_revision(sqlite_url):
    from qml_cli.core import migrate
    from qml_cli.core.db import make_engine

    engine = make_engine(sqlite_url)
    migrate.upgrade("005", engine)
    manifest = backup.create(engine=engine)
    migrate.upgrade("head", engine)

    with pytest.raises(Conflict) as raised:
        backup_restore.restore(manifest["id"], engine=engine)

    message = str(raised.value)
    assert "older schema revision (005)" in message
    assert f"qml rollback --to-backup {manifest['id']}" in message


def test_restore_into_empty_database(sqlite_engine, tmp_path):
    from qml_cli.core import migrate
    from qml_cli.core.db import make_engine

    populate(sqlite_engine)
    before = checksums(sqlite_engine)
    manifest = backup.create(engine=sqlite_engine)
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")

    result = backup_restore.restore(manifest["id"], engine=empty)

    assert result["safety_backup"] is None
    assert migrate.current_revision(empty) == manifest["schema_revision"]
    assert checksums(empty) == before


def test_keep_prunes_old_regular_backups_only(sqlite_engine):
    safety = backup.create(engine=sqlite_engine, kind="safety")
    ids = [backup.create(engine=sqlite_engine, keep=2)["id"] for _ in range(3)]

    remaining = {m["id"] for m in backup.list_backups()}

    assert remaining == {safety["id"], ids[1], ids[2]}


def test_keep_spares_backup_of_a_release(sqlite_engine):
    from qml_cli.core.models import Release

    first = backup.create(engine=sqlite_engine)
    with session_scope(sqlite_engine) as session:
        session.add(
            Release(version="1.0.0", schema_revision="head", backup_id=first["id"])
        )
    backup.create(engine=sqlite_engine, keep=1)

    assert first["id"] in {m["id"] for m in backup.list_backups()}


def test_cli_create_list_verify(sqlite_engine):
    created = runner.invoke(app, ["backup", "create", "--scope", "all", "--json"])
    backup_id = json.loads(created.output)["id"]
    listed = runner.invoke(app, ["backup", "list", "--json"])
    verified = runner.invoke(app, ["backup", "verify", backup_id])

    assert created.exit_code == 0
    assert [item["id"] for item in json.loads(listed.output)] == [backup_id]
    assert verified.exit_code == 0
    assert "trial restore" in verified.output


def test_cli_verify_exits_1_on_corrupt_backup(sqlite_engine):
    manifest = backup.create(engine=sqlite_engine)
    flip_byte(Path(manifest["path"]) / "subscription_plans.jsonl.gz")

    result = runner.invoke(app, ["backup", "verify", manifest["id"]])

    assert result.exit_code == 1


def test_cli_restore_requires_yes_off_terminal(sqlite_engine):
    manifest = backup.create(engine=sqlite_engine)

    rejected = runner.invoke(app, ["backup", "restore", manifest["id"]])
    accepted = runner.invoke(app, ["backup", "restore", manifest["id"], "--yes"])

    assert rejected.exit_code == 2
    assert "Pass --yes" in rejected.output
    assert accepted.exit_code == 0
    assert "safety backup" in accepted.output


def test_cli_unknown_backup_exits_2(sqlite_engine):
    result = runner.invoke(app, ["backup", "verify", "20200101T000000Z-ml-000000"])

    assert result.exit_code == 2
    assert "not found" in result.output


def test_backup_of_empty_database_is_refused(sqlite_url):
    from qml_cli.core.db import make_engine

    with pytest.raises(CheckFailed) as raised:
        backup.create(engine=make_engine(sqlite_url))

    assert "no qml schema" in str(raised.value)


def test_scratch_database_is_dropped(pg_engine):
    with pgdump.scratch_database(pg_engine) as scratch:
        name = scratch.url.database
    with pg_engine.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
    assert found is None
