"""The schedule: crontab output, slots, catch-up and the foreground loop."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import scheduler
from qml_cli.core.db import session_scope
from qml_cli.core.models import JobRun
from qml_cli.core.scheduler import ScheduledJob, Scheduler

runner = CliRunner()
START = dt.datetime(2027, 3, 10, 0, 30, tzinfo=dt.UTC)
HOURLY = ScheduledJob("hourly", "0 * * * *", ("hourly",), "hourly")
DAILY = ScheduledJob("daily", "0 2 * * *", ("daily",), "daily at 02:00")


class FakeClock:
    """A clock that moves only when the loop sleeps."""

    def __init__(self, start: dt.datetime) -> None:
        self.current = start

    def now(self) -> dt.datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += dt.timedelta(seconds=seconds)


class Recorder:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.runs: list[tuple[str, dt.datetime]] = []

    def __call__(self, job: ScheduledJob) -> int:
        self.runs.append((job.name, self.clock.now()))
        return 0


def _loop(history=None, start=START, interval_s=60.0):
    clock = FakeClock(start)
    recorder = Recorder(clock)
    loop = Scheduler(
        [HOURLY, DAILY], recorder, clock, interval_s=interval_s, history=history
    )
    return loop, recorder, clock


def test_runs_each_job_once_per_slot():
    history = {
        "hourly": START - dt.timedelta(minutes=30),
        "daily": START - dt.timedelta(hours=22, minutes=30),
    }
    loop, recorder, _ = _loop(history)

    loop.run(max_ticks=26 * 60)

    hourly = [moment for name, moment in recorder.runs if name == "hourly"]
    daily = [moment for name, moment in recorder.runs if name == "daily"]
    slots = [scheduler.previous_slot(HOURLY.schedule, moment) for moment in hourly]
    assert len(hourly) == 26
    assert len(set(slots)) == len(slots)
    assert [moment.hour for moment in daily] == [2, 2]
    assert all(
        moment - slot < dt.timedelta(minutes=1)
        for moment, slot in zip(hourly, slots, strict=True)
    )


def test_missed_slots_run_once():
    loop, recorder, _ = _loop({"hourly": START, "daily": START})

    loop.interval_s = 5 * 3600
    loop.run(max_ticks=2)

    assert [name for name, _ in recorder.runs] == ["hourly", "daily"]


def test_startup_catches_up_once():
    history = {
        "hourly": START - dt.timedelta(hours=3),
        "daily": START - dt.timedelta(hours=2),
    }
    loop, recorder, _ = _loop(history)

    loop.run(max_ticks=1)

    assert [name for name, _ in recorder.runs] == ["hourly"]


def test_never_run_job_waits_for_next_slot():
    loop, recorder, clock = _loop({})

    loop.run(max_ticks=29)

    assert recorder.runs == []
    loop.run(max_ticks=2)
    assert [name for name, _ in recorder.runs] == ["hourly"]
    assert clock.now().hour == 1


def test_stop_during_job_ends_loop_after_it():
    clock = FakeClock(START)
    ran = []

    def stopping_runner(job):
        ran.append(job.name)
        loop.stop()

    loop = Scheduler(
        [HOURLY, DAILY],
        stopping_runner,
        clock,
        interval_s=60,
        history={
            "hourly": START - dt.timedelta(hours=2),
            "daily": START - dt.timedelta(days=2),
        },
    )
    loop.run()

    assert ran == ["hourly"]


def test_previous_slot_includes_exact_minute():
    moment = dt.datetime(2027, 1, 1, 10, 0, tzinfo=dt.UTC)

    assert scheduler.previous_slot("0 * * * *", moment) == moment
    assert scheduler.previous_slot(
        "0 * * * *", moment - dt.timedelta(microseconds=1)
    ) == moment - dt.timedelta(hours=1)


def test_crontab_lists_every_job_with_env_file():
    text = scheduler.crontab(
        "/etc/qml/qml env",
        command=["/opt/qml/bin/qml"],
        log_file="/var/log/qml/cron.log",
    )

    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "CRON_TZ=UTC"
    assert lines[2] == (
        "0 * * * * /opt/qml/bin/qml --env-file '/etc/qml/qml env' predict "
        "run --due >> /var/log/qml/cron.log 2>&1"
    )
    assert [line.split()[:5] for line in lines[2:]] == [
        ["0", "*", "*", "*", "*"],
        ["5", "*", "*", "*", "*"],
        ["0", "2", "*", "*", "*"],
        ["0", "3", "*", "*", "*"],
    ]


def test_crontab_escapes_percent():
    text = scheduler.crontab("/etc/qml/100%.env", command=["qml"])

    assert "--env-file /etc/qml/100\\%.env backup" in text


def test_cli_cron_print_uses_given_paths(sqlite_engine):
    result = runner.invoke(
        app,
        [
            "cron",
            "print",
            "--qml",
            "/usr/local/bin/qml",
            "--env-file",
            "/etc/qml/qml.env",
        ],
    )

    assert result.exit_code == 0
    assert (
        "0 3 * * * /usr/local/bin/qml --env-file /etc/qml/qml.env backup create "
        "--scope ml --keep 14"
    ) in result.output


def test_status_flags_overdue_jobs(engine):
    now = dt.datetime(2027, 3, 10, 10, 30, tzinfo=dt.UTC)
    with session_scope(engine) as session:
        for job in scheduler.SCHEDULE:
            started = now - dt.timedelta(minutes=20)
            if job.name == "backup-create":
                started = now - dt.timedelta(days=3)
            session.add(
                JobRun(
                    job=job.name,
                    status="ok",
                    started_at=started,
                    finished_at=started,
                    counts={},
                )
            )

    report = {item["job"]: item for item in scheduler.status(engine, now)}

    assert report["backup-create"]["recent"] is False
    assert report["predict-run-due"]["recent"] is True
    assert report["logs-cleanup"]["next_run_at"] == dt.datetime(
        2027, 3, 11, 2, 0, tzinfo=dt.UTC
    )


def test_last_runs_reads_latest_start(engine):
    first = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    with session_scope(engine) as session:
        for days in (0, 3, 1):
            session.add(
                JobRun(
                    job="logs-cleanup",
                    status="ok",
                    counts={},
                    started_at=first + dt.timedelta(days=days),
                )
            )

    assert scheduler.last_runs(engine) == {"logs-cleanup": first + dt.timedelta(days=3)}


@pytest.mark.slow
def test_scheduler_run_stops_on_sigterm(sqlite_engine, tmp_path):
    log_file = tmp_path / "scheduler.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "qml_cli", "scheduler", "run", "--interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG_LEVEL": "INFO", "QML_LOG_FILE": str(log_file)},
    )
    deadline = time.monotonic() + 60
    while "scheduler started" not in (
        log_file.read_text() if log_file.exists() else ""
    ):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)

    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=60)

    assert process.returncode == 0
    assert "Scheduler stopped after 0 job runs." in stdout
    assert "scheduler stopped" in log_file.read_text()


def test_worker_runs_count_for_their_job(engine):
    moment = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    with session_scope(engine) as session:
        session.add(
            JobRun(
                job="predict-run-due@web-1", status="ok", counts={}, started_at=moment
            )
        )

    assert scheduler.last_runs(engine) == {"predict-run-due": moment}
    report = {item["job"]: item for item in scheduler.status(engine, moment)}
    assert report["predict-run-due"]["last_started_at"] == moment


def test_runner_error_does_not_stop_loop():
    clock = FakeClock(START)
    ran = []

    def broken_runner(job):
        ran.append(job.name)
        raise OSError("qml not found")

    loop = Scheduler(
        [HOURLY, DAILY],
        broken_runner,
        clock,
        interval_s=60,
        history={
            "hourly": START - dt.timedelta(hours=2),
            "daily": START - dt.timedelta(days=2),
        },
    )
    loop.run(max_ticks=1)

    assert ran == ["hourly", "daily"]
