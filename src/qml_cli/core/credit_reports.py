"""Read-side views of the ledger: status, history, stats, audit and alerts."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qml_cli.core import clock, ledger
from qml_cli.core.models import (
    CreditAlert,
    MlCreditGrant,
    MlCreditHold,
    MlCredits,
    MlUsageHistory,
    SubscriptionPlan,
    Tenant,
)
from qml_cli.errors import InvalidInput

WARNING_RATIO = 0.70
CRITICAL_RATIO = 0.90
STATES = ("ok", "warning", "critical", "empty")


def alert_state(account: MlCredits) -> str:
    """Return ok, warning (70% of the allowance used), critical (90%) or empty."""
    if ledger.balance(account) <= 0:
        return "empty"
    if account.allowance <= 0:
        return "ok"
    ratio = account.used_this_period / account.allowance
    if ratio >= CRITICAL_RATIO:
        return "critical"
    if ratio >= WARNING_RATIO:
        return "warning"
    return "ok"


def status(session: Session, tenant: Tenant, now: dt.datetime | None = None) -> dict[str, Any]:
    """Balances of the current period; grants past their expiry do not count."""
    now = now or clock.now()
    account = session.scalar(select(MlCredits).where(MlCredits.tenant_id == tenant.id))
    plan = session.get(SubscriptionPlan, tenant.plan_id)
    grants = ledger.live_grants(session, tenant, now)
    grant_total = sum(grant.remaining for grant in grants)
    period_over = account.period_end <= now
    allowance_left = 0 if period_over else account.allowance_remaining
    return {
        "tenant": tenant.slug, "plan": plan.name, "allowance": account.allowance,
        "used": account.used_this_period, "allowance_remaining": allowance_left,
        "grants": grant_total, "held": account.held,
        "available": allowance_left + grant_total,
        "period_start": account.period_start, "period_end": account.period_end,
        "period_pending_reset": period_over, "timezone": tenant.timezone,
        "state": alert_state(account),
        "grant_buckets": [{"grant_id": g.id, "remaining": g.remaining, "priority": g.priority,
                           "expires_at": g.expires_at, "reason": g.reason} for g in grants],
    }


def history(session: Session, tenant: Tenant, *, since: dt.datetime | None = None,
            until: dt.datetime | None = None, operation: str | None = None,
            limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Ledger rows of the tenant, newest first."""
    if limit < 1 or limit > 10_000:
        raise InvalidInput(f"invalid --limit {limit}.", hint="Use 1-10000.")
    if offset < 0:
        raise InvalidInput(f"invalid --offset {offset}.", hint="Use 0 or more.")
    query = select(MlUsageHistory).where(MlUsageHistory.tenant_id == tenant.id)
    if since:
        query = query.where(MlUsageHistory.created_at >= since)
    if until:
        query = query.where(MlUsageHistory.created_at < until)
    if operation:
        query = query.where(MlUsageHistory.operation == operation)
    query = query.order_by(MlUsageHistory.id.desc()).limit(limit).offset(offset)
    return [{"id": row.id, "created_at": row.created_at, "kind": row.kind,
             "operation": row.operation, "credits": row.credits,
             "balance_after": row.balance_after, "buckets": row.buckets,
             "idempotency_key": row.idempotency_key, "success": row.success,
             "error": row.error, "processing_time_ms": row.processing_time_ms,
             "context": row.context} for row in session.scalars(query)]


def stats(session: Session, tenant: Tenant, *, period: str,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """Uses, credits, success rate and mean processing time by operation over the
    last day, week or month (calendar month in the tenant's time zone)."""
    now = now or clock.now()
    if period == "day":
        since = now - dt.timedelta(days=1)
    elif period == "week":
        since = now - dt.timedelta(days=7)
    elif period == "month":
        since = clock.month_start(now, tenant.timezone)
    else:
        raise InvalidInput(f"invalid --period {period!r}.", hint="Use day, week or month.")
    rows = session.scalars(select(MlUsageHistory).where(
        MlUsageHistory.tenant_id == tenant.id, MlUsageHistory.created_at >= since,
        MlUsageHistory.kind.in_(("consume", "release", "refund")))).all()
    by_operation: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"uses": 0, "failures": 0, "credits": 0, "times": []})
    for row in rows:
        item = by_operation[row.operation]
        item["credits"] -= row.credits
        if row.kind == "consume":
            item["uses"] += 1
            if row.processing_time_ms is not None:
                item["times"].append(row.processing_time_ms)
        elif row.kind == "release":
            item["failures"] += 1
    result = []
    for operation, item in sorted(by_operation.items()):
        uses = item["uses"]
        result.append({"operation": operation, "uses": uses, "credits": item["credits"],
                       "success_rate": (uses - item["failures"]) / uses if uses else None,
                       "mean_processing_time_ms": sum(item["times"]) / len(item["times"])
                       if item["times"] else None})
    return {"tenant": tenant.slug, "period": period, "since": since, "until": now,
            "operations": result}


def audit(session: Session) -> dict[str, Any]:
    """Recompute every balance from the ledger and list each mismatch."""
    mismatches: list[dict[str, Any]] = []
    tenants = session.scalars(select(Tenant).order_by(Tenant.id)).all()
    for tenant in tenants:
        mismatches += _audit_tenant(session, tenant)
    rows = session.scalar(select(func.count()).select_from(MlUsageHistory))
    return {"ok": not mismatches, "tenants": len(tenants), "ledger_rows": rows,
            "mismatches": mismatches}


def _audit_tenant(session: Session, tenant: Tenant) -> list[dict[str, Any]]:
    account = session.scalar(select(MlCredits).where(MlCredits.tenant_id == tenant.id))
    if account is None:
        return [{"tenant": tenant.slug, "check": "account", "expected": "a row", "found": None}]
    found: list[dict[str, Any]] = []

    def differ(check: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            found.append({"tenant": tenant.slug, "check": check, "ledger": expected,
                          "cached": actual})

    entries = session.scalars(select(MlUsageHistory).where(
        MlUsageHistory.tenant_id == tenant.id).order_by(MlUsageHistory.id)).all()
    sums: dict[str, int] = defaultdict(int)
    running = 0
    for entry in entries:
        if sum(entry.buckets.values()) != entry.credits:
            differ(f"row {entry.id} buckets", entry.credits, sum(entry.buckets.values()))
        for name, value in entry.buckets.items():
            sums[name] += value
        running += entry.credits
        if entry.balance_after != running:
            differ(f"row {entry.id} balance_after", running, entry.balance_after)
            running = entry.balance_after
    differ("allowance_remaining", sums.get(ledger.ALLOWANCE, 0), account.allowance_remaining)
    grants = session.scalars(select(MlCreditGrant).where(
        MlCreditGrant.tenant_id == tenant.id)).all()
    differ("grant_remaining", sum(v for k, v in sums.items() if k.startswith("grant:")),
           account.grant_remaining)
    for grant in grants:
        differ(f"grant {grant.id} remaining", sums.get(f"grant:{grant.id}", 0), grant.remaining)
        if grant.remaining < 0:
            differ(f"grant {grant.id} non-negative", 0, grant.remaining)
    held = session.scalar(select(func.coalesce(func.sum(MlCreditHold.amount), 0)).where(
        MlCreditHold.tenant_id == tenant.id, MlCreditHold.status == "pending"))
    differ("held", int(held), account.held)
    if account.allowance_remaining < 0:
        differ("allowance non-negative", 0, account.allowance_remaining)
    return found


def alerts(session_factory, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Tenants whose state is not ok this period; each crossing of a threshold is
    recorded once per tenant, threshold and period (`new` marks the first report)."""
    now = now or clock.now()
    with session_factory() as session:
        rows = session.execute(select(Tenant, MlCredits).join(
            MlCredits, MlCredits.tenant_id == Tenant.id).order_by(Tenant.slug)).all()
        snapshot = [(t.id, t.slug, alert_state(a), a.period_start, a.used_this_period,
                     a.allowance, ledger.balance(a)) for t, a in rows]
    report = []
    for tenant_id, slug, state, period_start, used, allowance, available in snapshot:
        if state == "ok":
            continue
        crossed = STATES[1:STATES.index(state) + 1]
        new = []
        for threshold in crossed:
            try:
                with session_factory() as session:
                    session.add(CreditAlert(tenant_id=tenant_id, period_start=period_start,
                                            threshold=threshold, used=used,
                                            allowance=allowance, created_at=now))
                new.append(threshold)
            except IntegrityError:
                pass  # already recorded this period
        report.append({"tenant": slug, "state": state, "used": used, "allowance": allowance,
                       "available": available, "period_start": period_start,
                       "new_crossings": new})
    return report
