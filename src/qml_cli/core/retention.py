"""`qml logs cleanup`: delete old job runs, rotated log files and ledger history.

Ledger rows older than the retention are deleted only after they are archived to a
compressed JSON-lines file, and only as a prefix of a tenant's ledger after which
every bucket sums to zero and no credit hold is open. The rows that remain then
reproduce every cached balance and `balance_after` by themselves, so
`qml credits audit` stays clean. Rows that current balances depend on are kept
whatever their age.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from qml_cli.core import clock
from qml_cli.core.backup_tables import encode_value
from qml_cli.core.db import get_engine, session_scope
from qml_cli.core.logs import get_logger
from qml_cli.core.models import JobRun, MlCreditHold, MlUsageHistory, Tenant
from qml_cli.errors import CheckFailed, InvalidInput

log = get_logger("retention")
HISTORY_RETENTION_MONTHS = 12
RESOLUTION_PREFIXES = ("release:", "commit:")


def history_cutoff(now: dt.datetime, months: int) -> dt.datetime:
    """Return UTC midnight on the first of the month `months` before `now`'s month."""
    return clock.add_months(clock.month_start(now, "UTC"), "UTC", -months)


def log_folder() -> tuple[Path, str]:
    """Return (folder, active file name) of the JSON logs: QML_LOG_FILE, else
    $QML_HOME/logs/qml.log."""
    from qml_cli.core.settings import get_settings

    configured = os.environ.get("QML_LOG_FILE")
    if configured:
        path = Path(configured).expanduser()
        return path.parent, path.name
    return get_settings().home / "logs", "qml.log"


def rotated_logs(cutoff: dt.datetime) -> list[Path]:
    """Rotated log files (`qml.log.1`, `qml.log.2026-01-31.gz`, ...) last written
    before `cutoff`; the active file is never one of them."""
    folder, active = log_folder()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.startswith(f"{active}."):
            continue
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        if modified < cutoff:
            found.append(path)
    return found


def stale_partial_backups(cutoff: dt.datetime) -> list[Path]:
    """Folders of backups that never completed (the process died), older than cutoff."""
    from qml_cli.core.backup import backup_dir

    folder = backup_dir()
    if not folder.is_dir():
        return []
    return [
        path
        for path in sorted(folder.glob(".*.partial"))
        if dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) < cutoff
    ]


@dataclass
class Prefix:
    """The deletable start of one tenant's ledger."""

    tenant_id: int
    last_id: int | None = None
    rows: int = 0
    hold_ids: list[int] = field(default_factory=list)


def deletable_prefix(session: Session, tenant_id: int, cutoff: dt.datetime) -> Prefix:
    """Find the longest prefix of rows older than `cutoff` that sums to zero in
    every bucket, with every hold it reserves also resolved inside it."""
    # NOTE: once a consumption's row is deleted, a replay of its idempotency key is
    # charged again. The retention (12 months by default) is far past any retry.
    holds = {
        hold.idempotency_key: hold
        for hold in session.scalars(
            select(MlCreditHold).where(MlCreditHold.tenant_id == tenant_id)
        )
    }
    rows = session.execute(
        select(
            MlUsageHistory.id,
            MlUsageHistory.created_at,
            MlUsageHistory.credits,
            MlUsageHistory.buckets,
            MlUsageHistory.idempotency_key,
        )
        .where(MlUsageHistory.tenant_id == tenant_id)
        .order_by(MlUsageHistory.id)
        .execution_options(yield_per=1000)
    )
    sums: dict[str, int] = defaultdict(int)
    running, count, open_holds, seen = 0, 0, set(), []
    prefix = Prefix(tenant_id)
    for row_id, created_at, credits, buckets, key in rows:
        if created_at >= cutoff or (key in holds and holds[key].status == "pending"):
            break
        count += 1
        running += credits
        for name, value in buckets.items():
            sums[name] += value
        if key in holds:
            open_holds.add(key)
            seen.append(holds[key].id)
        elif key and key.startswith(RESOLUTION_PREFIXES):
            open_holds.discard(key.split(":", 1)[1])
        if running == 0 and not open_holds and not any(sums.values()):
            prefix.last_id, prefix.rows, prefix.hold_ids = row_id, count, list(seen)
    return prefix


def _archive_path(now: dt.datetime) -> Path:
    from qml_cli.core.settings import get_settings

    folder = get_settings().home / "archive"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"ml_usage_history-{now:%Y%m%dT%H%M%SZ}.jsonl.gz"


def _row_document(row: Any, table: str) -> str:
    document = {
        column.name: encode_value(getattr(row, column.key))
        for column in row.__table__.columns
    }
    document["_table"] = table
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def _write_archive(engine: Engine, prefixes: list[Prefix], path: Path) -> int:
    """Write the prefixes' ledger rows and credit holds to `path`, fsync it, and
    return the number of ledger rows."""
    written = 0
    with (
        gzip.open(path, "wt", encoding="utf-8") as handle,
        session_scope(engine) as session,
    ):
        for prefix in prefixes:
            rows = session.scalars(
                select(MlUsageHistory)
                .where(
                    MlUsageHistory.tenant_id == prefix.tenant_id,
                    MlUsageHistory.id <= prefix.last_id,
                )
                .order_by(MlUsageHistory.id)
            )
            for row in rows:
                handle.write(_row_document(row, "ml_usage_history") + "\n")
                written += 1
            for hold_id in prefix.hold_ids:
                hold = session.get(MlCreditHold, hold_id)
                handle.write(_row_document(hold, "ml_credit_holds") + "\n")
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        reread = sum(1 for line in handle if '"_table":"ml_usage_history"' in line)
    if reread != written:
        raise CheckFailed(
            f"archive {path} contains {reread} ledger rows, expected {written}: "
            "nothing deleted."
        )
    return written


def _encrypt_archive(path: Path) -> Path:
    """Encrypt the archive when ENCRYPTION_KEY is set; return the file kept."""
    from qml_cli.core import backup_crypto
    from qml_cli.core.settings import get_settings

    key = get_settings().values.get("ENCRYPTION_KEY")
    if not key:
        return path
    salt = backup_crypto.new_salt()
    sealed = path.with_name(path.name + ".enc")
    backup_crypto.encrypt_file(
        path, sealed, backup_crypto.derive_key(key, salt, "data")
    )
    sealed.with_name(sealed.name + ".salt").write_text(salt.hex() + "\n")
    path.unlink()
    return sealed


def _delete_prefix(engine: Engine, prefix: Prefix) -> None:
    from qml_cli.core import ledger

    with session_scope(engine) as session:
        tenant = session.get(Tenant, prefix.tenant_id)
        ledger.lock_account(session, tenant)
        deleted = session.execute(
            delete(MlUsageHistory).where(
                MlUsageHistory.tenant_id == prefix.tenant_id,
                MlUsageHistory.id <= prefix.last_id,
            )
        ).rowcount
        if deleted != prefix.rows:
            raise CheckFailed(
                f"tenant {tenant.slug}: {deleted} ledger rows matched, "
                f"{prefix.rows} were archived; nothing deleted for it."
            )
        if prefix.hold_ids:
            session.execute(
                delete(MlCreditHold).where(MlCreditHold.id.in_(prefix.hold_ids))
            )


def clean_history(
    engine: Engine, *, months: int, now: dt.datetime, dry_run: bool
) -> dict[str, Any]:
    """Archive, then delete, each tenant's deletable ledger prefix before the cutoff."""
    cutoff = history_cutoff(now, months)
    with session_scope(engine) as session:
        tenant_ids = session.scalars(
            select(MlUsageHistory.tenant_id)
            .where(MlUsageHistory.created_at < cutoff)
            .group_by(MlUsageHistory.tenant_id)
        ).all()
        prefixes = [
            deletable_prefix(session, tenant_id, cutoff) for tenant_id in tenant_ids
        ]
        old_rows = session.scalar(
            select(func.count())
            .select_from(MlUsageHistory)
            .where(MlUsageHistory.created_at < cutoff)
        )

    prefixes = [prefix for prefix in prefixes if prefix.rows]
    deletable = sum(prefix.rows for prefix in prefixes)
    report = {
        "history_cutoff": cutoff,
        "history_rows": deletable,
        "history_kept_rows": old_rows - deletable,
        "history_archive": None,
    }
    if dry_run or not prefixes:
        return report

    path = _archive_path(now)
    _write_archive(engine, prefixes, path)
    report["history_archive"] = str(_encrypt_archive(path))
    for prefix in prefixes:
        _delete_prefix(engine, prefix)
    return report


def cleanup(
    older_than: dt.timedelta,
    *,
    history_months: int = HISTORY_RETENTION_MONTHS,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Delete job runs and rotated logs older than `older_than`, and archived ledger
    history older than `history_months`; with `dry_run`, only count them."""
    if history_months < 1:
        raise InvalidInput(
            f"invalid history retention {history_months} months.",
            hint="Keep at least 1 month of ledger history.",
        )
    now = now or clock.now()
    engine = engine or get_engine()
    cutoff = now - older_than

    with session_scope(engine) as session:
        old_runs = select(JobRun.id).where(
            JobRun.started_at < cutoff, JobRun.status != "running"
        )
        run_count = session.scalar(
            select(func.count()).select_from(old_runs.subquery())
        )
        if not dry_run:
            session.execute(delete(JobRun).where(JobRun.id.in_(old_runs)))

    logs = rotated_logs(cutoff)
    partials = stale_partial_backups(cutoff)
    if not dry_run:
        for path in logs:
            path.unlink(missing_ok=True)
        for path in partials:
            shutil.rmtree(path, ignore_errors=True)

    report = {
        "dry_run": dry_run,
        "cutoff": cutoff,
        "job_runs": run_count,
        "log_files": [str(path) for path in logs],
        "partial_backups": [str(path) for path in partials],
    }
    report.update(
        clean_history(engine, months=history_months, now=now, dry_run=dry_run)
    )
    log.info("cleanup finished", extra={"operation": "logs_cleanup", "success": True})
    return report
