"""Scheduled credit jobs over every tenant: the monthly reset and expiry.

Each tenant runs in its own transaction with its account locked, so the jobs are
safe to run twice in a row or from two hosts at once: the second run finds the
work done and writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from qml_cli.core import clock, ledger, ledger_settle
from qml_cli.core.logs import get_logger
from qml_cli.core.models import MlCreditGrant, MlCreditHold, MlCredits, Tenant
from qml_cli.errors import InvalidInput

log = get_logger("credit_jobs")
SessionFactory = Callable[[], AbstractContextManager[Session]]


def _resets_enabled(session: Session) -> bool:
    from qml_cli.core.flags import effective_settings

    return bool(effective_settings(session)["MONTHLY_RESET_ENABLED"])


def _periods_due(period_end: dt.datetime, tz_name: str, now: dt.datetime) -> int:
    count = 0
    while period_end <= now:
        period_end = clock.add_months(period_end, tz_name)
        count += 1
    return count


def reset_monthly(
    session_factory: SessionFactory,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Reset every tenant whose period has ended, catching up missed months.

    With MONTHLY_RESET_ENABLED false or `dry_run`, it reports the due tenants and
    writes nothing. A tenant that fails is logged and listed under `failed`, and
    the others still reset."""
    now = now or clock.now()
    with session_factory() as session:
        enabled = _resets_enabled(session)
        due = session.execute(
            select(Tenant.id, Tenant.slug, Tenant.timezone, MlCredits.period_end)
            .join(MlCredits, MlCredits.tenant_id == Tenant.id)
            .where(MlCredits.period_end <= now)
            .order_by(Tenant.id)
        ).all()
    report: dict[str, Any] = {
        "enabled": enabled,
        "dry_run": dry_run,
        "checked_at": now,
        "due": len(due),
        "resets": [],
        "failed": [],
    }
    if not enabled or dry_run:
        report["resets"] = [
            {
                "tenant": slug,
                "would_reset": True,
                "periods": _periods_due(period_end, tz_name, now),
            }
            for _, slug, tz_name, period_end in due
        ]
        return report
    for tenant_id, slug, _tz_name, _period_end in due:
        try:
            with session_factory() as session:
                tenant = session.get(Tenant, tenant_id)
                account = ledger.lock_account(session, tenant)
                report["resets"] += ledger_settle.roll_periods(
                    session, tenant, account, now
                )
        except (InvalidInput, SQLAlchemyError) as exc:
            log.error(
                "monthly reset failed",
                extra={
                    "operation": "reset_monthly",
                    "tenant_id": tenant_id,
                    "success": False,
                    "error": str(exc),
                },
            )
            report["failed"].append({"tenant": slug, "error": str(exc)})
    return report


def expire_all(
    session_factory: SessionFactory, *, now: dt.datetime | None = None
) -> dict[str, int]:
    """Credit scheduled grants that took effect, end expired grants and release
    timed-out holds, for every tenant that has one; return the counts.

    A tenant is settled in full, so a reset that is due is written first (unless
    MONTHLY_RESET_ENABLED is false) and a hold returns credits to the period it
    was drawn in."""
    now = now or clock.now()
    with session_factory() as session:
        grant_tenants = set(
            session.scalars(
                select(MlCreditGrant.tenant_id).where(
                    MlCreditGrant.expired.is_(False), MlCreditGrant.expires_at <= now
                )
            )
        )
        hold_tenants = set(
            session.scalars(
                select(MlCreditHold.tenant_id).where(
                    MlCreditHold.status == "pending", MlCreditHold.expires_at <= now
                )
            )
        )
        scheduled_tenants = set(
            session.scalars(
                select(MlCredits.tenant_id).where(MlCredits.next_grant_at <= now)
            )
        )
    totals = {
        "resets": 0,
        "grants_activated": 0,
        "grants_expired": 0,
        "holds_released": 0,
        "tenants": 0,
    }
    for tenant_id in sorted(grant_tenants | hold_tenants | scheduled_tenants):
        with session_factory() as session:
            tenant = session.get(Tenant, tenant_id)
            account = ledger.lock_account(session, tenant)
            settled = ledger_settle.settle(
                session,
                tenant,
                account,
                now,
                resets_enabled=_resets_enabled(session),
                all_grants=True,
                all_holds=True,
            )
            totals["grants_activated"] += settled.grants_activated
            totals["grants_expired"] += settled.grants_expired
            totals["holds_released"] += settled.holds_released
            totals["resets"] += len(settled.resets)
            totals["tenants"] += 1
    return totals
