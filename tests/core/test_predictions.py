"""Auto-predictions and the `predict run` job on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core.db import session_scope
from qml_cli.core.models import AutoPrediction, PredictionRun

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def write_series(path, days: int = 120) -> str:
    start = dt.date(2024, 1, 1)
    lines = ["date,value"]
    for day in range(days):
        weekly = 20 * math.sin(2 * math.pi * day / 7)
        lines.append(f"{start + dt.timedelta(days=day)},{100 + day * 0.5 + weekly:.2f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def setup_tenant(tmp_path, slug="acme", plan="quantum_plus", predictions=1):
    assert invoke("tenants", "create", slug, "--plan", plan).exit_code == 0
    csv_path = write_series(tmp_path / f"{slug}.csv")
    assert invoke("data", "import", slug, "sales", csv_path).exit_code == 0
    for index in range(predictions):
        result = invoke(
            "predict",
            "create",
            slug,
            f"p{index}",
            "--metric",
            "sales",
            "--horizon",
            "7",
            "--start",
            "now",
        )
        assert result.exit_code == 0, result.output


def available(slug: str) -> int:
    return json.loads(invoke("credits", "status", slug, "--json").output)["available"]


def test_run_due_stores_forecast_and_charges(tmp_path, engine):
    setup_tenant(tmp_path)
    result = invoke("predict", "run", "--due", "--json")
    summary = json.loads(result.output)
    assert result.exit_code == 0
    assert summary["run"] == 1
    assert summary["credits_charged"] == 1
    assert available("acme") == 299
    shown = json.loads(invoke("predict", "show", "acme/p0", "--json").output)
    assert len(shown["result"]["point"]) == 7
    assert set(shown["result"]["intervals"]) == {"80", "95"}
    assert invoke("credits", "audit").exit_code == 0


def test_run_due_schedules_next_run_in_future(tmp_path, engine):
    setup_tenant(tmp_path)
    invoke("predict", "run", "--due")
    shown = json.loads(invoke("predict", "show", "1", "--json").output)
    assert dt.datetime.fromisoformat(shown["next_run_at"]) > dt.datetime.now(dt.UTC)
    again = json.loads(invoke("predict", "run", "--due", "--json").output)
    assert again["run"] == 0


def test_missed_slots_run_once(tmp_path, engine):
    setup_tenant(tmp_path)
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    with session_scope() as session:
        session.execute(update(AutoPrediction).values(next_run_at=week_ago))
    summary = json.loads(invoke("predict", "run", "--due", "--json").output)
    assert summary["run"] == 1
    assert json.loads(invoke("predict", "run", "--due", "--json").output)["run"] == 0


def test_failed_run_keeps_last_result_and_charges_nothing(tmp_path, engine):
    from qml_cli.core.models import MetricPoint

    setup_tenant(tmp_path)
    invoke("predict", "run", "--due")
    good = json.loads(invoke("predict", "show", "1", "--json").output)["result"]
    with session_scope() as session:
        session.execute(MetricPoint.__table__.delete())
    result = invoke("predict", "run", "--id", "1", "--json")
    summary = json.loads(result.output)
    assert result.exit_code == 1
    assert summary["failed"] == 1
    assert "no data for metric 'sales'" in summary["predictions"][0]["error"]
    shown = json.loads(invoke("predict", "show", "1", "--json").output)
    assert shown["result"] == good
    assert shown["last_error"] == summary["predictions"][0]["error"]
    assert available("acme") == 299
    assert invoke("credits", "audit").exit_code == 0


def test_insufficient_credits_skips_run(tmp_path, engine):
    setup_tenant(tmp_path, plan="standard")
    invoke(
        "credits",
        "consume",
        "acme",
        "30",
        "--operation",
        "prediction",
        "--idempotency-key",
        "drain",
    )
    result = invoke("predict", "run", "--due", "--json")
    summary = json.loads(result.output)
    assert result.exit_code == 0
    assert summary["skipped_reasons"] == {"insufficient_credits": 1}
    assert summary["credits_charged"] == 0


def test_daily_limit_of_plan_is_enforced(tmp_path, engine):
    setup_tenant(tmp_path, plan="standard", predictions=4)
    summary = json.loads(invoke("predict", "run", "--due", "--json").output)
    assert summary["run"] == 3
    assert summary["skipped_reasons"] == {"daily_limit": 1}


def test_disabled_auto_predictions_run_nothing(tmp_path, engine, monkeypatch):
    from qml_cli.core import settings

    setup_tenant(tmp_path)
    monkeypatch.setenv("AUTO_PREDICTIONS_ENABLED", "false")
    settings.reset_settings()
    summary = json.loads(invoke("predict", "run", "--due", "--json").output)
    assert summary["enabled"] is False
    assert summary["run"] == 0


def test_credits_disabled_runs_at_cost_zero(tmp_path, engine, monkeypatch):
    from qml_cli.core import settings

    setup_tenant(tmp_path)
    monkeypatch.setenv("ML_CREDITS_ENABLED", "false")
    settings.reset_settings()
    summary = json.loads(invoke("predict", "run", "--due", "--json").output)
    assert summary["run"] == 1
    assert summary["credits_charged"] == 0
    assert available("acme") == 300


BAD_SCHEDULES = [
    ("61 * * * *", "invalid cron schedule"),
    ("0 0 30 2 *", "never fires"),
    ("* * *", "expected 5 fields"),
    ("", "invalid cron schedule"),
    ("@reboot", "expected 5 fields"),
]


@pytest.mark.parametrize(("schedule", "message"), BAD_SCHEDULES)
def test_create_rejects_bad_schedule(tmp_path, sqlite_engine, schedule, message):
    setup_tenant(tmp_path, predictions=0)
    result = invoke(
        "predict", "create", "acme", "x", "--metric", "sales", "--schedule", schedule
    )
    assert result.exit_code == 2
    assert message in result.output
    assert json.loads(invoke("predict", "list", "--json").output) == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--type", "astrology", "unsupported prediction type 'astrology'"),
        ("--horizon", "0", "invalid --horizon 0"),
        ("--level", "100", "invalid --level 100"),
        ("--timezone", "Mars/Olympus", "unknown time zone"),
        ("--metric", "nothing", "no data for metric 'nothing'"),
    ],
)
def test_create_rejects_bad_option(tmp_path, sqlite_engine, option, value, message):
    setup_tenant(tmp_path, predictions=0)
    args = ["predict", "create", "acme", "x", "--metric", "sales", option, value]
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_schedule_uses_prediction_timezone(sqlite_engine):
    from qml_cli.core.predictions import next_fire

    after = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    fire = next_fire("0 9 * * *", "America/Sao_Paulo", after)
    assert fire == dt.datetime(2026, 7, 2, 12, 0, tzinfo=dt.UTC)


def test_two_concurrent_runs_run_each_once(tmp_path, pg_engine, pg_url):
    for index in range(3):
        setup_tenant(tmp_path, slug=f"t{index}", plan="quantum_premium", predictions=4)
    env = {**os.environ, "DATABASE_URL": pg_url, "ML_MAX_CONCURRENT": "1"}
    command = [sys.executable, "-m", "qml_cli", "predict", "run", "--due", "--json"]
    workers = [
        subprocess.Popen(
            command,
            env={**env, "QML_WORKER_NAME": f"host-{index}"},
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    summaries = [json.loads(worker.communicate(timeout=300)[0]) for worker in workers]
    assert sum(s["run"] for s in summaries) == 12
    with session_scope() as session:
        per_prediction = session.execute(
            select(PredictionRun.prediction_id, func.count()).group_by(
                PredictionRun.prediction_id
            )
        ).all()
    assert len(per_prediction) == 12
    assert {count for _, count in per_prediction} == {1}
    assert sum(s["credits_charged"] for s in summaries) == 12
    assert invoke("credits", "audit").exit_code == 0


def test_overlapping_run_of_same_worker_exits_5(tmp_path, pg_engine, pg_url):
    from qml_cli.core.jobs import job_lock

    setup_tenant(tmp_path)
    with job_lock(pg_engine, "predict-run-due@host-a"):
        env = {**os.environ, "DATABASE_URL": pg_url, "QML_WORKER_NAME": "host-a"}
        result = subprocess.run(
            [sys.executable, "-m", "qml_cli", "predict", "run", "--due"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 5
    assert json.loads(invoke("predict", "run", "--due", "--json").output)["run"] == 1
