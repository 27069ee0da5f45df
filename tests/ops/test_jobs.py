"""Job locks and `job_runs` rows, with real processes contending for the lock."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import jobs
from qml_cli.core.db import session_scope
from qml_cli.core.models import JobRun
from qml_cli.errors import CheckFailed, LockHeld

runner = CliRunner()


def _runs(engine, name):
    with session_scope(engine) as session:
        return session.scalars(
            select(JobRun).where(JobRun.job == name).order_by(JobRun.id)
        ).all()


def test_run_job_records_ok_row(engine):
    result = jobs.run_job(
        "sample", lambda: {"due": 3, "resets": [1, 2], "dry_run": False}
    )

    assert result == {"due": 3, "resets": [1, 2], "dry_run": False}
    [run] = _runs(engine, "sample")
    assert run.status == "ok"
    assert run.counts == {"due": 3, "resets": 2}
    assert run.pid == os.getpid()
    assert run.host == socket.gethostname()
    assert run.finished_at >= run.started_at
    assert run.error is None


def test_run_job_records_failure_and_reraises(engine):
    def broken():
        raise CheckFailed("source table missing")

    with pytest.raises(CheckFailed):
        jobs.run_job("sample", broken)

    [run] = _runs(engine, "sample")
    assert run.status == "failed"
    assert run.error == "source table missing"
    assert run.finished_at is not None


def test_second_run_hits_lock(engine, lock_holder):
    holder = lock_holder("sample")

    with pytest.raises(LockHeld) as raised:
        jobs.run_job("sample", lambda: {"ran": 1})

    message = str(raised.value)
    assert raised.value.exit_code == 5
    assert f"pid {holder.pid}" in message
    assert f"host {socket.gethostname()}"[:40] in message
    assert "since 20" in message
    assert [run.status for run in _runs(engine, "sample")] == ["running"]
    assert holder.release() == 0
    assert [run.status for run in _runs(engine, "sample")] == ["ok"]


def test_other_job_names_do_not_contend(engine, lock_holder):
    lock_holder("sample")

    assert jobs.run_job("another", lambda: {"ran": 1}) == {"ran": 1}


def test_wait_queues_behind_holder(engine, lock_holder):
    holder = lock_holder("sample")
    timer = threading.Timer(0.5, holder.release_file.write_text, args=("go",))
    timer.start()

    result = jobs.run_job("sample", lambda: {"ran": 1}, wait_s=60)

    timer.join()
    assert result == {"ran": 1}
    assert [run.status for run in _runs(engine, "sample")] == ["ok", "ok"]


def test_killed_holder_frees_lock_and_is_marked_abandoned(engine, lock_holder):
    holder = lock_holder("sample")
    holder.kill()

    jobs.run_job("sample", lambda: {"ran": 1}, wait_s=30)

    runs = _runs(engine, "sample")
    assert [run.status for run in runs] == ["abandoned", "ok"]
    assert "without recording a result" in runs[0].error


def test_negative_wait_is_invalid(engine):
    with pytest.raises(Exception) as raised:
        jobs.run_job("sample", lambda: {}, wait_s=-1)
    assert raised.value.exit_code == 2


def test_reset_monthly_cli_exits_5_while_locked(engine, lock_holder):
    holder = lock_holder("credits-reset-monthly")

    result = runner.invoke(app, ["credits", "reset-monthly"])

    assert result.exit_code == 5
    assert "job 'credits-reset-monthly' is already running" in result.output
    assert f"pid {holder.pid}" in result.output


def test_reset_monthly_cli_records_job_run(engine):
    result = runner.invoke(app, ["credits", "reset-monthly", "--wait", "5", "--json"])

    assert result.exit_code == 0
    [run] = _runs(engine, "credits-reset-monthly")
    assert run.status == "ok"
    assert run.counts["due"] == 0
    assert run.counts["resets"] == 0


def test_reset_monthly_dry_run_records_nothing(engine):
    result = runner.invoke(app, ["credits", "reset-monthly", "--dry-run"])

    assert result.exit_code == 0
    assert _runs(engine, "credits-reset-monthly") == []


def test_pg_holder_read_from_pg_locks(pg_engine, lock_holder):
    holder = lock_holder("sample")

    description = jobs._pg_holder(pg_engine, "sample")

    assert description is not None
    assert f"pid {holder.pid}" in description


def test_partial_failure_recorded_as_failed(engine):
    jobs.run_job("sample", lambda: {"due": 2, "failed": [{"tenant": "acme"}]})

    [run] = _runs(engine, "sample")
    assert run.status == "failed"
    assert run.error == "1 items failed; see the job's output"
