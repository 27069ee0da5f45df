"""Ledger upkeep: period roll-over, scheduled and expired grants, timed-out holds.

`settle` brings a locked account up to a given instant. Every write calls it first
(through `prepare`), so resets and expiries also happen lazily when no job ran, and
`qml credits reset-monthly` and `qml credits expire` find nothing left to do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core import clock, ledger
from qml_cli.core.models import (
    MlCreditGrant,
    MlCreditHold,
    MlCredits,
    MlUsageHistory,
    SubscriptionPlan,
    Tenant,
)


def next_period(
    session: Session,
    tenant: Tenant,
    plan_id: int,
    pending_plan_id: int | None,
    remaining: int,
    boundary: dt.datetime,
) -> tuple[SubscriptionPlan, int, dt.datetime]:
    """Return (plan, carried credits, period end) of the period starting at
    `boundary`: the ending plan's `rollover_percent` of `remaining` carries over
    (rounded down) and a pending plan change takes effect."""
    ending = session.get(SubscriptionPlan, plan_id)
    carried = remaining * ending.rollover_percent // 100
    plan = session.get(SubscriptionPlan, pending_plan_id) if pending_plan_id else ending
    return plan, carried, clock.add_months(boundary, tenant.timezone)


def roll_periods(
    session: Session, tenant: Tenant, account: MlCredits, now: dt.datetime
) -> list[dict[str, Any]]:
    """Reset every period that has ended by `now`, oldest first, once each.

    Holds that timed out before a period's end are released before that period
    rolls, so their credits return to the period they were drawn in whichever job
    runs first. Returns one record a period."""
    if account.period_end > now:
        return []
    session.flush()
    session.refresh(tenant, ["plan_id", "pending_plan_id"])
    resets = []
    while account.period_end <= now:
        released = 0
        if account.held > 0:
            released = expire_holds(
                session, tenant, account, now, due_by=account.period_end
            )
        resets.append(
            {**_roll_one(session, tenant, account, now), "holds_released": released}
        )
    return resets


def _roll_one(
    session: Session, tenant: Tenant, account: MlCredits, now: dt.datetime
) -> dict[str, Any]:
    """Expire the ending period's unused allowance (less the rollover), apply a
    pending plan change and start the next period's allowance."""
    boundary = account.period_end
    plan, carried, end = next_period(
        session,
        tenant,
        tenant.plan_id,
        tenant.pending_plan_id,
        account.allowance_remaining,
        boundary,
    )
    expired = account.allowance_remaining - carried
    if expired:
        account.allowance_remaining = carried
        ledger.append_entry(
            session,
            tenant,
            account,
            kind="expire",
            operation="allowance_expiry",
            buckets={ledger.ALLOWANCE: -expired},
            now=now,
            idempotency_key=f"expire:{ledger.reset_key(tenant, boundary)}",
            context={"period_end": boundary.isoformat(), "carried": carried},
        )
    tenant.plan_id, tenant.pending_plan_id = plan.id, None
    account.period_start, account.period_end = boundary, end
    account.allowance, account.carried = plan.monthly_ml_credits, carried
    account.allowance_remaining += plan.monthly_ml_credits
    account.used_this_period = 0
    ledger.append_entry(
        session,
        tenant,
        account,
        kind="reset",
        operation="monthly_reset",
        buckets={ledger.ALLOWANCE: plan.monthly_ml_credits},
        now=now,
        idempotency_key=ledger.reset_key(tenant, boundary),
        context={
            "plan": plan.name,
            "period_start": boundary.isoformat(),
            "period_end": end.isoformat(),
            "carried": carried,
        },
    )
    return {
        "tenant": tenant.slug,
        "period_start": boundary,
        "period_end": end,
        "plan": plan.name,
        "allowance": plan.monthly_ml_credits,
        "expired": expired,
        "carried": carried,
    }


def credit_grant(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    grant: MlCreditGrant,
    now: dt.datetime,
) -> MlUsageHistory:
    """Put a grant's credits into the balance with its ledger row."""
    grant.remaining, grant.activated_at = grant.amount, now
    account.grant_remaining += grant.amount
    return ledger.append_entry(
        session,
        tenant,
        account,
        kind="grant",
        operation="grant",
        buckets={f"grant:{grant.id}": grant.amount},
        now=now,
        idempotency_key=f"grant:{grant.idempotency_key}",
        context={
            "reason": grant.reason,
            "grant_id": grant.id,
            "effective_at": grant.effective_at.isoformat(),
        },
    )


def activate_grants(
    session: Session, tenant: Tenant, account: MlCredits, now: dt.datetime
) -> int:
    """Credit the scheduled grants whose effective time has come; return how many."""
    if account.next_grant_at is None or account.next_grant_at > now:
        return 0
    scheduled = session.scalars(
        select(MlCreditGrant)
        .where(
            MlCreditGrant.tenant_id == tenant.id,
            MlCreditGrant.activated_at.is_(None),
            MlCreditGrant.expired.is_(False),
        )
        .order_by(MlCreditGrant.effective_at, MlCreditGrant.id)
    ).all()
    due = [grant for grant in scheduled if grant.effective_at <= now]
    for grant in due:
        credit_grant(session, tenant, account, grant, now)
    later = [grant.effective_at for grant in scheduled if grant.effective_at > now]
    account.next_grant_at = min(later, default=None)
    return len(due)


def end_grants(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    grants: list[MlCreditGrant],
    now: dt.datetime,
) -> list[MlCreditGrant]:
    """Mark the `grants` past their expiry as expired, writing one expiry row for
    each that had credits left; return the grants still live."""
    live = []
    for grant in grants:
        if grant.expires_at is None or grant.expires_at > now:
            live.append(grant)
            continue
        grant.expired = True
        if grant.remaining:
            lost, grant.remaining = grant.remaining, 0
            account.grant_remaining -= lost
            ledger.append_entry(
                session,
                tenant,
                account,
                kind="expire",
                operation="grant_expiry",
                buckets={f"grant:{grant.id}": -lost},
                now=now,
                idempotency_key=f"expire:grant:{grant.id}",
                context={
                    "grant_id": grant.id,
                    "expires_at": grant.expires_at.isoformat(),
                },
            )
    session.flush()
    return live


def expire_grants(
    session: Session, tenant: Tenant, account: MlCredits, now: dt.datetime
) -> int:
    """End every grant of the tenant whose expiry has passed; return how many."""
    grants = session.scalars(
        select(MlCreditGrant).where(
            MlCreditGrant.tenant_id == tenant.id,
            MlCreditGrant.expired.is_(False),
            MlCreditGrant.expires_at.is_not(None),
            MlCreditGrant.expires_at <= now,
        )
    ).all()
    end_grants(session, tenant, account, list(grants), now)
    return len(grants)


def expire_holds(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    now: dt.datetime,
    due_by: dt.datetime | None = None,
) -> int:
    """Release pending holds whose timeout has passed by `due_by` (default `now`);
    return how many."""
    holds = session.scalars(
        select(MlCreditHold)
        .where(
            MlCreditHold.tenant_id == tenant.id,
            MlCreditHold.status == "pending",
            MlCreditHold.expires_at <= (due_by or now),
        )
        .order_by(MlCreditHold.id)
    ).all()
    for hold in holds:
        release(
            session,
            tenant,
            account,
            hold,
            reason="hold timed out",
            status="expired",
            now=now,
        )
    return len(holds)


def release(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    hold: MlCreditHold,
    *,
    reason: str,
    status: str,
    now: dt.datetime,
    processing_time_ms: float | None = None,
) -> MlUsageHistory:
    """Return a pending hold's credits to their buckets and close the hold."""
    charge = session.scalar(
        select(MlUsageHistory).where(
            MlUsageHistory.idempotency_key == hold.idempotency_key
        )
    )
    restored = ledger.restore(session, account, charge.buckets, charge.created_at, now)
    hold.status, hold.resolved_at = status, now
    account.held -= hold.amount
    return ledger.append_entry(
        session,
        tenant,
        account,
        kind="release",
        operation=hold.operation,
        buckets=restored,
        now=now,
        idempotency_key=f"release:{hold.idempotency_key}",
        success=False,
        error=reason,
        processing_time_ms=processing_time_ms,
        context={"hold_id": hold.id, "held": hold.amount},
    )


@dataclass
class Settled:
    """The changes `settle` made, and the live grants in burn order."""

    grants: list[MlCreditGrant]
    resets: list[dict[str, Any]] = field(default_factory=list)
    grants_activated: int = 0
    grants_expired: int = 0
    holds_released: int = 0


def settle(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    now: dt.datetime,
    *,
    resets_enabled: bool = True,
    all_grants: bool = False,
    all_holds: bool = False,
) -> Settled:
    """Bring the locked account up to `now`: past periods, scheduled and expired
    grants, timed-out holds.

    Without `all_grants` and `all_holds`, each step runs only when the cached
    account shows it can change a balance, so a consumption of an account without
    grants or holds reads nothing more. `qml credits expire` passes both, so that
    it also closes used-up grants and holds of 0 credits."""
    settled = Settled(grants=[])
    if resets_enabled:
        settled.resets = roll_periods(session, tenant, account, now)
        settled.holds_released = sum(item["holds_released"] for item in settled.resets)
    settled.grants_activated = activate_grants(session, tenant, account, now)
    if account.held > 0 or all_holds:
        settled.holds_released += expire_holds(session, tenant, account, now)
    if all_grants:
        settled.grants_expired = expire_grants(session, tenant, account, now)
    # After the holds, whose release may give credits back to a used-up grant.
    if account.grant_remaining > 0:
        settled.grants = end_grants(
            session, tenant, account, ledger.active_grants(session, tenant), now
        )
    return settled


@dataclass
class Locked:
    """A locked and settled account with its live grants and the credit switch."""

    account: MlCredits
    grants: list[MlCreditGrant]
    credits_enabled: bool


def prepare(session: Session, tenant: Tenant, now: dt.datetime) -> Locked:
    """Lock the tenant's account, settle it at `now` and read the credit switches
    ML_CREDITS_ENABLED and MONTHLY_RESET_ENABLED.

    A switch that `qml_cli.core.flags` lets the database override is read in the
    lock statement, so a stored flag wins over the environment as in
    `flags.effective_settings`, without a query of its own."""
    from qml_cli.core.flags import FLAG_SETTINGS
    from qml_cli.core.settings import get_settings

    values = dict(get_settings().values)
    names = [name for name in SWITCHES if name in FLAG_SETTINGS]
    account, stored = ledger.lock_account_with_flags(session, tenant, names)
    values.update(stored)
    settled = settle(
        session, tenant, account, now, resets_enabled=values["MONTHLY_RESET_ENABLED"]
    )
    return Locked(account, settled.grants, values["ML_CREDITS_ENABLED"])


SWITCHES = ("ML_CREDITS_ENABLED", "MONTHLY_RESET_ENABLED")
