"""The schedule of the periodic jobs, as a crontab and as a foreground loop.

Schedules are cron expressions in UTC. The loop runs a job when a slot of its
schedule has passed since the slot it last handled. After a pause (a stopped
container, a long job) it runs a missed job once, not once per missed slot.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from qml_cli.core import clock
from qml_cli.core.logs import get_logger
from qml_cli.errors import EXIT_LOCKED

log = get_logger("scheduler")


@dataclass(frozen=True)
class ScheduledJob:
    """A periodic qml command; `name` is its lock and `job_runs` name."""

    name: str
    schedule: str
    arguments: tuple[str, ...]
    description: str


SCHEDULE: tuple[ScheduledJob, ...] = (
    ScheduledJob(
        "predict-run-due",
        "0 * * * *",
        ("predict", "run", "--due"),
        "hourly: run the scheduled predictions that are due",
    ),
    ScheduledJob(
        "credits-reset-monthly",
        "5 * * * *",
        ("credits", "reset-monthly"),
        "hourly: reset the credits of tenants whose period ended",
    ),
    ScheduledJob(
        "logs-cleanup",
        "0 2 * * *",
        ("logs", "cleanup", "--older-than", "30d"),
        "daily at 02:00: delete old job runs and logs, archive old history",
    ),
    ScheduledJob(
        "backup-create",
        "0 3 * * *",
        ("backup", "create", "--scope", "ml", "--keep", "14"),
        "daily at 03:00: back up the ML tables, keeping 14",
    ),
)


def previous_slot(expression: str, moment: dt.datetime) -> dt.datetime:
    """Return the latest fire time of `expression` at or before `moment` (UTC)."""
    from croniter import croniter

    minute = moment.astimezone(dt.UTC).replace(second=0, microsecond=0)
    if croniter.match(expression, minute):
        return minute
    return croniter(expression, minute).get_prev(dt.datetime).astimezone(dt.UTC)


def next_slot(expression: str, moment: dt.datetime) -> dt.datetime:
    """Return the first fire time of `expression` after `moment` (UTC)."""
    from croniter import croniter

    return (
        croniter(expression, moment.astimezone(dt.UTC))
        .get_next(dt.datetime)
        .astimezone(dt.UTC)
    )


def qml_command() -> list[str]:
    """Return the command that starts this qml: the installed script, else Python."""
    installed = shutil.which("qml")
    if installed:
        return [installed]
    return [sys.executable, "-m", "qml_cli"]


def _crontab_word(word: str) -> str:
    # cron turns an unescaped % into a newline.
    return shlex.quote(word).replace("%", "\\%")


def crontab(
    env_file: str, *, command: Sequence[str] | None = None, log_file: str | None = None
) -> str:
    """Render the schedule as a crontab whose lines run qml with `env_file`.

    Raises `InvalidInput` for a path with control characters (a newline would
    inject crontab lines) or a relative path (cron runs jobs from $HOME)."""
    from qml_cli.errors import InvalidInput

    words = list(command or qml_command())
    for label, value in [
        ("--env-file", env_file),
        ("--log-file", log_file),
        *(("--qml", word) for word in words[:1]),
    ]:
        if value is None:
            continue
        if not value.isprintable():
            raise InvalidInput(
                f"invalid {label} {value!r}: it contains control characters.",
                hint="Pass a plain path.",
            )
        if label != "--qml" and not value.startswith("/"):
            raise InvalidInput(
                f"invalid {label} {value!r}: cron runs jobs from the home folder, "
                "so the path must be absolute.",
                hint=f"Use an absolute path, e.g. $(realpath {value}).",
            )
    lines = [
        "# qml scheduled jobs, written by `qml cron print`. Times are UTC.",
        "# Each job takes its own lock: an overlapping run exits 5 and changes "
        "nothing.",
        "# CRON_TZ is honoured by cronie; other cron daemons use the system time zone.",
        "CRON_TZ=UTC",
        "SHELL=/bin/sh",
        "",
    ]
    for job in SCHEDULE:
        parts = [*words, "--env-file", env_file, *job.arguments]
        line = " ".join(_crontab_word(part) for part in parts)
        if log_file:
            line += f" >> {_crontab_word(log_file)} 2>&1"
        lines += [f"# {job.description}", f"{job.schedule} {line}"]
    return "\n".join(lines) + "\n"


def last_runs(engine: Engine) -> dict[str, dt.datetime]:
    """Return the latest start time of each job in `job_runs`; per-worker runs
    (`predict-run-due@host`) count for their job."""
    from qml_cli.core.db import session_scope
    from qml_cli.core.jobs import require_job_table
    from qml_cli.core.models import JobRun

    require_job_table(engine)
    with session_scope(engine) as session:
        rows = session.execute(
            select(JobRun.job, func.max(JobRun.started_at)).group_by(JobRun.job)
        ).all()
    latest: dict[str, dt.datetime] = {}
    for name, started in rows:
        base = name.split("@", 1)[0]
        if started is not None and (base not in latest or started > latest[base]):
            latest[base] = started
    return latest


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time (or QML_FAKE_NOW); `sleep` returns early when `wake` is set."""

    def __init__(self) -> None:
        self.wake = threading.Event()

    def now(self) -> dt.datetime:
        return clock.now()

    def sleep(self, seconds: float) -> None:
        self.wake.wait(seconds)


class Scheduler:
    """Run `jobs` at their slots with `runner(job)` until `stop()` is called."""

    def __init__(
        self,
        jobs: Sequence[ScheduledJob],
        runner: Callable[[ScheduledJob], Any],
        clock_: Clock,
        *,
        interval_s: float,
        history: dict[str, dt.datetime] | None = None,
    ) -> None:
        self.jobs, self.runner, self.clock = list(jobs), runner, clock_
        self.interval_s = interval_s
        self.stopping = False
        now = clock_.now()
        history = history or {}
        # A job never run waits for its next slot. One whose last run is before its
        # latest slot is due at once, for that one slot only.
        self.handled: dict[str, dt.datetime] = {}
        for job in self.jobs:
            latest = previous_slot(job.schedule, now)
            last = history.get(job.name)
            if last is None or previous_slot(job.schedule, last) >= latest:
                self.handled[job.name] = latest
            else:
                self.handled[job.name] = previous_slot(job.schedule, last)

    def stop(self) -> None:
        self.stopping = True
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake.set()

    def due(self, now: dt.datetime) -> list[tuple[ScheduledJob, dt.datetime]]:
        """Return the jobs with a slot after the one they handled, with that slot."""
        found = []
        for job in self.jobs:
            slot = previous_slot(job.schedule, now)
            if slot > self.handled[job.name]:
                found.append((job, slot))
        return found

    def tick(self) -> int:
        """Run every due job once; return how many ran."""
        ran = 0
        for job, slot in self.due(self.clock.now()):
            if self.stopping:
                break
            self.handled[job.name] = slot
            log.info("job due", extra={"operation": job.name})
            try:
                self.runner(job)
            except Exception as exc:  # one broken job must not stop the schedule
                log.error(
                    "job could not run",
                    extra={"operation": job.name, "success": False, "error": repr(exc)},
                )
            ran += 1
        return ran

    def run(self, max_ticks: int | None = None) -> None:
        """Loop until `stop()`: run due jobs, then sleep for the check interval."""
        log.info("scheduler started", extra={"operation": "scheduler"})
        ticks = 0
        while not self.stopping and (max_ticks is None or ticks < max_ticks):
            self.tick()
            ticks += 1
            if not self.stopping:
                self.clock.sleep(self.interval_s)
        log.info("scheduler stopped", extra={"operation": "scheduler"})


class ProcessRunner:
    """Run each job as a child `qml` process, in its own session so that a Ctrl-C
    meant for the scheduler does not interrupt the job."""

    def __init__(self, env_file: str | None) -> None:
        self.env_file = env_file
        self.current: subprocess.Popen | None = None
        self.results: list[tuple[str, int]] = []

    def __call__(self, job: ScheduledJob) -> int:
        arguments = qml_command()
        if self.env_file:
            arguments += ["--env-file", self.env_file]
        self.current = subprocess.Popen(
            [*arguments, *job.arguments], start_new_session=True
        )
        code = self.current.wait()
        self.current = None
        self.results.append((job.name, code))
        if code == EXIT_LOCKED:
            log.info(
                "job skipped: another run has its lock", extra={"operation": job.name}
            )
        elif code:
            log.error(
                "job failed",
                extra={
                    "operation": job.name,
                    "success": False,
                    "error": f"exit code {code}",
                },
            )
        return code

    def terminate(self) -> None:
        if self.current is not None and self.current.poll() is None:
            self.current.send_signal(signal.SIGTERM)


def install_signal_handlers(scheduler: Scheduler, runner: ProcessRunner) -> None:
    """SIGTERM or SIGINT stops the loop after the current job; a second one also
    sends SIGTERM to that job."""

    def handle(signum, _frame) -> None:
        if scheduler.stopping:
            runner.terminate()
        log.info("stop requested", extra={"operation": "scheduler"})
        scheduler.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def status(engine: Engine, now: dt.datetime) -> list[dict[str, Any]]:
    """Return each scheduled job's last run, its next slot, and whether it ran in
    its latest two slots."""
    from qml_cli.core.jobs import recent_runs

    report = []
    for job in SCHEDULE:
        runs = recent_runs(engine, job=job.name, limit=1)
        last = runs[0] if runs else None
        latest = previous_slot(job.schedule, now)
        grace_start = previous_slot(job.schedule, latest - dt.timedelta(seconds=1))
        recent = bool(
            last
            and last["started_at"] >= grace_start
            and last["status"] in ("ok", "running")
        )
        report.append(
            {
                "job": job.name,
                "schedule": job.schedule,
                "command": " ".join(("qml", *job.arguments)),
                "last_started_at": last["started_at"] if last else None,
                "last_status": last["status"] if last else None,
                "last_error": last["error"] if last else None,
                "next_run_at": next_slot(job.schedule, now),
                "recent": recent,
            }
        )
    return report
