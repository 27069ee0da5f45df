"""Reservations: reserve, commit, release, timeouts and a crash before commit."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import signal

import pytest

from qml_cli.core import credit_reports, credits
from qml_cli.errors import Conflict, InsufficientCredits

from . import workers
from .conftest import T0, audit_ok, available, create, ledger_rows, tenant_of


def reserve(db, slug, amount, key, *, now=T0, timeout_s=60):
    with db() as session:
        return credits.reserve(
            session,
            tenant_of(session, slug),
            amount,
            operation="prediction",
            key=key,
            timeout_s=timeout_s,
            now=now,
        )


def held(db, slug, now=T0) -> int:
    with db() as session:
        return credit_reports.status(session, tenant_of(session, slug), now=now)["held"]


def test_reserve_takes_credits_into_hold(db):
    create(db, "acme")
    charge = reserve(db, "acme", 5, "run-1")
    assert charge.hold_id is not None
    assert available(db, "acme", T0) == 25
    assert held(db, "acme") == 5
    assert audit_ok(db)


def test_reserve_rejects_overspend(db):
    create(db, "acme")
    with pytest.raises(InsufficientCredits):
        reserve(db, "acme", 31, "run-1")
    assert held(db, "acme") == 0


@pytest.mark.parametrize("timeout_s", [0, -5, True, "60", 86_400 * 8])
def test_reserve_rejects_invalid_timeout(db, timeout_s):
    create(db, "acme")
    with pytest.raises(credits.InvalidInput):
        reserve(db, "acme", 1, "run-1", timeout_s=timeout_s)


def test_reserve_replay_returns_same_hold(db):
    create(db, "acme")
    first = reserve(db, "acme", 5, "run-1")
    again = reserve(db, "acme", 5, "run-1")
    assert again.replayed is True
    assert again.hold_id == first.hold_id
    assert held(db, "acme") == 5


def test_consume_with_reserve_key_conflicts(db):
    create(db, "acme")
    reserve(db, "acme", 5, "run-1")
    with pytest.raises(Conflict, match="reservation"), db() as session:
        credits.consume(
            session,
            tenant_of(session, "acme"),
            5,
            operation="prediction",
            key="run-1",
            now=T0,
        )


def test_commit_keeps_credits_spent(db):
    create(db, "acme")
    charge = reserve(db, "acme", 5, "run-1")
    with db() as session:
        hold = credits.commit_hold(
            session,
            charge.hold_id,
            now=T0 + dt.timedelta(seconds=3),
            processing_time_ms=2500.0,
        )
        assert hold.status == "committed"
    assert available(db, "acme", T0) == 25
    assert held(db, "acme") == 0
    commit = ledger_rows(db, "acme", "commit")
    assert [(row.credits, row.processing_time_ms) for row in commit] == [(0, 2500.0)]
    assert audit_ok(db)


def test_commit_twice_is_noop(db):
    create(db, "acme")
    charge = reserve(db, "acme", 5, "run-1")
    for _ in range(2):
        with db() as session:
            credits.commit_hold(session, charge.hold_id, now=T0)
    assert len(ledger_rows(db, "acme", "commit")) == 1


def test_release_returns_credits(db):
    create(db, "acme")
    charge = reserve(db, "acme", 5, "run-1")
    for _ in range(2):
        with db() as session:
            credits.release_hold(session, charge.hold_id, reason="model failed", now=T0)
    assert available(db, "acme", T0) == 30
    assert held(db, "acme") == 0
    assert len(ledger_rows(db, "acme", "release")) == 1
    assert audit_ok(db)


def test_release_of_committed_conflicts(db):
    create(db, "acme")
    charge = reserve(db, "acme", 5, "run-1")
    with db() as session:
        credits.commit_hold(session, charge.hold_id, now=T0)
    with pytest.raises(Conflict, match="committed"), db() as session:
        credits.release_hold(session, charge.hold_id, reason="late", now=T0)


def test_commit_of_released_conflicts(db):
    create(db, "acme")
    charge = reserve(db, "acme", 5, "run-1")
    with db() as session:
        credits.release_hold(session, charge.hold_id, reason="failed", now=T0)
    with pytest.raises(Conflict, match="released"), db() as session:
        credits.commit_hold(session, charge.hold_id, now=T0)
    assert available(db, "acme", T0) == 30


def test_commit_after_timeout_conflicts(db):
    create(db, "acme")
    charge = reserve(db, "acme", 5, "run-1", timeout_s=60)
    with pytest.raises(Conflict, match="timed out"), db() as session:
        credits.commit_hold(session, charge.hold_id, now=T0 + dt.timedelta(seconds=61))
    assert held(db, "acme") == 5
    assert audit_ok(db)


def test_expire_releases_timed_out_hold(db):
    create(db, "acme")
    reserve(db, "acme", 5, "run-1", timeout_s=60)
    assert (
        credits.expire_all(db, now=T0 + dt.timedelta(seconds=59))["holds_released"] == 0
    )
    assert (
        credits.expire_all(db, now=T0 + dt.timedelta(seconds=60))["holds_released"] == 1
    )
    assert (
        credits.expire_all(db, now=T0 + dt.timedelta(seconds=61))["holds_released"] == 0
    )
    assert available(db, "acme", T0) == 30
    assert [row.error for row in ledger_rows(db, "acme", "release")] == [
        "hold timed out"
    ]
    assert audit_ok(db)


def test_next_write_releases_timed_out_hold(db):
    create(db, "acme")
    reserve(db, "acme", 30, "run-1", timeout_s=60)
    with db() as session:
        charge = credits.consume(
            session,
            tenant_of(session, "acme"),
            30,
            operation="prediction",
            key="after",
            now=T0 + dt.timedelta(minutes=5),
        )
    assert charge.balance_after == 0
    assert audit_ok(db)


def test_release_after_reset_restores_nothing_of_old_period(db):
    create(db, "acme")
    reserve(
        db,
        "acme",
        5,
        "run-1",
        timeout_s=86_400 * 7,
        now=dt.datetime(2027, 3, 31, 23, 0, tzinfo=dt.UTC),
    )
    april = dt.datetime(2027, 4, 1, 1, 0, tzinfo=dt.UTC)
    with db() as session:
        credits.release_hold(session, 1, reason="failed", now=april)
    assert available(db, "acme", april) == 30
    assert ledger_rows(db, "acme", "release")[0].credits == 0
    assert audit_ok(db)


def test_crash_between_reserve_and_commit(engine, db):
    """A worker killed after its reservation committed leaves a pending hold that
    `expire` releases once its timeout has passed."""
    create(db, "acme")
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=workers.reserve_then_die, args=(url, "acme", T0))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    assert held(db, "acme") == 5
    assert available(db, "acme", T0) == 25
    assert audit_ok(db)

    report = credits.expire_all(db, now=T0 + dt.timedelta(seconds=61))
    assert report["holds_released"] == 1
    assert held(db, "acme") == 0
    assert available(db, "acme", T0) == 30
    assert audit_ok(db)


@pytest.mark.parametrize("order", [("reset", "expire"), ("expire", "reset")])
def test_expired_hold_returns_to_its_period(db, order):
    from qml_cli.core.models import SubscriptionPlan

    with db() as session:
        session.add(
            SubscriptionPlan(
                name="rolling",
                display_name="Rolling",
                monthly_ml_credits=100,
                auto_predictions_per_day=1,
                scheduled_workflows=1,
                rollover_percent=50,
            )
        )
    create(db, "acme", plan="rolling")
    reserve(
        db,
        "acme",
        40,
        "run-1",
        timeout_s=1800,
        now=dt.datetime(2027, 3, 31, 23, 0, tzinfo=dt.UTC),
    )
    april = dt.datetime(2027, 4, 1, 1, 0, tzinfo=dt.UTC)
    jobs = {"reset": credits.reset_monthly, "expire": credits.expire_all}
    for job in order:
        jobs[job](db, now=april)
    assert held(db, "acme", april) == 0
    assert available(db, "acme", april) == 100 + 50
    assert audit_ok(db)
