"""Refunds, plan changes and rollover."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import credits
from qml_cli.core.models import SubscriptionPlan
from qml_cli.errors import Conflict, NotFound

from .conftest import T0, audit_ok, available, create, ledger_rows, tenant_of

runner = CliRunner()
APRIL = dt.datetime(2027, 4, 1, tzinfo=dt.UTC)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def consume(db, slug, amount, key, now=T0):
    with db() as session:
        return credits.consume(
            session,
            tenant_of(session, slug),
            amount,
            operation="prediction",
            key=key,
            now=now,
        )


def refund(db, slug, key, now=T0):
    with db() as session:
        return credits.refund(
            session, tenant_of(session, slug), key, reason="bug", now=now
        )


def set_plan(db, slug, plan, effective="now", now=T0):
    with db() as session:
        return credits.set_plan(
            session, tenant_of(session, slug), plan, effective=effective, now=now
        )


def test_refund_returns_buckets_once(db):
    create(db, "acme")
    with db() as session:
        grant_id = credits.grant(
            session, tenant_of(session, "acme"), 10, reason="r", key="g", now=T0
        )["grant_id"]
    charge = consume(db, "acme", 35, "k")
    first = refund(db, "acme", "k")
    again = refund(db, "acme", "k")
    assert first["refunded"] == 35
    assert again["replayed"] is True
    rows = ledger_rows(db, "acme", "refund")
    assert [row.buckets for row in rows] == [{"allowance": 30, f"grant:{grant_id}": 5}]
    assert charge.buckets == {"allowance": -30, f"grant:{grant_id}": -5}
    assert available(db, "acme", T0) == 40
    assert audit_ok(db)


def test_refund_skips_expired_grant_share(db):
    create(db, "acme")
    with db() as session:
        credits.grant(
            session,
            tenant_of(session, "acme"),
            10,
            reason="r",
            key="g",
            expires_at=T0 + dt.timedelta(days=1),
            now=T0,
        )
    consume(db, "acme", 35, "k")
    result = refund(db, "acme", "k", now=T0 + dt.timedelta(days=2))
    assert result["refunded"] == 30
    assert result["charged"] == 35
    assert available(db, "acme", T0 + dt.timedelta(days=2)) == 30
    assert audit_ok(db)


def test_refund_skips_past_period_allowance(db):
    create(db, "acme")
    consume(db, "acme", 10, "k")
    result = refund(db, "acme", "k", now=APRIL)
    assert result["refunded"] == 0
    assert available(db, "acme", APRIL) == 30
    assert audit_ok(db)


def test_refund_unknown_key_exits_2(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    result = invoke("credits", "refund", "acme", "--idempotency-key", "nope")
    assert result.exit_code == 2
    assert "no consumption with idempotency key 'nope'" in result.output


def test_refund_other_tenants_key_not_found(db):
    create(db, "acme")
    create(db, "globex")
    consume(db, "acme", 5, "k")
    with pytest.raises(NotFound):
        refund(db, "globex", "k")


def test_refund_pending_hold_conflicts(db):
    create(db, "acme")
    with db() as session:
        credits.reserve(
            session,
            tenant_of(session, "acme"),
            5,
            operation="prediction",
            key="h",
            timeout_s=60,
            now=T0,
        )
    with pytest.raises(Conflict, match="pending"):
        refund(db, "acme", "h")


def test_refund_committed_hold(db):
    create(db, "acme")
    with db() as session:
        hold_id = credits.reserve(
            session,
            tenant_of(session, "acme"),
            5,
            operation="prediction",
            key="h",
            timeout_s=60,
            now=T0,
        ).hold_id
    with db() as session:
        credits.commit_hold(session, hold_id, now=T0)
    assert refund(db, "acme", "h")["refunded"] == 5
    assert available(db, "acme", T0) == 30


def test_set_plan_now_upgrade_subtracts_used(db):
    create(db, "acme")
    consume(db, "acme", 20, "k")
    result = set_plan(db, "acme", "quantum_plus")
    assert result["allowance_remaining"] == 280
    assert result["change"] == 270
    assert available(db, "acme", T0) == 280
    assert audit_ok(db)


def test_set_plan_now_downgrade_never_refills(db):
    create(db, "acme", plan="quantum_plus")
    consume(db, "acme", 100, "k")
    result = set_plan(db, "acme", "standard")
    assert result["allowance_remaining"] == 0
    assert available(db, "acme", T0) == 0
    assert audit_ok(db)


def test_set_plan_downgrade_then_refund_caps_at_allowance(db):
    create(db, "acme", plan="quantum_plus")
    consume(db, "acme", 100, "k")
    consume(db, "acme", 10, "small")
    set_plan(db, "acme", "standard")
    assert refund(db, "acme", "small")["refunded"] == 0
    assert refund(db, "acme", "k")["refunded"] == 30
    assert available(db, "acme", T0) == 30
    assert audit_ok(db)


def test_set_plan_round_trip_creates_nothing(db):
    create(db, "acme")
    consume(db, "acme", 25, "k")
    set_plan(db, "acme", "quantum_premium")
    set_plan(db, "acme", "standard")
    assert available(db, "acme", T0) == 5
    assert audit_ok(db)


def test_set_plan_next_period_applies_at_reset(db):
    create(db, "acme")
    result = set_plan(db, "acme", "quantum_plus", effective="next-period")
    assert result["effective_at"] == APRIL
    assert available(db, "acme", T0) == 30
    credits.reset_monthly(db, now=APRIL)
    assert available(db, "acme", APRIL) == 300
    with db() as session:
        plan = session.get(SubscriptionPlan, tenant_of(session, "acme").plan_id)
        assert plan.name == "quantum_plus"


def test_set_plan_cli_rejects_bad_effective(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    result = invoke(
        "tenants", "set-plan", "acme", "quantum_plus", "--effective", "later"
    )
    assert result.exit_code == 2
    assert "invalid --effective 'later'" in result.output


def test_set_plan_cli_now(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    result = invoke("tenants", "set-plan", "acme", "quantum_plus", "--json")
    assert json.loads(result.output)["allowance_remaining"] == 300


def add_rollover_plan(db, percent: int) -> None:
    with db() as session:
        session.add(
            SubscriptionPlan(
                name="rolling",
                display_name="Rolling",
                monthly_ml_credits=100,
                auto_predictions_per_day=1,
                scheduled_workflows=1,
                rollover_percent=percent,
            )
        )


def test_rollover_carries_percent_of_unused(db):
    add_rollover_plan(db, 50)
    create(db, "acme", plan="rolling")
    consume(db, "acme", 41, "k")
    report = credits.reset_monthly(db, now=APRIL)
    assert report["resets"][0]["carried"] == 29
    assert report["resets"][0]["expired"] == 30
    assert available(db, "acme", APRIL) == 129
    assert audit_ok(db)


def test_rollover_survives_plan_change_now(db):
    add_rollover_plan(db, 50)
    create(db, "acme", plan="rolling")
    credits.reset_monthly(db, now=APRIL)
    consume(db, "acme", 60, "k", now=APRIL)
    result = set_plan(db, "acme", "quantum_plus", now=APRIL)
    assert result["allowance_remaining"] == 300 + 50 - 60
    assert audit_ok(db)


def test_no_rollover_by_default(db):
    create(db, "acme")
    consume(db, "acme", 10, "k")
    report = credits.reset_monthly(db, now=APRIL)
    assert report["resets"][0]["carried"] == 0
    assert available(db, "acme", APRIL) == 30
