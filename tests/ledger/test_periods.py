"""Monthly resets: local midnights, month lengths, catch-up and the reset switch."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import credits, settings
from qml_cli.core.models import MlCredits

from .conftest import audit_ok, available, create, ledger_rows, tenant_of

runner = CliRunner()
UTC = dt.UTC
ZONES = {"plus2": "Africa/Johannesburg", "utc": "UTC", "minus3": "America/Sao_Paulo"}


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def resets(db, slug) -> list[str]:
    return [
        row.context["period_start"]
        for row in ledger_rows(db, slug, "reset")
        if row.operation == "monthly_reset"
    ]


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    "last_day",
    [
        dt.date(2028, 2, 29),
        dt.date(2027, 2, 28),
        dt.date(2027, 1, 31),
        dt.date(2027, 4, 30),
    ],
)
def test_reset_at_each_local_midnight(db, last_day):
    first_day = last_day + dt.timedelta(days=1)
    created = at(last_day.replace(day=15), 12)
    for slug, zone in ZONES.items():
        create(db, slug, timezone=zone, now=created)
    expected_start = {
        "plus2": at(last_day, 22),
        "utc": at(first_day, 0),
        "minus3": at(first_day, 3),
    }

    credits.reset_monthly(db, now=at(last_day, 21))
    assert {slug: resets(db, slug) for slug in ZONES} == {s: [] for s in ZONES}

    credits.reset_monthly(db, now=at(last_day, 23, 30))
    assert resets(db, "plus2") == [expected_start["plus2"].isoformat()]
    assert resets(db, "utc") == []

    credits.reset_monthly(db, now=at(first_day, 0, 30))
    assert resets(db, "utc") == [expected_start["utc"].isoformat()]
    assert resets(db, "minus3") == []

    for _ in range(2):
        credits.reset_monthly(db, now=at(first_day, 3, 30))
    for slug in ZONES:
        assert resets(db, slug) == [expected_start[slug].isoformat()]
    assert audit_ok(db)


def test_period_follows_daylight_saving(db):
    create(
        db, "berlin", timezone="Europe/Berlin", now=dt.datetime(2027, 3, 10, tzinfo=UTC)
    )
    with db() as session:
        account = session.scalar(select(MlCredits))
        assert account.period_start == dt.datetime(2027, 2, 28, 23, tzinfo=UTC)
        assert account.period_end == dt.datetime(2027, 3, 31, 22, tzinfo=UTC)


def test_reset_twice_writes_once(db):
    create(db, "acme", now=dt.datetime(2027, 3, 10, tzinfo=UTC))
    april = dt.datetime(2027, 4, 1, 0, 5, tzinfo=UTC)
    first = credits.reset_monthly(db, now=april)
    second = credits.reset_monthly(db, now=april + dt.timedelta(hours=1))
    assert len(first["resets"]) == 1
    assert second["resets"] == []
    assert second["due"] == 0


def test_reset_catches_up_missed_months(db):
    create(db, "acme", now=dt.datetime(2027, 1, 10, tzinfo=UTC))
    with db() as session:
        credits.consume(
            session,
            tenant_of(session, "acme"),
            12,
            operation="prediction",
            key="k",
            now=dt.datetime(2027, 1, 11, tzinfo=UTC),
        )
    report = credits.reset_monthly(db, now=dt.datetime(2027, 5, 3, tzinfo=UTC))
    assert [item["period_start"].month for item in report["resets"]] == [2, 3, 4, 5]
    assert [item["expired"] for item in report["resets"]] == [18, 30, 30, 30]
    assert available(db, "acme", dt.datetime(2027, 5, 3, tzinfo=UTC)) == 30
    assert len(resets(db, "acme")) == 4
    assert audit_ok(db)


def test_write_resets_lazily_once(db):
    create(db, "acme", now=dt.datetime(2027, 3, 10, tzinfo=UTC))
    april = dt.datetime(2027, 4, 2, tzinfo=UTC)
    with db() as session:
        charge = credits.consume(
            session,
            tenant_of(session, "acme"),
            1,
            operation="prediction",
            key="k",
            now=april,
        )
    assert charge.balance_after == 29
    assert credits.reset_monthly(db, now=april)["resets"] == []
    assert len(resets(db, "acme")) == 1


def test_status_projects_pending_reset(db):
    create(db, "acme", now=dt.datetime(2027, 3, 10, tzinfo=UTC))
    with db() as session:
        credits.consume(
            session,
            tenant_of(session, "acme"),
            30,
            operation="prediction",
            key="k",
            now=dt.datetime(2027, 3, 11, tzinfo=UTC),
        )
    assert available(db, "acme", dt.datetime(2027, 4, 2, tzinfo=UTC)) == 30


def test_resets_disabled_change_nothing(db, monkeypatch):
    invoke("tenants", "create", "acme", "--plan", "standard")
    monkeypatch.setenv("QML_FAKE_NOW", "2099-12-31T00:00:00Z")
    monkeypatch.setenv("MONTHLY_RESET_ENABLED", "false")
    before = len(json.loads(invoke("credits", "history", "acme", "--json").output))
    result = invoke("credits", "reset-monthly")
    assert result.exit_code == 0
    assert (
        "MONTHLY_RESET_ENABLED is false: 1 tenants due, nothing changed."
        in result.output
    )
    after = len(json.loads(invoke("credits", "history", "acme", "--json").output))
    assert after == before


def test_resets_disabled_no_lazy_reset(db, monkeypatch):
    create(db, "acme", now=dt.datetime(2027, 3, 10, tzinfo=UTC))
    monkeypatch.setenv("MONTHLY_RESET_ENABLED", "false")
    settings.configure(None)
    with db() as session:
        credits.consume(
            session,
            tenant_of(session, "acme"),
            1,
            operation="prediction",
            key="k",
            now=dt.datetime(2027, 4, 2, tzinfo=UTC),
        )
    assert resets(db, "acme") == []
    assert available(db, "acme", dt.datetime(2027, 4, 2, tzinfo=UTC)) == 29


def test_reset_dry_run_changes_nothing(db, monkeypatch):
    invoke("tenants", "create", "acme", "--plan", "standard")
    monkeypatch.setenv("QML_FAKE_NOW", "2099-12-31T00:00:00Z")
    result = invoke("credits", "reset-monthly", "--dry-run", "--json")
    report = json.loads(result.output)
    assert report["resets"][0]["would_reset"] is True
    assert report["resets"][0]["periods"] >= 1
    assert resets(db, "acme") == []


def test_reset_cli_reports_each_reset(db, monkeypatch):
    monkeypatch.setenv("QML_FAKE_NOW", "2027-03-10T12:00:00Z")
    invoke("tenants", "create", "acme", "--plan", "standard")
    monkeypatch.setenv("QML_FAKE_NOW", "2027-05-01T00:30:00Z")
    result = invoke("credits", "reset-monthly")
    assert result.exit_code == 0
    assert (
        "Reset acme for the period from 2027-04-01: 30 credits, 30 expired."
        in result.output
    )
    assert "2 resets written." in result.output
