"""History, stats, the audit and low-credit alerts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import credit_reports, credits
from qml_cli.core.models import CreditAlert, MlCreditGrant, MlCredits, MlUsageHistory
from qml_cli.errors import InvalidInput

from .conftest import T0, create, tenant_of

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def consume(db, slug, amount, key, *, operation="prediction", now=T0, ms=None):
    with db() as session:
        return credits.consume(
            session,
            tenant_of(session, slug),
            amount,
            operation=operation,
            key=key,
            now=now,
            processing_time_ms=ms,
        )


def history(db, slug, **options):
    with db() as session:
        return credit_reports.history(session, tenant_of(session, slug), **options)


def test_history_filters_by_time_and_operation(db):
    create(db, "acme")
    for hour, operation in enumerate(["prediction", "anomaly", "prediction"], start=1):
        consume(
            db,
            "acme",
            1,
            f"k{hour}",
            operation=operation,
            now=T0 + dt.timedelta(hours=hour),
        )
    rows = history(
        db, "acme", since=T0 + dt.timedelta(hours=1), until=T0 + dt.timedelta(hours=3)
    )
    assert [row["idempotency_key"] for row in rows] == ["k2", "k1"]
    rows = history(db, "acme", operation="prediction")
    assert [row["idempotency_key"] for row in rows] == ["k3", "k1"]


def test_history_pages_newest_first(db):
    create(db, "acme")
    for number in range(5):
        consume(db, "acme", 1, f"k{number}", now=T0 + dt.timedelta(minutes=number))
    page = history(db, "acme", limit=2, offset=1)
    assert [row["idempotency_key"] for row in page] == ["k3", "k2"]


@pytest.mark.parametrize(
    "options",
    [{"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"since": T0, "until": T0}],
)
def test_history_rejects_bad_options(db, options):
    create(db, "acme")
    with pytest.raises(InvalidInput):
        history(db, "acme", **options)


def test_history_cli_json(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    invoke(
        "credits",
        "consume",
        "acme",
        "2",
        "--operation",
        "prediction",
        "--idempotency-key",
        "k",
    )
    rows = json.loads(
        invoke(
            "credits", "history", "acme", "--operation", "prediction", "--json"
        ).output
    )
    assert [(row["kind"], row["credits"], row["balance_after"]) for row in rows] == [
        ("consume", -2, 28)
    ]


def test_stats_by_operation(db):
    create(db, "acme")
    consume(db, "acme", 2, "a", ms=100.0)
    consume(db, "acme", 2, "b", ms=300.0)
    with db() as session:
        tenant = tenant_of(session, "acme")
        hold = credits.reserve(
            session, tenant, 3, operation="prediction", key="c", timeout_s=60, now=T0
        )
        credits.release_hold(
            session, hold.hold_id, reason="failed", now=T0, processing_time_ms=200.0
        )
        credits.consume(session, tenant, 1, operation="anomaly", key="d", now=T0)
        credits.refund(session, tenant, "b", now=T0)
    with db() as session:
        report = credit_reports.stats(
            session,
            tenant_of(session, "acme"),
            period="month",
            now=T0 + dt.timedelta(hours=1),
        )
    by_operation = {item["operation"]: item for item in report["operations"]}
    prediction = by_operation["prediction"]
    assert prediction["uses"] == 3
    assert prediction["failures"] == 1
    assert prediction["credits"] == 2
    assert prediction["success_rate"] == pytest.approx(2 / 3)
    assert prediction["mean_processing_time_ms"] == pytest.approx(200.0)
    assert by_operation["anomaly"]["credits"] == 1
    assert by_operation["anomaly"]["mean_processing_time_ms"] is None


def test_stats_day_window(db):
    create(db, "acme")
    consume(db, "acme", 1, "old", now=T0)
    consume(db, "acme", 1, "new", now=T0 + dt.timedelta(days=2))
    with db() as session:
        report = credit_reports.stats(
            session,
            tenant_of(session, "acme"),
            period="day",
            now=T0 + dt.timedelta(days=2, hours=1),
        )
    assert [item["uses"] for item in report["operations"]] == [1]


def test_stats_rejects_bad_period(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    result = invoke("credits", "stats", "acme", "--period", "year")
    assert result.exit_code == 2


def test_audit_clean_exits_0(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    invoke(
        "credits",
        "consume",
        "acme",
        "2",
        "--operation",
        "prediction",
        "--idempotency-key",
        "k",
    )
    result = invoke("credits", "audit")
    assert result.exit_code == 0
    assert result.output.startswith("Audit clean: 1 tenants, 2 ledger rows.")


def tamper(db, change) -> dict:
    create(db, "acme")
    with db() as session:
        tenant = tenant_of(session, "acme")
        credits.grant(session, tenant, 10, reason="r", key="g", now=T0)
        credits.consume(session, tenant, 35, operation="prediction", key="k", now=T0)
    with db() as session:
        change(session)
    with db() as session:
        return credit_reports.audit(session)


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (
            lambda s: setattr(s.scalar(select(MlCredits)), "allowance_remaining", 3),
            "allowance_remaining",
        ),
        (
            lambda s: setattr(s.scalar(select(MlCredits)), "grant_remaining", 9),
            "grant_remaining",
        ),
        (
            lambda s: setattr(s.scalar(select(MlCreditGrant)), "remaining", 1),
            "grant 1 remaining",
        ),
        (lambda s: setattr(s.scalar(select(MlCredits)), "held", 2), "held"),
        (
            lambda s: setattr(
                s.scalar(
                    select(MlUsageHistory).where(MlUsageHistory.idempotency_key == "k")
                ),
                "balance_after",
                7,
            ),
            "balance_after",
        ),
        (
            lambda s: setattr(
                s.scalar(
                    select(MlUsageHistory).where(MlUsageHistory.idempotency_key == "k")
                ),
                "buckets",
                {"allowance": -35},
            ),
            "allowance_remaining",
        ),
        (
            lambda s: setattr(
                s.scalar(
                    select(MlUsageHistory).where(MlUsageHistory.idempotency_key == "k")
                ),
                "buckets",
                {"allowance": -30},
            ),
            "row 3 buckets",
        ),
    ],
)
def test_audit_finds_tampering(db, change, check):
    report = tamper(db, change)
    assert report["ok"] is False
    assert any(check in item["check"] for item in report["mismatches"])


def test_audit_mismatch_exits_1(db):
    tamper(db, lambda s: setattr(s.scalar(select(MlCredits)), "allowance_remaining", 3))
    result = invoke("credits", "audit")
    assert result.exit_code == 1
    assert "allowance_remaining" in result.output


def alerts(db, now=T0):
    return {item["tenant"]: item for item in credit_reports.alerts(db, now=now)}


def test_alert_states_at_thresholds(db):
    for slug, used in [("ok", 20), ("warn", 21), ("crit", 27), ("empty", 30)]:
        create(db, slug)
        consume(db, slug, used, f"{slug}-k")
    report = alerts(db)
    assert "ok" not in report
    assert report["warn"]["state"] == "warning"
    assert report["crit"]["state"] == "critical"
    assert report["empty"]["state"] == "empty"
    assert report["empty"]["new_crossings"] == ["warning", "critical", "empty"]


def test_alert_recorded_once_per_period(db):
    create(db, "acme")
    consume(db, "acme", 22, "k")
    assert alerts(db)["acme"]["new_crossings"] == ["warning"]
    assert alerts(db)["acme"]["new_crossings"] == []
    consume(db, "acme", 6, "k2")
    assert alerts(db)["acme"]["new_crossings"] == ["critical"]
    with db() as session:
        assert len(session.scalars(select(CreditAlert)).all()) == 2


def test_alert_new_period_records_again(db):
    create(db, "acme")
    consume(db, "acme", 22, "k")
    alerts(db)
    april = dt.datetime(2027, 4, 2, tzinfo=dt.UTC)
    assert "acme" not in alerts(db, now=april)
    consume(db, "acme", 22, "k2", now=april)
    assert alerts(db, now=april)["acme"]["new_crossings"] == ["warning"]


def test_alert_grants_keep_tenant_off_empty(db):
    create(db, "acme")
    with db() as session:
        credits.grant(
            session, tenant_of(session, "acme"), 5, reason="r", key="g", now=T0
        )
    consume(db, "acme", 30, "k")
    assert alerts(db)["acme"]["state"] == "critical"


def test_alerts_cli_json(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    invoke(
        "credits",
        "consume",
        "acme",
        "30",
        "--operation",
        "prediction",
        "--idempotency-key",
        "k",
    )
    report = json.loads(invoke("credits", "alerts", "--json").output)
    assert [(item["tenant"], item["state"]) for item in report] == [("acme", "empty")]
