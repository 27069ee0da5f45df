"""`qml logs` and `qml backup`; `register` also adds `qml cron` and `qml scheduler`
from `qml_cli.cli.schedule`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qml_cli.cli.common import DryRunOption, JsonOption, YesOption, confirm_or_abort
from qml_cli.cli.output import print_json, print_table, say, warn

logs_app = typer.Typer(
    help="Job runs and retention of logs and history.", no_args_is_help=True
)
backup_app = typer.Typer(
    help="Create, list, verify and restore backups.", no_args_is_help=True
)
WaitOption = Annotated[
    float | None,
    typer.Option(
        "--wait",
        min=0,
        help="Seconds to wait for a running job of the same name before "
        "exiting 5 (default: do not wait).",
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Backup folder (default: $QML_HOME/backups).", file_okay=False
    ),
]


def register(app: typer.Typer) -> None:
    """Add the groups to the root command."""
    app.add_typer(logs_app, name="logs")
    app.add_typer(backup_app, name="backup")
    from qml_cli.cli.schedule import cron_app, scheduler_app

    app.add_typer(cron_app, name="cron")
    app.add_typer(scheduler_app, name="scheduler")


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


@backup_app.command("create")
def backup_create(
    scope: Annotated[
        str,
        typer.Option(
            "--scope", help="ml: the qml tables; all: every table of the database."
        ),
    ] = "ml",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Folder to write into (default: $QML_HOME/backups).",
            file_okay=False,
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            min=1,
            help="Keep this many regular backups of the scope; delete older "
            "ones, except those a release points at.",
        ),
    ] = None,
    wait: WaitOption = None,
    json_output: JsonOption = False,
) -> None:
    """Back up the database with a manifest of row counts and checksums."""
    from qml_cli.core import backup
    from qml_cli.core.jobs import run_job

    manifest = run_job(
        "backup-create",
        lambda: backup.create(scope=scope, output=output, keep=keep),
        wait_s=wait,
    )
    if json_output:
        print_json(manifest)
        return
    rows = sum(info["rows"] for info in manifest["tables"].values())
    size = sum(info["bytes"] for info in manifest["files"].values())
    lock = "encrypted" if manifest["encryption"] else "not encrypted"
    say(
        f"Created backup {manifest['id']} ({manifest['format']}, {lock}): "
        f"{len(manifest['tables'])} tables, {rows} rows, {_size(size)} in "
        f"{manifest['path']}."
    )
    if not manifest["encryption"]:
        warn("ENCRYPTION_KEY is not set, so the backup files are not encrypted.")
    for pruned in manifest["pruned"]:
        say(f"Deleted old backup {pruned}.")


@backup_app.command("list")
def backup_list(directory: DirOption = None, json_output: JsonOption = False) -> None:
    """List the backups, newest first."""
    from qml_cli.core import backup

    backups = backup.list_backups(directory)
    if json_output:
        print_json(backups)
        return
    if not backups:
        say(f"No backups in {backup.backup_dir(directory)}.")
        return
    print_table(
        "backups",
        ["id", "kind", "scope", "format", "revision", "rows", "size", "encrypted"],
        [
            (
                m["id"],
                m["kind"],
                m["scope"],
                m["format"],
                m["schema_revision"],
                m["rows"],
                _size(m["bytes"]),
                "yes" if m["encryption"] else "no",
            )
            for m in backups
        ],
    )


@backup_app.command("verify")
def backup_verify(
    backup_id: Annotated[str, typer.Argument(help="Backup id, or latest.")],
    directory: DirOption = None,
    skip_trial: Annotated[
        bool,
        typer.Option(
            "--skip-trial", help="Skip the trial restore into a scratch database."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Check a backup and trial-restore it into a scratch database; exit 1 if bad."""
    from qml_cli.core import backup_restore

    report = backup_restore.verify(backup_id, directory, trial=not skip_trial)
    if json_output:
        print_json(report)
    else:
        print_table(
            f"backup {report['id']}",
            ["check", "status", "detail"],
            [(c["check"], c["status"], c["detail"]) for c in report["checks"]],
        )
    if not report["ok"]:
        raise typer.Exit(1)


@backup_app.command("restore")
def backup_restore_command(
    backup_id: Annotated[str, typer.Argument(help="Backup id, or latest.")],
    directory: DirOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Replace the backed-up tables, all or nothing, after a safety backup."""
    from qml_cli.core import backup, backup_restore
    from qml_cli.core.db import get_engine, mask_url

    manifest = backup.read_manifest(backup.find_backup(backup_id, directory))
    url = mask_url(str(get_engine().url))
    confirm_or_abort(
        f"Replace the {manifest['scope']} tables of {url} with backup "
        f"{manifest['id']} from {manifest['created_at']}?",
        yes,
    )
    result = backup_restore.restore(backup_id, directory)
    if json_output:
        print_json(result)
        return
    if result["safety_backup"]:
        say(f"Took safety backup {result['safety_backup']}.")
    rows = sum(result["tables"].values())
    say(
        f"Restored backup {result['id']}: {len(result['tables'])} tables, {rows} rows, "
        f"schema revision {result['schema_revision']}."
    )


@logs_app.command("runs")
def logs_runs(
    job: Annotated[str | None, typer.Option("--job", help="Only this job.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="Rows to show.")
    ] = 20,
    json_output: JsonOption = False,
) -> None:
    """List the latest scheduled job runs, newest first."""
    from qml_cli.core.jobs import recent_runs

    runs = recent_runs(job=job, limit=limit)
    if json_output:
        print_json(runs)
        return
    print_table(
        "job runs",
        [
            "id",
            "job",
            "status",
            "started",
            "finished",
            "host",
            "pid",
            "counts",
            "error",
        ],
        [
            (
                r["id"],
                r["job"],
                r["status"],
                f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
                f"{r['finished_at']:%H:%M:%S}" if r["finished_at"] else "",
                r["host"],
                r["pid"],
                ", ".join(f"{k}={v}" for k, v in r["counts"].items()),
                r["error"] or "",
            )
            for r in runs
        ],
    )


@logs_app.command("cleanup")
def logs_cleanup(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Age of job runs and rotated log files to delete, e.g. 30d "
            "(s, m, h, d or w).",
        ),
    ] = "30d",
    history_months: Annotated[
        int,
        typer.Option(
            "--history-months",
            min=1,
            max=1200,
            help="Months of ledger history to keep; older rows are archived, then "
            "deleted.",
        ),
    ] = 12,
    dry_run: DryRunOption = False,
    wait: WaitOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete old job runs and rotated logs, and archive old ledger history."""
    from qml_cli.core import clock, retention
    from qml_cli.core.jobs import run_job

    age = clock.parse_duration(older_than)

    def clean() -> dict:
        return retention.cleanup(age, history_months=history_months, dry_run=dry_run)

    report = clean() if dry_run else run_job("logs-cleanup", clean, wait_s=wait)
    if json_output:
        print_json(report)
        return
    verb = "Would delete" if dry_run else "Deleted"
    say(
        f"{verb} {report['job_runs']} job runs and {len(report['log_files'])} rotated "
        f"log files older than {report['cutoff']:%Y-%m-%d %H:%M} UTC."
    )
    if report["partial_backups"]:
        say(f"{verb} {len(report['partial_backups'])} incomplete backup folders.")
    history = (
        f"{verb} {report['history_rows']} ledger rows from before "
        f"{report['history_cutoff']:%Y-%m-%d}"
    )
    if report["history_archive"]:
        history += f", archived to {report['history_archive']}"
    say(
        history + f"; kept {report['history_kept_rows']} older rows that current "
        "balances depend on."
    )
