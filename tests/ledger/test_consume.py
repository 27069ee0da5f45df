"""Consumption: idempotency, overspend, burn order, the credit switch and batches."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import credits, settings
from qml_cli.errors import Conflict, InsufficientCredits, InvalidInput

from .conftest import T0, audit_ok, available, create, ledger_rows, tenant_of

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def consume(db, slug, amount, key, *, operation="prediction", now=T0):
    with db() as session:
        return credits.consume(
            session,
            tenant_of(session, slug),
            amount,
            operation=operation,
            key=key,
            now=now,
        )


def test_consume_replay_returns_original(db):
    create(db, "acme")
    first = consume(db, "acme", 5, "run-1")
    again = consume(db, "acme", 5, "run-1", now=T0 + dt.timedelta(hours=1))
    assert again.replayed is True
    assert again.ledger_id == first.ledger_id
    assert again.balance_after == first.balance_after == 25
    assert available(db, "acme", T0) == 25
    assert len(ledger_rows(db, "acme", "consume")) == 1


def test_consume_replay_other_amount_conflicts(db):
    create(db, "acme")
    consume(db, "acme", 5, "run-1")
    with pytest.raises(Conflict, match="already used"):
        consume(db, "acme", 6, "run-1")
    assert available(db, "acme", T0) == 25
    assert len(ledger_rows(db, "acme")) == 2


def test_consume_replay_other_tenant_conflicts(db):
    create(db, "acme")
    create(db, "globex")
    consume(db, "acme", 5, "run-1")
    with pytest.raises(Conflict, match="by tenant 'acme'"):
        consume(db, "globex", 5, "run-1")
    assert available(db, "globex", T0) == 30
    assert len(ledger_rows(db, "globex")) == 1


def test_consume_replay_conflict_exits_2(db):
    invoke("tenants", "create", "acme", "--plan", "standard")
    invoke(
        "credits",
        "consume",
        "acme",
        "5",
        "--operation",
        "prediction",
        "--idempotency-key",
        "run-1",
    )
    result = invoke(
        "credits",
        "consume",
        "acme",
        "7",
        "--operation",
        "prediction",
        "--idempotency-key",
        "run-1",
    )
    assert result.exit_code == 2
    assert "idempotency key 'run-1' was already used" in result.output


def test_consume_rejects_overspend(db):
    create(db, "acme")
    with pytest.raises(InsufficientCredits) as raised:
        consume(db, "acme", 31, "big")
    assert raised.value.available == 30
    assert raised.value.required == 31
    assert [row.kind for row in ledger_rows(db, "acme")] == ["reset"]


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, "3", 10**10])
def test_consume_rejects_invalid_amount(db, amount):
    create(db, "acme")
    with pytest.raises(InvalidInput):
        consume(db, "acme", amount, "bad-amount")
    assert len(ledger_rows(db, "acme")) == 1


@pytest.mark.parametrize(
    "key",
    [
        "",
        "   ",
        "x" * 151,
        "tab\tkey",
        "grant:1",
        "reset:a",
        "expire:b",
        "release:c",
        "refund:d",
        "commit:e",
        None,
    ],
)
def test_consume_rejects_invalid_key(db, key):
    create(db, "acme")
    with pytest.raises(InvalidInput):
        consume(db, "acme", 1, key)
    assert len(ledger_rows(db, "acme")) == 1


@pytest.mark.parametrize("operation", ["", "x" * 65, "new\nline", 5])
def test_consume_rejects_invalid_operation(db, operation):
    create(db, "acme")
    with pytest.raises(InvalidInput):
        consume(db, "acme", 1, "op-key", operation=operation)


def test_consume_rejects_disabled_tenant(db):
    create(db, "acme")
    with db() as session:
        tenant_of(session, "acme").status = "disabled"
    with pytest.raises(InvalidInput, match="is disabled"):
        consume(db, "acme", 1, "k")


def test_consume_burn_order(db):
    create(db, "acme")
    later = T0 + dt.timedelta(days=90)
    sooner = T0 + dt.timedelta(days=30)
    grants = {}
    with db() as session:
        tenant = tenant_of(session, "acme")
        for name, priority, expires in [
            ("low", 5, sooner),
            ("p1-later", 1, later),
            ("p1-never", 1, None),
            ("p1-sooner", 1, sooner),
        ]:
            grants[name] = credits.grant(
                session,
                tenant,
                10,
                reason=name,
                key=name,
                priority=priority,
                expires_at=expires,
                now=T0,
            )["grant_id"]
    charge = consume(db, "acme", 30 + 35, "big")
    assert charge.buckets == {
        "allowance": -30,
        f"grant:{grants['p1-sooner']}": -10,
        f"grant:{grants['p1-later']}": -10,
        f"grant:{grants['p1-never']}": -10,
        f"grant:{grants['low']}": -5,
    }
    assert available(db, "acme", T0) == 5
    assert audit_ok(db)


def test_consume_burn_order_oldest_first(db):
    create(db, "acme")
    with db() as session:
        tenant = tenant_of(session, "acme")
        first = credits.grant(session, tenant, 5, reason="a", key="a", now=T0)
        second = credits.grant(
            session, tenant, 5, reason="b", key="b", now=T0 + dt.timedelta(minutes=1)
        )
    charge = consume(db, "acme", 33, "k", now=T0 + dt.timedelta(minutes=2))
    assert charge.buckets == {"allowance": -30, f"grant:{first['grant_id']}": -3}
    assert f"grant:{second['grant_id']}" not in charge.buckets


def test_consume_credits_disabled_costs_zero(db, monkeypatch):
    create(db, "acme")
    monkeypatch.setenv("ML_CREDITS_ENABLED", "false")
    settings.configure(None)
    charge = consume(db, "acme", 5, "free")
    assert charge.charged == 0
    assert charge.credits_enabled is False
    assert available(db, "acme", T0) == 30
    assert ledger_rows(db, "acme", "consume")[0].context["credits_disabled"] is True


def test_consume_cli_says_cost_zero(db, monkeypatch):
    invoke("tenants", "create", "acme", "--plan", "standard")
    monkeypatch.setenv("ML_CREDITS_ENABLED", "false")
    result = invoke(
        "credits",
        "consume",
        "acme",
        "5",
        "--operation",
        "prediction",
        "--idempotency-key",
        "free",
    )
    assert result.exit_code == 0
    assert "at cost 0: ML_CREDITS_ENABLED is false" in result.output
    status = json.loads(invoke("credits", "status", "acme", "--json").output)
    assert status["available"] == 30


def test_consume_stored_flag_overrides_env(db):
    from qml_cli.core import flags

    create(db, "acme")
    with db() as session:
        flags.set_flags(session, {"ML_CREDITS_ENABLED": False}, reason="rollback")
    assert consume(db, "acme", 5, "flagged").charged == 0


def test_batch_charges_each_key_once(db):
    create(db, "acme")
    consume(db, "acme", 2, "old")
    items = [credits.ChargeItem(1, "prediction", f"b{i}") for i in range(5)]
    items += [
        credits.ChargeItem(2, "prediction", "old"),
        credits.ChargeItem(1, "prediction", "b0"),
    ]
    with db() as session:
        charges = credits.consume_batch(
            session, tenant_of(session, "acme"), items, now=T0
        )
    assert [c.replayed for c in charges] == [False] * 5 + [True, True]
    assert [c.balance_after for c in charges[:5]] == [27, 26, 25, 24, 23]
    assert charges[6].ledger_id == charges[0].ledger_id
    assert available(db, "acme", T0) == 23
    assert len(ledger_rows(db, "acme", "consume")) == 6
    assert audit_ok(db)


def test_batch_shortfall_writes_nothing(db):
    create(db, "acme")
    items = [credits.ChargeItem(10, "prediction", f"b{i}") for i in range(4)]
    with pytest.raises(InsufficientCredits), db() as session:
        credits.consume_batch(session, tenant_of(session, "acme"), items, now=T0)
    assert available(db, "acme", T0) == 30
    assert len(ledger_rows(db, "acme")) == 1


def test_batch_conflicting_duplicate_writes_nothing(db):
    create(db, "acme")
    items = [
        credits.ChargeItem(1, "prediction", "same"),
        credits.ChargeItem(2, "prediction", "same"),
    ]
    with pytest.raises(Conflict), db() as session:
        credits.consume_batch(session, tenant_of(session, "acme"), items, now=T0)
    assert len(ledger_rows(db, "acme")) == 1


def test_batch_draws_grants_after_allowance(db):
    create(db, "acme")
    with db() as session:
        tenant = tenant_of(session, "acme")
        grant_id = credits.grant(session, tenant, 10, reason="top-up", key="g", now=T0)[
            "grant_id"
        ]
        items = [credits.ChargeItem(4, "prediction", f"b{i}") for i in range(9)]
        charges = credits.consume_batch(session, tenant, items, now=T0)
    assert charges[7].buckets == {"allowance": -2, f"grant:{grant_id}": -2}
    assert charges[8].buckets == {f"grant:{grant_id}": -4}
    assert available(db, "acme", T0) == 4
    assert audit_ok(db)
