"""Ledger mechanics: account locks, bucket draws, ledger rows and period roll-over.

Every change of a balance is one `ml_usage_history` row whose `buckets` field says
which buckets (`allowance`, `grant:ID`) it moved. The cached balances in
`ml_credits` and `ml_credit_grants.remaining` always equal the sums of those
rows; `qml credits audit` checks it. Callers hold the account lock
(`lock_account`) for the whole transaction, so concurrent writers of one tenant
are serialised: `SELECT ... FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core import clock
from qml_cli.core.logs import get_logger
from qml_cli.core.models import (
    MlCreditGrant,
    MlCreditHold,
    MlCredits,
    MlUsageHistory,
    SubscriptionPlan,
    Tenant,
)
from qml_cli.errors import InvalidInput

log = get_logger("ledger")
ALLOWANCE = "allowance"


def lock_account(session: Session, tenant: Tenant) -> MlCredits:
    """Return the tenant's credit account, locked until the transaction ends."""
    statement = select(MlCredits).where(MlCredits.tenant_id == tenant.id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    account = session.execute(statement.execution_options(populate_existing=True)).scalar_one()
    return account


def balance(account: MlCredits) -> int:
    """Credits the tenant can spend now: allowance left plus live grants."""
    return account.allowance_remaining + account.grant_remaining


def append_entry(session: Session, tenant: Tenant, account: MlCredits, *, kind: str,
                 operation: str, buckets: dict[str, int], now: dt.datetime,
                 idempotency_key: str | None = None, success: bool = True,
                 error: str | None = None, context: dict[str, Any] | None = None,
                 processing_time_ms: float | None = None) -> MlUsageHistory:
    """Append one ledger row; `buckets` must already be applied to the account."""
    entry = MlUsageHistory(
        tenant_id=tenant.id, operation=operation, kind=kind,
        credits=sum(buckets.values()), balance_after=balance(account),
        buckets={name: value for name, value in buckets.items() if value},
        idempotency_key=idempotency_key, success=success, error=error,
        context=context or {}, processing_time_ms=processing_time_ms, created_at=now)
    account.updated_at = now
    session.add(entry)
    session.flush()
    log.info("ledger entry", extra={"operation": operation, "tenant_id": tenant.id,
                                    "credits_used": -entry.credits if entry.credits < 0 else 0,
                                    "success": success, "processing_time": processing_time_ms})
    return entry


def live_grants(session: Session, tenant: Tenant, now: dt.datetime) -> list[MlCreditGrant]:
    """Grants with credits left that are in effect at `now`, in burn order:
    priority (lower first), then soonest expiry (none last), then oldest."""
    grants = session.scalars(select(MlCreditGrant).where(
        MlCreditGrant.tenant_id == tenant.id, MlCreditGrant.expired.is_(False),
        MlCreditGrant.remaining > 0)).all()
    grants = [grant for grant in grants if grant.effective_at <= now
              and (grant.expires_at is None or grant.expires_at > now)]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(grants, key=lambda g: (g.priority, g.expires_at or far, g.created_at, g.id))


def draw(session: Session, tenant: Tenant, account: MlCredits, amount: int,
         now: dt.datetime) -> dict[str, int]:
    """Take `amount` from the allowance, then the grants in burn order; return the
    signed share of each bucket. The caller checked that the balance suffices."""
    buckets: dict[str, int] = {}
    take = min(amount, account.allowance_remaining)
    if take:
        account.allowance_remaining -= take
        account.used_this_period += take
        buckets[ALLOWANCE] = -take
    rest = amount - take
    for grant in live_grants(session, tenant, now):
        if rest == 0:
            break
        take = min(rest, grant.remaining)
        grant.remaining -= take
        account.grant_remaining -= take
        buckets[f"grant:{grant.id}"] = -take
        rest -= take
    if rest:
        raise AssertionError(f"draw of {amount} exceeded the balance by {rest}")
    return buckets


def restore(session: Session, account: MlCredits, drawn: dict[str, int],
            drawn_at: dt.datetime, now: dt.datetime) -> dict[str, int]:
    """Give back what a draw took, to the same buckets; return the signed shares.

    The allowance share returns only while the period it came from lasts, and a
    grant's share only while the grant is live, so nothing expired comes back."""
    restored: dict[str, int] = {}
    for name, value in drawn.items():
        amount = -int(value)
        if amount <= 0:
            continue
        if name == ALLOWANCE:
            if drawn_at >= account.period_start:
                account.allowance_remaining += amount
                account.used_this_period -= amount
                restored[name] = amount
            continue
        grant = session.get(MlCreditGrant, int(name.split(":", 1)[1]))
        if grant is None or grant.expired or (grant.expires_at and grant.expires_at <= now):
            continue
        grant.remaining += amount
        account.grant_remaining += amount
        restored[name] = amount
    return restored


def open_account(session: Session, tenant: Tenant, plan: SubscriptionPlan,
                 now: dt.datetime) -> MlCredits:
    """Open the tenant's account for the current period with the plan's allowance."""
    start, end = clock.month_period(now, tenant.timezone)
    account = MlCredits(tenant_id=tenant.id, period_start=start, period_end=end,
                        allowance=plan.monthly_ml_credits,
                        allowance_remaining=plan.monthly_ml_credits, grant_remaining=0,
                        held=0, used_this_period=0, updated_at=now)
    session.add(account)
    session.flush()
    append_entry(session, tenant, account, kind="reset", operation="period_open",
                 buckets={ALLOWANCE: plan.monthly_ml_credits}, now=now,
                 idempotency_key=reset_key(tenant, start),
                 context={"plan": plan.name, "period_start": start.isoformat(),
                          "period_end": end.isoformat()})
    return account


def reset_key(tenant: Tenant, period_start: dt.datetime) -> str:
    return f"reset:{tenant.id}:{period_start.strftime('%Y-%m-%dT%H:%MZ')}"


def roll_periods(session: Session, tenant: Tenant, account: MlCredits,
                 now: dt.datetime) -> list[dict[str, Any]]:
    """Reset every period that has ended by `now`, oldest first, once each.

    Unused allowance expires (less the plan's `rollover_percent`), a pending plan
    change takes effect, and the new allowance starts. Returns one record a period."""
    resets = []
    while account.period_end <= now:
        plan = session.get(SubscriptionPlan, tenant.plan_id)
        leftover = account.allowance_remaining
        carried = leftover * plan.rollover_percent // 100
        boundary = account.period_end
        if leftover - carried:
            account.allowance_remaining -= leftover - carried
            append_entry(session, tenant, account, kind="expire", operation="allowance_expiry",
                         buckets={ALLOWANCE: -(leftover - carried)}, now=now,
                         idempotency_key=f"expire:{tenant.id}:{boundary:%Y-%m-%dT%H:%MZ}",
                         context={"period_end": boundary.isoformat(), "carried": carried})
        if tenant.pending_plan_id:
            tenant.plan_id, tenant.pending_plan_id = tenant.pending_plan_id, None
            plan = session.get(SubscriptionPlan, tenant.plan_id)
        account.period_start = boundary
        account.period_end = clock.add_months(boundary, tenant.timezone)
        account.allowance = plan.monthly_ml_credits
        account.allowance_remaining += plan.monthly_ml_credits
        account.used_this_period = 0
        append_entry(session, tenant, account, kind="reset", operation="monthly_reset",
                     buckets={ALLOWANCE: plan.monthly_ml_credits}, now=now,
                     idempotency_key=reset_key(tenant, boundary),
                     context={"plan": plan.name, "period_start": boundary.isoformat(),
                              "period_end": account.period_end.isoformat(),
                              "carried": carried})
        resets.append({"tenant": tenant.slug, "period_start": boundary,
                       "period_end": account.period_end, "plan": plan.name,
                       "allowance": plan.monthly_ml_credits, "expired": leftover - carried,
                       "carried": carried})
    return resets


def expire_grants(session: Session, tenant: Tenant, account: MlCredits,
                  now: dt.datetime) -> int:
    """End grants whose expiry has passed, writing one expiry row each."""
    grants = session.scalars(select(MlCreditGrant).where(
        MlCreditGrant.tenant_id == tenant.id, MlCreditGrant.expired.is_(False),
        MlCreditGrant.expires_at.is_not(None), MlCreditGrant.expires_at <= now)).all()
    for grant in grants:
        grant.expired = True
        if grant.remaining:
            lost, grant.remaining = grant.remaining, 0
            account.grant_remaining -= lost
            append_entry(session, tenant, account, kind="expire", operation="grant_expiry",
                         buckets={f"grant:{grant.id}": -lost}, now=now,
                         idempotency_key=f"expire:grant:{grant.id}",
                         context={"grant_id": grant.id, "expires_at": grant.expires_at})
    return len(grants)


def expire_holds(session: Session, tenant: Tenant, account: MlCredits,
                 now: dt.datetime) -> int:
    """Release pending holds whose timeout has passed."""
    holds = session.scalars(select(MlCreditHold).where(
        MlCreditHold.tenant_id == tenant.id, MlCreditHold.status == "pending",
        MlCreditHold.expires_at <= now)).all()
    for hold in holds:
        release(session, tenant, account, hold, reason="hold timed out", status="expired",
                now=now)
    return len(holds)


def release(session: Session, tenant: Tenant, account: MlCredits, hold: MlCreditHold, *,
            reason: str, status: str, now: dt.datetime) -> MlUsageHistory:
    """Return a pending hold's credits to their buckets and close the hold."""
    charge = session.scalar(select(MlUsageHistory).where(
        MlUsageHistory.idempotency_key == hold.idempotency_key))
    restored = restore(session, account, charge.buckets, charge.created_at, now)
    hold.status, hold.resolved_at = status, now
    account.held -= hold.amount
    return append_entry(session, tenant, account, kind="release", operation=hold.operation,
                        buckets=restored, now=now,
                        idempotency_key=f"release:{hold.idempotency_key}", success=False,
                        error=reason, context={"hold_id": hold.id, "held": hold.amount})


def settle(session: Session, tenant: Tenant, account: MlCredits, now: dt.datetime, *,
           resets_enabled: bool = True) -> None:
    """Bring the locked account up to `now`: past periods, grants and holds."""
    if resets_enabled:
        roll_periods(session, tenant, account, now)
    expire_grants(session, tenant, account, now)
    expire_holds(session, tenant, account, now)


def validate_amount(amount: Any, name: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise InvalidInput(f"invalid {name} {amount!r}.",
                           hint="Credits are whole numbers of 1 or more.")
    if amount > 1_000_000_000:
        raise InvalidInput(f"{name} {amount} is too large.",
                           hint="Use at most 1000000000 credits in one operation.")
    return amount


def validate_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > 150 or not key.isprintable():
        raise InvalidInput(f"invalid idempotency key {key!r}.",
                           hint="Use 1-150 printable characters that identify the operation.")
    if key.startswith(("reset:", "expire:", "release:", "refund:")):
        raise InvalidInput(f"idempotency key {key!r} uses a reserved prefix.",
                           hint="Keys may not start with reset:, expire:, release: or refund:.")
    return key
