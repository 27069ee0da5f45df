"""Grants, refunds and plan changes of one tenant, each in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core import clock, ledger, ledger_settle
from qml_cli.core.models import (
    MlCreditGrant,
    MlCreditHold,
    MlUsageHistory,
    SubscriptionPlan,
    Tenant,
)
from qml_cli.core.tenants import get_plan
from qml_cli.errors import Conflict, InvalidInput, NotFound


def derive_grant_key(
    slug: str,
    amount: int,
    reason: str,
    expires: dt.datetime | None,
    priority: int,
    now: dt.datetime,
) -> str:
    """Derive a key from the arguments and the current minute, so that a script
    retried within the minute grants once."""
    text = "|".join(
        [
            slug,
            str(amount),
            reason,
            expires.isoformat() if expires else "",
            str(priority),
            now.strftime("%Y-%m-%dT%H:%M"),
        ]
    )
    return "grant-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _validate_grant(
    reason: str,
    priority: int,
    expires_at: dt.datetime | None,
    effective_at: dt.datetime,
    now: dt.datetime,
) -> None:
    if (
        not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > 500
        or not reason.isprintable()
    ):
        raise InvalidInput(
            f"invalid grant reason {reason!r}: a --reason needs 1-500 printable "
            "characters.",
            hint='e.g. --reason "support ticket 118"',
        )
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not 0 <= priority <= 1000
    ):
        raise InvalidInput(
            f"invalid priority {priority!r}.", hint="Use 0-1000; lower burns first."
        )
    if expires_at is not None and expires_at <= max(now, effective_at):
        raise InvalidInput(
            f"expiry {expires_at.isoformat()} is not after the grant "
            f"takes effect ({max(now, effective_at).isoformat()}).",
            hint="Pass a later --expires date.",
        )


def grant(
    session: Session,
    tenant: Tenant,
    amount: int,
    *,
    reason: str,
    key: str,
    expires_at: dt.datetime | None = None,
    priority: int = 100,
    effective_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Add a grant bucket once per `key`; return it with `replayed` set on a repeat.

    A grant with a later `effective_at` stays out of the balance until then; its
    ledger row is written when it takes effect."""
    now = now or clock.now()
    effective_at = effective_at or now
    ledger.validate_amount(amount)
    ledger.validate_key(key)
    _validate_grant(reason, priority, expires_at, effective_at, now)
    locked = ledger_settle.prepare(session, tenant, now)
    existing = session.scalar(
        select(MlCreditGrant).where(MlCreditGrant.idempotency_key == key)
    )
    if existing is not None:
        if existing.tenant_id != tenant.id or existing.amount != amount:
            raise Conflict(
                f"idempotency key {key!r} was already used for another grant.",
                hint="Use a new key for a different grant.",
            )
        return {**_grant_dict(existing), "tenant": tenant.slug, "replayed": True}

    account = locked.account
    row = MlCreditGrant(
        tenant_id=tenant.id,
        amount=amount,
        remaining=0,
        priority=priority,
        reason=reason.strip(),
        effective_at=effective_at,
        expires_at=expires_at,
        idempotency_key=key,
        created_at=now,
    )
    session.add(row)
    session.flush()
    if effective_at <= now:
        ledger_settle.credit_grant(session, tenant, account, row, now)
    else:
        account.next_grant_at = min(account.next_grant_at or effective_at, effective_at)
        session.flush()
    return {**_grant_dict(row), "tenant": tenant.slug, "replayed": False}


def _grant_dict(row: MlCreditGrant) -> dict[str, Any]:
    return {
        "grant_id": row.id,
        "amount": row.amount,
        "remaining": row.remaining,
        "priority": row.priority,
        "reason": row.reason,
        "effective_at": row.effective_at,
        "expires_at": row.expires_at,
        "scheduled": row.activated_at is None,
        "idempotency_key": row.idempotency_key,
    }


def set_plan(
    session: Session,
    tenant: Tenant,
    plan_name: str,
    *,
    effective: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Change the tenant's plan now or from the next period.

    With `now`, this period's allowance left becomes the new plan's allowance plus
    the credits carried over, minus what was used this period (at least 0), so a
    downgrade never refills."""
    now = now or clock.now()
    if effective not in ("now", "next-period"):
        raise InvalidInput(
            f"invalid --effective {effective!r}.", hint="Use now or next-period."
        )
    plan = get_plan(session, plan_name)
    account = ledger_settle.prepare(session, tenant, now).account
    session.flush()
    session.refresh(tenant, ["plan_id", "pending_plan_id"])
    old = session.get(SubscriptionPlan, tenant.plan_id)
    if plan.id == tenant.plan_id and effective == "now":
        raise InvalidInput(
            f"tenant {tenant.slug!r} is already on plan {plan.name!r}.",
            hint="Nothing to change.",
        )
    if effective == "next-period":
        tenant.pending_plan_id = plan.id if plan.id != tenant.plan_id else None
        ledger.append_entry(
            session,
            tenant,
            account,
            kind="plan_change",
            operation="plan_change",
            buckets={},
            now=now,
            context={
                "from": old.name,
                "to": plan.name,
                "effective_at": account.period_end.isoformat(),
            },
        )
        return {
            "tenant": tenant.slug,
            "plan": old.name,
            "pending_plan": plan.name,
            "effective_at": account.period_end,
        }
    tenant.plan_id, tenant.pending_plan_id = plan.id, None
    account.allowance = plan.monthly_ml_credits
    before = account.allowance_remaining
    account.allowance_remaining = ledger.allowance_target(account)
    delta = account.allowance_remaining - before
    ledger.append_entry(
        session,
        tenant,
        account,
        kind="plan_change",
        operation="plan_change",
        buckets={ledger.ALLOWANCE: delta},
        now=now,
        context={"from": old.name, "to": plan.name, "used": account.used_this_period},
    )
    return {
        "tenant": tenant.slug,
        "plan": plan.name,
        "previous_plan": old.name,
        "allowance_remaining": account.allowance_remaining,
        "change": delta,
        "effective_at": now,
    }


def refund(
    session: Session,
    tenant: Tenant,
    key: str,
    *,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Return what the consumption with `key` took, to its buckets, once.

    Shares of buckets that have expired since (a past period's allowance, an
    expired grant) are not restored, and `refunded` reports how much was."""
    now = now or clock.now()
    ledger.validate_key(key)
    charge = session.scalar(
        select(MlUsageHistory).where(MlUsageHistory.idempotency_key == key)
    )
    if charge is None or charge.kind != "consume" or charge.tenant_id != tenant.id:
        raise NotFound(
            f"no consumption with idempotency key {key!r} for tenant {tenant.slug!r}.",
            hint=f"Look it up with: qml credits history {tenant.slug}",
        )
    account = ledger_settle.prepare(session, tenant, now).account
    previous = session.scalar(
        select(MlUsageHistory).where(MlUsageHistory.idempotency_key == f"refund:{key}")
    )
    if previous is not None:
        return {
            "tenant": tenant.slug,
            "idempotency_key": key,
            "refunded": previous.credits,
            "charged": -charge.credits,
            "balance_after": previous.balance_after,
            "replayed": True,
        }
    hold_id = charge.context.get("hold_id")
    if hold_id is not None:
        hold = session.get(MlCreditHold, hold_id)
        if hold.status != "committed":
            raise Conflict(
                f"the charge {key!r} is a credit hold that is {hold.status}.",
                hint="Only committed holds can be refunded; release a pending "
                "one instead.",
            )
    restored = ledger.restore(session, account, charge.buckets, charge.created_at, now)
    entry = ledger.append_entry(
        session,
        tenant,
        account,
        kind="refund",
        operation=charge.operation,
        buckets=restored,
        now=now,
        idempotency_key=f"refund:{key}",
        context={"reason": reason, "refunds": charge.id, "charged": -charge.credits},
    )
    return {
        "tenant": tenant.slug,
        "idempotency_key": key,
        "refunded": entry.credits,
        "charged": -charge.credits,
        "balance_after": entry.balance_after,
        "replayed": False,
    }
