"""Fixtures of the operations tests: a separate process that holds a job's lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from qml_cli.core.jobs import run_job

name, ready, release = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

def hold():
    ready.write_text("locked")
    while not release.exists():
        time.sleep(0.05)
    return {"held": 1}

run_job(name, hold)
"""


class LockHolder:
    """A child process that runs job `name` until `release()` is called."""

    def __init__(self, name: str, folder: Path) -> None:
        self.ready = folder / f"{name}.ready"
        self.release_file = folder / f"{name}.release"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                HOLDER_SCRIPT,
                name,
                str(self.ready),
                str(self.release_file),
            ],
            env=dict(os.environ),
        )
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"lock holder exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("lock holder did not take the lock within 60 s")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> int:
        self.release_file.write_text("go")
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)


@pytest.fixture
def lock_holder(tmp_path):
    """Start lock holders by job name; every one still running is killed afterwards."""
    holders: list[LockHolder] = []

    def start(name: str) -> LockHolder:
        holder = LockHolder(name, tmp_path)
        holders.append(holder)
        return holder

    yield start
    for holder in holders:
        if holder.process.poll() is None:
            holder.kill()


def populate(engine, slug: str = "acme") -> None:
    """Write a tenant with ledger rows, metrics, a prediction and a job run, including
    a SQL NULL and a JSON `null` in nullable JSON columns."""
    import datetime as dt

    from sqlalchemy import insert, null

    from qml_cli.core import credits, tenants
    from qml_cli.core.db import session_scope
    from qml_cli.core.models import AutoPrediction, JobRun, MetricPoint

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with session_scope(engine) as session:
        tenant = tenants.create_tenant(
            session,
            slug,
            name=f"{slug} Ltd",
            plan_name="standard",
            timezone="Europe/Berlin",
            is_test=False,
        )
        credits.grant(session, tenant, 50, reason="support ticket", key=f"{slug}-grant")
        credits.consume(session, tenant, 7, operation="prediction", key=f"{slug}-run-1")
        session.add_all(
            [
                MetricPoint(
                    tenant_id=tenant.id,
                    metric="revenue",
                    ts=start + dt.timedelta(days=day),
                    value=100.5 + day,
                )
                for day in range(20)
            ]
        )
        session.add(
            JobRun(
                job="backup-create",
                status="ok",
                counts={"files": 2},
                started_at=start,
                finished_at=start,
            )
        )
        session.flush()
        common = {
            "tenant_id": tenant.id,
            "prediction_type": "forecast",
            "metric": "revenue",
            "horizon": 7,
            "levels": [80, 95],
            "options": {},
            "schedule": "0 9 * * *",
            "timezone": "UTC",
            "next_run_at": start,
            "run_count": 0,
            "success_count": 0,
            "is_active": True,
            "created_at": start,
        }
        session.execute(
            insert(AutoPrediction), [{**common, "name": f"{slug}-sql-null"}]
        )
        session.execute(
            insert(AutoPrediction).values(
                **common, name=f"{slug}-json-null", last_result=None
            )
        )
        session.execute(
            insert(AutoPrediction).values(
                **common, name=f"{slug}-null-expr", last_result=null()
            )
        )
