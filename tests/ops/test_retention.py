"""`logs cleanup`: job runs, rotated logs, and archived ledger history."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import (
    clock,
    credit_audit,
    credit_reports,
    credits,
    retention,
    tenants,
)
from qml_cli.core.db import session_scope
from qml_cli.core.models import JobRun, MlUsageHistory, Tenant

runner = CliRunner()
NOW = dt.datetime(2027, 6, 15, 12, 0, tzinfo=dt.UTC)


def _job_run(session, started: dt.datetime, status: str = "ok") -> None:
    session.add(
        JobRun(
            job="predict-run-due",
            status=status,
            started_at=started,
            finished_at=started,
            counts={},
        )
    )


def _history(engine, slug: str, *, with_grant: bool) -> None:
    """Two years of monthly resets, each run in its month, and one consumption."""
    start = NOW - dt.timedelta(days=730)
    with session_scope(engine) as session:
        tenant = tenants.create_tenant(
            session,
            slug,
            name=None,
            plan_name="standard",
            timezone="UTC",
            is_test=False,
            now=start,
        )
        if with_grant:
            credits.grant(
                session, tenant, 40, reason="bonus", key=f"{slug}-bonus", now=start
            )
        credits.consume(
            session,
            tenant,
            5,
            operation="prediction",
            key=f"{slug}-c1",
            now=start + dt.timedelta(days=1),
        )
    for month in range(1, 25):
        moment = clock.add_months(start, "UTC", month) + dt.timedelta(hours=1)
        credits.reset_monthly(lambda: session_scope(engine), now=min(moment, NOW))


def _rows(engine, slug: str) -> int:
    with session_scope(engine) as session:
        tenant = tenants.get_tenant(session, slug)
        return session.scalar(
            select(func.count())
            .select_from(MlUsageHistory)
            .where(MlUsageHistory.tenant_id == tenant.id)
        )


def _available(engine, slug: str) -> int:
    with session_scope(engine) as session:
        return credit_reports.status(
            session, tenants.get_tenant(session, slug), now=NOW
        )["available"]


def test_cleanup_deletes_old_finished_job_runs(engine):
    with session_scope(engine) as session:
        _job_run(session, NOW - dt.timedelta(days=40))
        _job_run(session, NOW - dt.timedelta(days=40), status="running")
        _job_run(session, NOW - dt.timedelta(days=5))

    report = retention.cleanup(dt.timedelta(days=30), now=NOW)

    assert report["job_runs"] == 1
    with session_scope(engine) as session:
        statuses = sorted(session.scalars(select(JobRun.status)).all())
    assert statuses == ["ok", "running"]


def test_cleanup_dry_run_changes_nothing(engine):
    _history(engine, "acme", with_grant=False)
    with session_scope(engine) as session:
        _job_run(session, NOW - dt.timedelta(days=40))
    rows = _rows(engine, "acme")

    report = retention.cleanup(dt.timedelta(days=30), now=NOW, dry_run=True)

    assert report["job_runs"] == 1
    assert report["history_rows"] > 0
    assert report["history_archive"] is None
    assert _rows(engine, "acme") == rows


def test_cleanup_removes_only_rotated_logs(sqlite_engine, tmp_path, monkeypatch):
    folder = tmp_path / "logs"
    folder.mkdir()
    monkeypatch.setenv("QML_LOG_FILE", str(folder / "qml.log"))
    old = (NOW - dt.timedelta(days=40)).timestamp()
    for name in ("qml.log", "qml.log.1", "qml.log.2027-04-01.gz", "other.log.1"):
        (folder / name).write_text("{}\n")
        os.utime(folder / name, (old, old))
    recent = (NOW - dt.timedelta(days=1)).timestamp()
    (folder / "qml.log.2").write_text("{}\n")
    os.utime(folder / "qml.log.2", (recent, recent))

    report = retention.cleanup(dt.timedelta(days=30), now=NOW)

    assert sorted(Path(p).name for p in report["log_files"]) == [
        "qml.log.1",
        "qml.log.2027-04-01.gz",
    ]
    assert sorted(p.name for p in folder.iterdir()) == [
        "other.log.1",
        "qml.log",
        "qml.log.2",
    ]


def test_history_archived_then_deleted_with_clean_audit(engine):
    _history(engine, "acme", with_grant=False)
    before_rows = _rows(engine, "acme")
    before_available = _available(engine, "acme")

    report = retention.cleanup(dt.timedelta(days=30), now=NOW)

    assert report["history_rows"] > 0
    assert _rows(engine, "acme") == before_rows - report["history_rows"]
    assert _available(engine, "acme") == before_available
    with session_scope(engine) as session:
        assert credit_audit.audit(session)["ok"] is True
        oldest = session.scalar(select(func.min(MlUsageHistory.created_at)))
    assert oldest >= report["history_cutoff"] - dt.timedelta(days=31)
    with gzip.open(report["history_archive"], "rt") as handle:
        archived = [json.loads(line) for line in handle]
    assert len(archived) == report["history_rows"]
    assert archived[0]["operation"] == "period_open"


def test_history_kept_while_a_grant_depends_on_it(engine):
    _history(engine, "acme", with_grant=True)
    before_rows = _rows(engine, "acme")

    report = retention.cleanup(dt.timedelta(days=30), now=NOW)

    assert report["history_rows"] == 0
    assert report["history_kept_rows"] > 0
    assert _rows(engine, "acme") == before_rows
    with session_scope(engine) as session:
        assert credit_audit.audit(session)["ok"] is True


def test_history_archive_encrypted_with_key(sqlite_engine, monkeypatch):
    from qml_cli.core import backup_crypto, settings

    monkeypatch.setenv("ENCRYPTION_KEY", "k" * 48)
    settings.reset_settings()
    _history(sqlite_engine, "secret-tenant", with_grant=False)

    report = retention.cleanup(dt.timedelta(days=30), now=NOW)

    archive = Path(report["history_archive"])
    assert archive.name.endswith(".jsonl.gz.enc")
    assert archive.read_bytes().startswith(backup_crypto.MAGIC)


def test_history_cutoff_is_month_start():
    assert retention.history_cutoff(NOW, 12) == dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_cli_cleanup_records_job_run(engine):
    result = runner.invoke(app, ["logs", "cleanup", "--older-than", "30d"])

    assert result.exit_code == 0
    assert "Deleted 0 job runs" in result.output
    with session_scope(engine) as session:
        runs = session.scalars(select(JobRun).where(JobRun.job == "logs-cleanup")).all()
    assert [run.status for run in runs] == ["ok"]


def test_cli_cleanup_rejects_bad_duration(engine):
    result = runner.invoke(app, ["logs", "cleanup", "--older-than", "30 days"])

    assert result.exit_code == 2
    assert "invalid duration" in result.output


def test_cli_logs_runs_lists_jobs(engine):
    runner.invoke(app, ["logs", "cleanup"])

    result = runner.invoke(app, ["logs", "runs", "--json"])

    assert [run["job"] for run in json.loads(result.output)] == ["logs-cleanup"]


def test_tenant_rows_untouched_when_recent(engine):
    _history(engine, "acme", with_grant=False)
    with session_scope(engine) as session:
        tenant_count = session.scalar(select(func.count()).select_from(Tenant))

    retention.cleanup(dt.timedelta(days=30), now=NOW, history_months=36)

    assert _rows(engine, "acme") > 0
    assert tenant_count == 1
