"""`qml cron` and `qml scheduler`: the schedule of the periodic jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qml_cli.cli.common import JsonOption
from qml_cli.cli.output import print_json, print_table, say

cron_app = typer.Typer(help="Crontab for the scheduled jobs.", no_args_is_help=True)
scheduler_app = typer.Typer(
    help="Run the scheduled jobs in the foreground.", no_args_is_help=True
)


@cron_app.command("print")
def cron_print(
    env_file: Annotated[
        str | None,
        typer.Option(
            "--env-file",
            help="Env file the jobs read (default: the one qml was given, "
            "else /etc/qml/qml.env).",
        ),
    ] = None,
    qml_path: Annotated[
        str | None,
        typer.Option(
            "--qml", help="Path of the qml program (default: the installed one)."
        ),
    ] = None,
    log_file: Annotated[
        str | None,
        typer.Option("--log-file", help="Append each job's output to this file."),
    ] = None,
) -> None:
    """Print a crontab for the scheduled jobs (install it with crontab -)."""
    from qml_cli.core import scheduler
    from qml_cli.core.settings import get_settings

    configured = get_settings().env_file
    chosen = env_file or (
        str(Path(configured).resolve()) if configured else "/etc/qml/qml.env"
    )
    typer.echo(
        scheduler.crontab(
            chosen, command=[qml_path] if qml_path else None, log_file=log_file
        ),
        nl=False,
    )


@scheduler_app.command("run")
def scheduler_run(
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=1,
            help="Seconds between schedule checks (default: SCHEDULER_INTERVAL).",
        ),
    ] = None,
) -> None:
    """Run the crontab's jobs in the foreground; SIGTERM stops after the current job."""
    from qml_cli.core import scheduler
    from qml_cli.core.db import get_engine
    from qml_cli.core.settings import get_settings

    settings = get_settings()
    history = scheduler.last_runs(get_engine())
    env_file = str(Path(settings.env_file).resolve()) if settings.env_file else None
    runner = scheduler.ProcessRunner(env_file)
    loop = scheduler.Scheduler(
        scheduler.SCHEDULE,
        runner,
        scheduler.SystemClock(),
        interval_s=interval or settings.scheduler_interval / 1000,
        history=history,
    )
    scheduler.install_signal_handlers(loop, runner)
    say(f"Scheduler running {len(scheduler.SCHEDULE)} jobs; stop it with SIGTERM.")
    loop.run()
    say(f"Scheduler stopped after {len(runner.results)} job runs.")


@scheduler_app.command("status")
def scheduler_status(json_output: JsonOption = False) -> None:
    """Show each scheduled job's last run and next slot; exit 1 if one is overdue."""
    from qml_cli.core import clock, scheduler
    from qml_cli.core.db import get_engine

    report = scheduler.status(get_engine(), clock.now())
    if json_output:
        print_json(report)
    else:
        print_table(
            "scheduled jobs",
            ["job", "schedule", "last run", "status", "next run", "recent"],
            [
                (
                    j["job"],
                    j["schedule"],
                    f"{j['last_started_at']:%Y-%m-%d %H:%M}"
                    if j["last_started_at"]
                    else "never",
                    j["last_status"] or "",
                    f"{j['next_run_at']:%Y-%m-%d %H:%M}",
                    "yes" if j["recent"] else "no",
                )
                for j in report
            ],
        )
    if not all(job["recent"] for job in report):
        raise typer.Exit(1)
