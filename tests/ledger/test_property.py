"""Random sequences of ledger operations against a plain-Python reference model.

After every step, the database is settled at the current instant inside a
transaction that is then rolled back, and it must hold the same balances as the
model. No balance may be negative, and the audit must be clean.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core import clock, credit_reports, credits, ledger_settle, tenants
from qml_cli.core.db import session_scope
from qml_cli.core.models import MlCreditGrant, SubscriptionPlan
from qml_cli.errors import Conflict, InsufficientCredits

from .conftest import T0

MONTHLY = 20
ROLLOVER = 25
FAR = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass
class Grant:
    id: int
    amount: int
    priority: int
    effective_at: dt.datetime
    expires_at: dt.datetime | None
    created_at: dt.datetime
    remaining: int = 0
    active: bool = False
    expired: bool = False


@dataclass
class Charge:
    amount: int
    buckets: dict[str, int]
    drawn_at: dt.datetime
    hold_id: int | None = None
    refunded: bool = False


@dataclass
class Hold:
    key: str
    expires_at: dt.datetime
    status: str = "pending"


@dataclass
class Model:
    """The ledger rules written out directly, with no database."""

    timezone: str
    period_start: dt.datetime
    period_end: dt.datetime
    allowance: int = MONTHLY
    carried: int = 0
    remaining: int = MONTHLY
    used: int = 0
    grants: dict[int, Grant] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    holds: dict[int, Hold] = field(default_factory=dict)

    def available(self) -> int:
        return self.remaining + sum(g.remaining for g in self.grants.values())

    def held(self) -> int:
        return sum(
            self.charges[h.key].amount
            for h in self.holds.values()
            if h.status == "pending"
        )

    def restore(self, charge: Charge, now: dt.datetime) -> None:
        for name, share in charge.buckets.items():
            if name == "allowance":
                if charge.drawn_at >= self.period_start:
                    self.used += share
                    self.remaining = max(0, self.allowance + self.carried - self.used)
                continue
            grant = self.grants[int(name.split(":")[1])]
            if not grant.expired and (
                grant.expires_at is None or grant.expires_at > now
            ):
                grant.remaining -= share

    def release_due(self, due_by: dt.datetime, now: dt.datetime) -> None:
        for hold_id in sorted(self.holds):
            hold = self.holds[hold_id]
            if hold.status == "pending" and hold.expires_at <= due_by:
                self.restore(self.charges[hold.key], now)
                hold.status = "expired"

    def roll(self, now: dt.datetime) -> None:
        while self.period_end <= now:
            self.release_due(self.period_end, now)
            self.carried = self.remaining * ROLLOVER // 100
            self.remaining = self.carried + MONTHLY
            self.used = 0
            self.period_start = self.period_end
            self.period_end = clock.add_months(self.period_end, self.timezone)

    def settle(self, now: dt.datetime) -> None:
        self.roll(now)
        for grant in self.grants.values():
            if not grant.active and grant.effective_at <= now:
                grant.active, grant.remaining = True, grant.amount
            if (
                grant.active
                and grant.expires_at is not None
                and grant.expires_at <= now
            ):
                grant.expired, grant.remaining = True, 0
        self.release_due(now, now)

    def draw(self, amount: int, now: dt.datetime) -> dict[str, int]:
        buckets = {}
        take = min(amount, self.remaining)
        if take:
            self.remaining -= take
            self.used += take
            buckets["allowance"] = -take
        rest = amount - take
        order = sorted(
            (g for g in self.grants.values() if g.remaining > 0),
            key=lambda g: (g.priority, g.expires_at or FAR, g.created_at, g.id),
        )
        for grant in order:
            take = min(rest, grant.remaining)
            if take:
                grant.remaining -= take
                buckets[f"grant:{grant.id}"] = -take
                rest -= take
        assert rest == 0
        return buckets


class Rejected(Exception):
    """The database rejected an operation, as the model predicted."""


class LedgerMachine(RuleBasedStateMachine):
    """Drives one tenant per example through the core API and the model."""

    factory = None
    slugs = itertools.count()
    charge_keys = Bundle("charge_keys")
    hold_ids = Bundle("hold_ids")

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.keys = itertools.count()
        self.model: Model
        self.slug = ""

    def db(self):
        return session_scope(self.factory)

    @initialize(
        timezone=st.sampled_from(["UTC", "Africa/Johannesburg", "America/Sao_Paulo"])
    )
    def open_tenant(self, timezone):
        self.slug = f"prop-{next(self.slugs)}"
        with self.db() as session:
            tenants.create_tenant(
                session,
                self.slug,
                name=None,
                plan_name="prop",
                timezone=timezone,
                is_test=True,
                now=self.now,
            )
        start, end = clock.month_period(self.now, timezone)
        self.model = Model(timezone, start, end)

    def tenant(self, session: Session):
        return tenants.get_tenant(session, self.slug)

    def write(self, operation):
        """Run `operation` in one transaction on the database and on a copy of the
        model; keep the copy only when the database committed. The operation
        raises `Rejected` after checking that the model predicted the rejection."""
        trial = copy.deepcopy(self.model)
        trial.settle(self.now)
        try:
            with self.db() as session:
                result = operation(session, trial)
        except Rejected:
            return None
        self.model = trial
        return result

    @rule(minutes=st.integers(1, 60 * 24 * 20))
    def advance(self, minutes):
        self.now += dt.timedelta(minutes=minutes)

    @rule(
        amount=st.integers(1, 25),
        priority=st.integers(0, 2),
        expires_days=st.none() | st.integers(1, 40),
        delay_days=st.sampled_from([0, 0, 3, 15]),
    )
    def grant(self, amount, priority, expires_days, delay_days):
        effective = self.now + dt.timedelta(days=delay_days)
        expires = effective + dt.timedelta(days=expires_days) if expires_days else None

        def operation(session, trial):
            key = f"{self.slug}-g{next(self.keys)}"
            row = credits.grant(
                session,
                self.tenant(session),
                amount,
                reason="prop",
                key=key,
                priority=priority,
                expires_at=expires,
                effective_at=effective,
                now=self.now,
            )
            trial.grants[row["grant_id"]] = Grant(
                row["grant_id"], amount, priority, effective, expires, self.now
            )
            trial.settle(self.now)

        self.write(operation)

    def charge(self, amount: int, hold_s: int | None) -> str | None:
        key = f"{self.slug}-c{next(self.keys)}"

        def operation(session, trial):
            tenant = self.tenant(session)
            expected = amount <= trial.available()
            try:
                if hold_s is None:
                    result = credits.consume(
                        session, tenant, amount, operation="prop", key=key, now=self.now
                    )
                else:
                    result = credits.reserve(
                        session,
                        tenant,
                        amount,
                        operation="prop",
                        key=key,
                        timeout_s=hold_s,
                        now=self.now,
                    )
            except InsufficientCredits:
                assert not expected
                raise Rejected from None
            assert expected
            buckets = trial.draw(amount, self.now)
            assert result.buckets == buckets
            trial.charges[key] = Charge(amount, buckets, self.now, result.hold_id)
            if result.hold_id is not None:
                trial.holds[result.hold_id] = Hold(
                    key, self.now + dt.timedelta(seconds=hold_s)
                )
            return result

        return key if self.write(operation) else None

    @rule(target=charge_keys, amount=st.integers(1, 30))
    def consume(self, amount):
        return self.charge(amount, None)

    @rule(key=charge_keys)
    def replay(self, key):
        if key is None:
            return
        charge = self.model.charges[key]
        if charge.hold_id is not None:
            return

        def operation(session, trial):
            again = credits.consume(
                session,
                self.tenant(session),
                charge.amount,
                operation="prop",
                key=key,
                now=self.now,
            )
            assert again.replayed
            assert again.buckets == charge.buckets

        self.write(operation)

    @rule(key=charge_keys)
    def replay_other_amount(self, key):
        if key is None:
            return

        def operation(session, trial):
            try:
                credits.consume(
                    session,
                    self.tenant(session),
                    trial.charges[key].amount + 1,
                    operation="prop",
                    key=key,
                    now=self.now,
                )
            except Conflict:
                raise Rejected from None
            raise AssertionError("a replay with another amount was accepted")

        self.write(operation)

    @rule(
        target=hold_ids,
        amount=st.integers(1, 30),
        timeout_s=st.sampled_from([60, 3600, 86_400 * 5]),
    )
    def reserve(self, amount, timeout_s):
        key = self.charge(amount, timeout_s)
        return self.model.charges[key].hold_id if key else None

    @rule(hold_id=hold_ids, commit=st.booleans())
    def resolve(self, hold_id, commit):
        if hold_id is None:
            return

        def operation(session, trial):
            hold = trial.holds[hold_id]
            allowed = (
                ("pending", "committed")
                if commit
                else ("pending", "released", "expired")
            )
            try:
                if commit:
                    credits.commit_hold(session, hold_id, now=self.now)
                else:
                    credits.release_hold(session, hold_id, reason="prop", now=self.now)
            except Conflict:
                assert hold.status not in allowed
                raise Rejected from None
            assert hold.status in allowed
            if hold.status == "pending":
                if not commit:
                    trial.restore(trial.charges[hold.key], self.now)
                hold.status = "committed" if commit else "released"

        self.write(operation)

    @rule(key=charge_keys)
    def refund(self, key):
        if key is None:
            return

        def operation(session, trial):
            charge = trial.charges[key]
            pending = (
                charge.hold_id is not None
                and trial.holds[charge.hold_id].status != "committed"
            )
            try:
                credits.refund(session, self.tenant(session), key, now=self.now)
            except Conflict:
                assert pending
                raise Rejected from None
            assert not pending
            if not charge.refunded:
                trial.restore(charge, self.now)
                charge.refunded = True

        self.write(operation)

    @rule()
    def expire(self):
        credits.expire_all(self.db, now=self.now)
        self.model.settle(self.now)

    @rule()
    def reset(self):
        credits.reset_monthly(self.db, now=self.now)
        self.model.roll(self.now)

    @invariant()
    def matches_model(self):
        expected = copy.deepcopy(self.model)
        expected.settle(self.now)
        with Session(self.factory) as session:
            tenant = self.tenant(session)
            locked = ledger_settle.prepare(session, tenant, self.now)
            account = locked.account
            grants = {
                g.id: g.remaining
                for g in session.scalars(
                    select(MlCreditGrant).where(MlCreditGrant.tenant_id == tenant.id)
                )
            }
            figures = (
                account.allowance_remaining,
                account.grant_remaining,
                account.held,
                account.used_this_period,
                account.carried,
                account.period_start,
            )
            session.rollback()
        assert figures == (
            expected.remaining,
            sum(g.remaining for g in expected.grants.values()),
            expected.held(),
            expected.used,
            expected.carried,
            expected.period_start,
        )
        assert grants == {g.id: g.remaining for g in expected.grants.values()}
        assert min(figures[:4]) >= 0

    @invariant()
    def audit_clean(self):
        with self.db() as session:
            report = credit_reports.audit(session, self.tenant(session))
        assert report["mismatches"] == []


def add_plan(engine) -> None:
    with session_scope(engine) as session:
        session.add(
            SubscriptionPlan(
                name="prop",
                display_name="Property",
                is_active=True,
                monthly_ml_credits=MONTHLY,
                rollover_percent=ROLLOVER,
                auto_predictions_per_day=1,
                scheduled_workflows=1,
            )
        )


@pytest.mark.parametrize("examples", [60])
def test_ledger_matches_model_sqlite(sqlite_engine, examples):
    add_plan(sqlite_engine)
    LedgerMachine.factory = sqlite_engine
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_ledger_matches_model_postgres(pg_engine):
    add_plan(pg_engine)
    LedgerMachine.factory = pg_engine
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
