"""Fixtures of the ledger tests: a session factory, tenants and a movable clock."""

from __future__ import annotations

import datetime as dt

import pytest

from qml_cli.core import tenants
from qml_cli.core.db import session_scope

T0 = dt.datetime(2027, 3, 10, 12, 0, tzinfo=dt.UTC)


class Clock:
    """An injectable clock that tests move by hand."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(engine):
    """Open a transaction on the test database (commit on success)."""
    return lambda: session_scope(engine)


@pytest.fixture
def sqlite_db(sqlite_engine):
    return lambda: session_scope(sqlite_engine)


def create(
    db,
    slug: str,
    *,
    plan: str = "standard",
    timezone: str = "UTC",
    now: dt.datetime = T0,
) -> int:
    """Create a tenant with its opening account; return its id."""
    with db() as session:
        tenant = tenants.create_tenant(
            session,
            slug,
            name=None,
            plan_name=plan,
            timezone=timezone,
            is_test=True,
            now=now,
        )
        return tenant.id


def tenant_of(session, slug: str):
    return tenants.get_tenant(session, slug)


def ledger_rows(db, slug: str, kind: str | None = None) -> list:
    """Return the tenant's ledger rows, oldest first, optionally of one kind."""
    from sqlalchemy import select

    from qml_cli.core.models import MlUsageHistory

    with db() as session:
        tenant = tenant_of(session, slug)
        query = select(MlUsageHistory).where(MlUsageHistory.tenant_id == tenant.id)
        if kind:
            query = query.where(MlUsageHistory.kind == kind)
        return list(session.scalars(query.order_by(MlUsageHistory.id)))


def available(db, slug: str, now: dt.datetime) -> int:
    from qml_cli.core import credit_reports

    with db() as session:
        return credit_reports.status(session, tenant_of(session, slug), now=now)[
            "available"
        ]


def audit_ok(db) -> bool:
    from qml_cli.core import credit_reports

    with db() as session:
        report = credit_reports.audit(session)
    assert report["mismatches"] == []
    return report["ok"]
