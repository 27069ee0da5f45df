"""Read-side views of the ledger: status, history, stats and alerts.

Status and alerts show the account as the next write would leave it: when a period
has ended and no reset ran yet, they project the reset (unless
MONTHLY_RESET_ENABLED is false), and grants count by their effective and expiry
times. The audit lives in `credit_audit` and is re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core import clock, ledger, ledger_settle
from qml_cli.core.credit_audit import audit
from qml_cli.core.models import (
    CreditAlert,
    MlCreditGrant,
    MlCredits,
    MlUsageHistory,
    SubscriptionPlan,
    Tenant,
)
from qml_cli.errors import InvalidInput

__all__ = [
    "alert_state",
    "alerts",
    "audit",
    "history",
    "project_period",
    "stats",
    "status",
]

WARNING_RATIO = 0.70
CRITICAL_RATIO = 0.90
STATES = ("ok", "warning", "critical", "empty")


@dataclass
class PeriodView:
    """The allowance figures of the current period, projected past a due reset."""

    period_start: dt.datetime
    period_end: dt.datetime
    plan_id: int
    pending_plan_id: int | None
    allowance: int
    carried: int
    allowance_remaining: int
    used: int
    reset_pending: bool


def project_period(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    now: dt.datetime,
    resets_enabled: bool = True,
) -> PeriodView:
    """Return the period figures that settling the account at `now` would write,
    without writing; the same steps as `ledger_settle.roll_periods`."""
    view = PeriodView(
        account.period_start,
        account.period_end,
        tenant.plan_id,
        tenant.pending_plan_id,
        account.allowance,
        account.carried,
        account.allowance_remaining,
        account.used_this_period,
        reset_pending=account.period_end <= now,
    )
    while resets_enabled and view.period_end <= now:
        plan, carried, end = ledger_settle.next_period(
            session,
            tenant,
            view.plan_id,
            view.pending_plan_id,
            view.allowance_remaining,
            view.period_end,
        )
        view.period_start, view.period_end = view.period_end, end
        view.plan_id, view.pending_plan_id = plan.id, None
        view.allowance, view.carried = plan.monthly_ml_credits, carried
        view.allowance_remaining = carried + plan.monthly_ml_credits
        view.used = 0
    return view


def crossings(available: int, used: int, allowance: int) -> list[str]:
    """Return the thresholds crossed: warning (70% of the period's allowance used),
    critical (90%) and empty (nothing available), in that order."""
    crossed = []
    if allowance > 0 and used >= WARNING_RATIO * allowance:
        crossed.append("warning")
    if allowance > 0 and used >= CRITICAL_RATIO * allowance:
        crossed.append("critical")
    if available <= 0:
        crossed.append("empty")
    return crossed


def alert_state(account: MlCredits) -> str:
    """Return ok, warning, critical or empty for the cached figures of `account`."""
    crossed = crossings(
        ledger.balance(account),
        account.used_this_period,
        account.allowance + account.carried,
    )
    return crossed[-1] if crossed else "ok"


def _grant_views(grants: list[MlCreditGrant], now: dt.datetime) -> tuple[list, list]:
    """Split grants into (live, scheduled) as of `now`, as dictionaries."""
    live, scheduled = [], []
    for grant in sorted(grants, key=ledger.burn_order):
        if grant.expired or (grant.expires_at is not None and grant.expires_at <= now):
            continue
        remaining = grant.remaining if grant.activated_at else grant.amount
        item = {
            "grant_id": grant.id,
            "remaining": remaining,
            "priority": grant.priority,
            "effective_at": grant.effective_at,
            "expires_at": grant.expires_at,
            "reason": grant.reason,
        }
        if grant.activated_at is None and grant.effective_at > now:
            scheduled.append(item)
        elif remaining > 0:
            live.append(item)
    return live, scheduled


def _open_grants(session: Session, tenant_ids: list[int]) -> dict[int, list]:
    grants: dict[int, list[MlCreditGrant]] = defaultdict(list)
    for grant in session.scalars(
        select(MlCreditGrant).where(
            MlCreditGrant.tenant_id.in_(tenant_ids), MlCreditGrant.expired.is_(False)
        )
    ):
        grants[grant.tenant_id].append(grant)
    return grants


def _resets_enabled(session: Session) -> bool:
    from qml_cli.core.flags import effective_settings

    return bool(effective_settings(session)["MONTHLY_RESET_ENABLED"])


def status(
    session: Session, tenant: Tenant, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Return the balances of the current period as of `now`. `reset_pending` is
    True when the stored account is behind, and the next write or reset-monthly
    then writes the reset."""
    now = now or clock.now()
    account = session.scalar(select(MlCredits).where(MlCredits.tenant_id == tenant.id))
    view = project_period(session, tenant, account, now, _resets_enabled(session))
    live, scheduled = _grant_views(_open_grants(session, [tenant.id])[tenant.id], now)
    grant_total = sum(item["remaining"] for item in live)
    available = view.allowance_remaining + grant_total
    crossed = crossings(available, view.used, view.allowance + view.carried)
    plan = session.get(SubscriptionPlan, view.plan_id)
    return {
        "tenant": tenant.slug,
        "plan": plan.name,
        "allowance": view.allowance,
        "carried": view.carried,
        "used": view.used,
        "allowance_remaining": view.allowance_remaining,
        "grants": grant_total,
        "held": account.held,
        "available": available,
        "period_start": view.period_start,
        "period_end": view.period_end,
        "reset_pending": view.reset_pending,
        "timezone": tenant.timezone,
        "state": crossed[-1] if crossed else "ok",
        "grant_buckets": live,
        "scheduled_grants": scheduled,
    }


def history(
    session: Session,
    tenant: Tenant,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    operation: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Ledger rows of the tenant with `since <= created_at < until`, newest first."""
    if limit < 1 or limit > 10_000:
        raise InvalidInput(f"invalid --limit {limit}.", hint="Use 1-10000.")
    if offset < 0:
        raise InvalidInput(f"invalid --offset {offset}.", hint="Use 0 or more.")
    if since and until and since >= until:
        raise InvalidInput(
            f"--since {since.isoformat()} is not before --until {until.isoformat()}.",
            hint="Swap or widen the range.",
        )
    query = select(MlUsageHistory).where(MlUsageHistory.tenant_id == tenant.id)
    if since:
        query = query.where(MlUsageHistory.created_at >= since)
    if until:
        query = query.where(MlUsageHistory.created_at < until)
    if operation:
        query = query.where(MlUsageHistory.operation == operation)
    query = query.order_by(MlUsageHistory.id.desc()).limit(limit).offset(offset)
    return [
        {
            "id": row.id,
            "created_at": row.created_at,
            "kind": row.kind,
            "operation": row.operation,
            "credits": row.credits,
            "balance_after": row.balance_after,
            "buckets": row.buckets,
            "idempotency_key": row.idempotency_key,
            "success": row.success,
            "error": row.error,
            "processing_time_ms": row.processing_time_ms,
            "context": row.context,
        }
        for row in session.scalars(query)
    ]


def _stats_since(tenant: Tenant, period: str, now: dt.datetime) -> dt.datetime:
    if period == "day":
        return now - dt.timedelta(days=1)
    if period == "week":
        return now - dt.timedelta(days=7)
    if period == "month":
        return clock.month_start(now, tenant.timezone)
    raise InvalidInput(f"invalid --period {period!r}.", hint="Use day, week or month.")


def stats(
    session: Session, tenant: Tenant, *, period: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Uses, net credits, success rate and mean processing time (ms) by operation
    over the last day, week or calendar month (in the tenant's time zone).

    A use is a consumption or reservation; a released reservation counts as a
    failure and its credits come back; refunds are subtracted from the credits."""
    now = now or clock.now()
    since = _stats_since(tenant, period, now)
    rows = session.execute(
        select(
            MlUsageHistory.operation,
            MlUsageHistory.kind,
            MlUsageHistory.credits,
            MlUsageHistory.processing_time_ms,
        ).where(
            MlUsageHistory.tenant_id == tenant.id,
            MlUsageHistory.created_at >= since,
            MlUsageHistory.created_at < now,
            MlUsageHistory.kind.in_(("consume", "commit", "release", "refund")),
        )
    ).all()
    totals: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"uses": 0, "failures": 0, "credits": 0, "times": []}
    )
    for operation, kind, credits, processing_time_ms in rows:
        item = totals[operation]
        item["credits"] -= credits
        item["uses"] += kind == "consume"
        item["failures"] += kind == "release"
        if processing_time_ms is not None and kind != "refund":
            item["times"].append(processing_time_ms)
    result = []
    for operation, item in sorted(totals.items()):
        uses, times = item["uses"], item["times"]
        result.append(
            {
                "operation": operation,
                "uses": uses,
                "failures": item["failures"],
                "credits": item["credits"],
                "success_rate": (uses - item["failures"]) / uses if uses else None,
                "mean_processing_time_ms": sum(times) / len(times) if times else None,
            }
        )
    return {
        "tenant": tenant.slug,
        "period": period,
        "since": since,
        "until": now,
        "operations": result,
    }


def _record_crossing(session: Session, values: dict[str, Any]) -> bool:
    """Insert one alert row unless it exists; return True when it was new."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = (
        insert(CreditAlert)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "period_start", "threshold"]
        )
        .returning(CreditAlert.id)
    )
    return session.execute(statement).scalar() is not None


def alerts(session_factory, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Tenants past a threshold this period. Each crossing is recorded once per
    tenant, threshold and period; `new_crossings` lists those recorded now."""
    now = now or clock.now()
    report = []
    with session_factory() as session:
        resets_enabled = _resets_enabled(session)
        rows = session.execute(
            select(Tenant, MlCredits)
            .join(MlCredits, MlCredits.tenant_id == Tenant.id)
            .order_by(Tenant.slug)
        ).all()
        grants = _open_grants(session, [tenant.id for tenant, _ in rows])
        for tenant, account in rows:
            view = project_period(session, tenant, account, now, resets_enabled)
            live, _ = _grant_views(grants[tenant.id], now)
            available = view.allowance_remaining + sum(g["remaining"] for g in live)
            allowance = view.allowance + view.carried
            crossed = crossings(available, view.used, allowance)
            if not crossed:
                continue
            new = [
                threshold
                for threshold in crossed
                if _record_crossing(
                    session,
                    {
                        "tenant_id": tenant.id,
                        "period_start": view.period_start,
                        "threshold": threshold,
                        "used": view.used,
                        "allowance": allowance,
                        "created_at": now,
                    },
                )
            ]
            report.append(
                {
                    "tenant": tenant.slug,
                    "state": crossed[-1],
                    "used": view.used,
                    "allowance": allowance,
                    "available": available,
                    "period_start": view.period_start,
                    "crossed": crossed,
                    "new_crossings": new,
                }
            )
    return report
