"""Grants: idempotency keys, expiry, scheduled grants and the reset instant."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import credits
from qml_cli.core.models import MlCredits
from qml_cli.errors import Conflict, InsufficientCredits, InvalidInput

from .conftest import T0, audit_ok, available, create, ledger_rows, tenant_of

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def grant(db, slug, amount, key, *, now=T0, **options):
    with db() as session:
        return credits.grant(
            session,
            tenant_of(session, slug),
            amount,
            reason=options.pop("reason", "bonus"),
            key=key,
            now=now,
            **options,
        )


def test_grant_cli_prints_derived_key(db, monkeypatch):
    invoke("tenants", "create", "acme", "--plan", "standard")
    monkeypatch.setenv("QML_FAKE_NOW", "2027-03-10T12:00:05Z")
    first = invoke("credits", "grant", "acme", "50", "--reason", "ticket 118")
    assert first.exit_code == 0
    assert "idempotency key grant-" in first.output
    key = first.output.split("idempotency key ")[1].split(")")[0]
    assert key == credits.derive_grant_key(
        "acme",
        50,
        "ticket 118",
        None,
        100,
        dt.datetime(2027, 3, 10, 12, 0, 5, tzinfo=dt.UTC),
    )


def test_grant_cli_retry_same_minute_grants_once(db, monkeypatch):
    invoke("tenants", "create", "acme", "--plan", "standard")
    monkeypatch.setenv("QML_FAKE_NOW", "2027-03-10T12:00:05Z")
    invoke("credits", "grant", "acme", "50", "--reason", "ticket 118")
    monkeypatch.setenv("QML_FAKE_NOW", "2027-03-10T12:00:55Z")
    retry = invoke("credits", "grant", "acme", "50", "--reason", "ticket 118")
    assert retry.exit_code == 0
    assert "nothing added" in retry.output
    status = json.loads(invoke("credits", "status", "acme", "--json").output)
    assert status["available"] == 80


def test_grant_cli_next_minute_grants_again(db, monkeypatch):
    invoke("tenants", "create", "acme", "--plan", "standard")
    monkeypatch.setenv("QML_FAKE_NOW", "2027-03-10T12:00:05Z")
    invoke("credits", "grant", "acme", "50", "--reason", "ticket 118")
    monkeypatch.setenv("QML_FAKE_NOW", "2027-03-10T12:01:05Z")
    invoke("credits", "grant", "acme", "50", "--reason", "ticket 118")
    status = json.loads(invoke("credits", "status", "acme", "--json").output)
    assert status["available"] == 130


def test_grant_cli_expiry_date_ends_local_day(db, monkeypatch):
    invoke(
        "tenants",
        "create",
        "acme",
        "--plan",
        "standard",
        "--timezone",
        "America/Sao_Paulo",
    )
    monkeypatch.setenv("QML_FAKE_NOW", "2027-03-10T12:00:00Z")
    result = json.loads(
        invoke(
            "credits",
            "grant",
            "acme",
            "5",
            "--reason",
            "r",
            "--expires",
            "2027-03-31",
            "--json",
        ).output
    )
    assert result["expires_at"] == "2027-04-01T03:00:00+00:00"


def test_grant_key_reuse_other_amount_conflicts(db):
    create(db, "acme")
    grant(db, "acme", 10, "g")
    with pytest.raises(Conflict):
        grant(db, "acme", 11, "g")
    assert available(db, "acme", T0) == 40


@pytest.mark.parametrize(
    "options",
    [
        {"reason": ""},
        {"reason": "x" * 501},
        {"priority": -1},
        {"priority": 1001},
        {"priority": True},
        {"expires_at": T0},
        {"expires_at": T0 - dt.timedelta(days=1)},
    ],
)
def test_grant_rejects_invalid_options(db, options):
    create(db, "acme")
    with pytest.raises(InvalidInput):
        grant(db, "acme", 10, "g", **options)
    assert len(ledger_rows(db, "acme")) == 1


def test_grant_survives_reset_until_expiry(db):
    create(db, "acme")
    grant(db, "acme", 10, "g", expires_at=dt.datetime(2027, 5, 15, tzinfo=dt.UTC))
    april = dt.datetime(2027, 4, 2, tzinfo=dt.UTC)
    credits.reset_monthly(db, now=april)
    assert available(db, "acme", april) == 40
    may = dt.datetime(2027, 5, 16, tzinfo=dt.UTC)
    credits.reset_monthly(db, now=may)
    assert available(db, "acme", may) == 30


def test_grant_expire_writes_one_row(db):
    create(db, "acme")
    grant(db, "acme", 10, "g", expires_at=T0 + dt.timedelta(days=2))
    later = T0 + dt.timedelta(days=3)
    assert credits.expire_all(db, now=later)["grants_expired"] == 1
    assert credits.expire_all(db, now=later)["grants_expired"] == 0
    rows = ledger_rows(db, "acme", "expire")
    assert [(row.operation, row.credits) for row in rows] == [("grant_expiry", -10)]
    assert audit_ok(db)


def test_grant_expired_share_not_drawn(db):
    create(db, "acme")
    grant(db, "acme", 10, "g", expires_at=T0 + dt.timedelta(days=2))
    with db() as session:
        tenant = tenant_of(session, "acme")
        credits.consume(session, tenant, 30, operation="prediction", key="k", now=T0)
    with pytest.raises(InsufficientCredits), db() as session:
        credits.consume(
            session,
            tenant_of(session, "acme"),
            1,
            operation="prediction",
            key="late",
            now=T0 + dt.timedelta(days=2),
        )
    assert audit_ok(db)


def test_grant_scheduled_stays_out_of_balance(db):
    create(db, "acme")
    effective = T0 + dt.timedelta(days=1)
    result = grant(db, "acme", 10, "later", effective_at=effective)
    assert result["scheduled"] is True
    assert available(db, "acme", T0) == 30
    assert ledger_rows(db, "acme", "grant") == []
    with pytest.raises(InsufficientCredits), db() as session:
        credits.consume(
            session,
            tenant_of(session, "acme"),
            31,
            operation="prediction",
            key="early",
            now=T0 + dt.timedelta(hours=23),
        )
    assert audit_ok(db)


def test_grant_scheduled_enters_balance_on_time(db):
    create(db, "acme")
    effective = T0 + dt.timedelta(days=1)
    grant(db, "acme", 10, "later", effective_at=effective)
    assert available(db, "acme", effective) == 40
    with db() as session:
        charge = credits.consume(
            session,
            tenant_of(session, "acme"),
            31,
            operation="prediction",
            key="on-time",
            now=effective,
        )
    assert charge.balance_after == 9
    assert len(ledger_rows(db, "acme", "grant")) == 1
    assert audit_ok(db)


def test_grant_scheduled_credited_by_expire(db):
    create(db, "acme")
    grant(db, "acme", 10, "later", effective_at=T0 + dt.timedelta(days=1))
    assert (
        credits.expire_all(db, now=T0 + dt.timedelta(days=2))["grants_activated"] == 1
    )
    assert (
        credits.expire_all(db, now=T0 + dt.timedelta(days=3))["grants_activated"] == 0
    )
    assert len(ledger_rows(db, "acme", "grant")) == 1


@pytest.mark.parametrize(
    "timezone", ["UTC", "Africa/Johannesburg", "America/Sao_Paulo"]
)
def test_grant_at_reset_instant_counted_once(db, timezone):
    create(db, "acme", timezone=timezone)
    with db() as session:
        boundary = session.scalar(select(MlCredits.period_end))
    grant(db, "acme", 10, "at-reset", effective_at=boundary)
    before = boundary - dt.timedelta(microseconds=1)
    assert available(db, "acme", before) == 30
    assert available(db, "acme", boundary) == 40

    report = credits.reset_monthly(db, now=boundary)
    assert len(report["resets"]) == 1
    credits.reset_monthly(db, now=boundary)
    credits.expire_all(db, now=boundary)
    with db() as session:
        charge = credits.consume(
            session,
            tenant_of(session, "acme"),
            40,
            operation="prediction",
            key="all",
            now=boundary,
        )
    assert charge.balance_after == 0
    assert len(ledger_rows(db, "acme", "grant")) == 1
    assert available(db, "acme", boundary + dt.timedelta(days=1)) == 0
    assert audit_ok(db)
