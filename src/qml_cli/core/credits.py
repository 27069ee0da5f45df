"""Credit operations: consume, grant, reserve/commit/release, refund, plan change,
monthly reset and expiry. Each runs inside the caller's transaction with the
tenant's account locked, and writes nothing when it raises."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field
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
from qml_cli.core.tenants import get_plan
from qml_cli.errors import Conflict, InsufficientCredits, InvalidInput, NotFound


@dataclass
class Charge:
    """The outcome of a consumption or reservation, as stored in the ledger."""

    tenant: str
    operation: str
    amount: int
    charged: int
    balance_after: int
    buckets: dict[str, int]
    idempotency_key: str
    ledger_id: int
    replayed: bool = False
    hold_id: int | None = None
    credits_enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _settings(session: Session) -> dict[str, Any]:
    from qml_cli.core.flags import effective_settings

    return effective_settings(session)


def _prepare(session: Session, tenant: Tenant, now: dt.datetime) -> MlCredits:
    account = ledger.lock_account(session, tenant)
    ledger.settle(session, tenant, account, now,
                  resets_enabled=_settings(session)["MONTHLY_RESET_ENABLED"])
    return account


def _replay(session: Session, tenant: Tenant, key: str, amount: int,
            operation: str) -> Charge | None:
    entry = session.scalar(select(MlUsageHistory).where(
        MlUsageHistory.idempotency_key == key))
    if entry is None:
        return None
    original = entry.context.get("amount", -entry.credits)
    if entry.tenant_id != tenant.id or entry.kind != "consume" or original != amount \
            or entry.operation != operation:
        owner = session.get(Tenant, entry.tenant_id)
        raise Conflict(
            f"idempotency key {key!r} was already used for {entry.operation} of "
            f"{original} credits by tenant {owner.slug!r}.",
            hint="Replay with the same tenant, operation and amount, or use a new key.")
    return Charge(tenant=tenant.slug, operation=entry.operation, amount=original,
                  charged=-entry.credits, balance_after=entry.balance_after,
                  buckets=entry.buckets, idempotency_key=key, ledger_id=entry.id,
                  replayed=True, hold_id=entry.context.get("hold_id"),
                  credits_enabled=not entry.context.get("credits_disabled", False))


def _charge(session: Session, tenant: Tenant, amount: int, *, operation: str, key: str,
            now: dt.datetime, context: dict[str, Any] | None,
            hold_seconds: float | None) -> Charge:
    ledger.validate_amount(amount)
    ledger.validate_key(key)
    if tenant.status != "active":
        raise InvalidInput(f"tenant {tenant.slug!r} is {tenant.status}.",
                           hint=f"Enable it first, or check with: qml tenants show {tenant.slug}")
    replayed = _replay(session, tenant, key, amount, operation)
    if replayed:
        return replayed
    account = _prepare(session, tenant, now)
    replayed = _replay(session, tenant, key, amount, operation)  # a racer committed first
    if replayed:
        return replayed

    enabled = _settings(session)["ML_CREDITS_ENABLED"]
    cost = amount if enabled else 0
    available = ledger.balance(account)
    if cost > available:
        raise InsufficientCredits(
            f"tenant {tenant.slug!r} has {available} credits available, {operation} needs "
            f"{cost}.", available=available, required=cost)
    buckets = ledger.draw(session, tenant, account, cost, now) if cost else {}
    context = {**(context or {}), "amount": amount}
    if not enabled:
        context["credits_disabled"] = True
    hold = None
    if hold_seconds is not None:
        hold = MlCreditHold(tenant_id=tenant.id, operation=operation, amount=cost,
                            idempotency_key=key, status="pending", created_at=now,
                            expires_at=now + dt.timedelta(seconds=hold_seconds))
        session.add(hold)
        session.flush()
        account.held += cost
        context["hold_id"] = hold.id
    entry = ledger.append_entry(session, tenant, account, kind="consume", operation=operation,
                                buckets=buckets, now=now, idempotency_key=key,
                                context=context)
    return Charge(tenant=tenant.slug, operation=operation, amount=amount, charged=cost,
                  balance_after=entry.balance_after, buckets=entry.buckets,
                  idempotency_key=key, ledger_id=entry.id,
                  hold_id=hold.id if hold else None, credits_enabled=enabled)


def consume(session: Session, tenant: Tenant, amount: int, *, operation: str, key: str,
            now: dt.datetime | None = None, context: dict[str, Any] | None = None) -> Charge:
    """Charge `amount` once per `key`; raise `InsufficientCredits` (exit 3) if the
    balance is short and `Conflict` (exit 2) if the key was used differently."""
    return _charge(session, tenant, amount, operation=operation, key=key,
                   now=now or clock.now(), context=context, hold_seconds=None)


def reserve(session: Session, tenant: Tenant, amount: int, *, operation: str, key: str,
            timeout_s: float, now: dt.datetime | None = None,
            context: dict[str, Any] | None = None) -> Charge:
    """Take `amount` into a pending hold that `commit_hold` keeps and
    `release_hold` (or the timeout, through `credits expire`) gives back."""
    if timeout_s <= 0:
        raise InvalidInput(f"invalid hold timeout {timeout_s!r} s.", hint="Use a positive number.")
    return _charge(session, tenant, amount, operation=operation, key=key,
                   now=now or clock.now(), context=context, hold_seconds=timeout_s)


def _pending_hold(session: Session, hold_id: int) -> tuple[Tenant, MlCredits, MlCreditHold]:
    hold = session.get(MlCreditHold, hold_id)
    if hold is None:
        raise NotFound(f"credit hold {hold_id} not found.")
    tenant = session.get(Tenant, hold.tenant_id)
    account = ledger.lock_account(session, tenant)
    session.refresh(hold)
    return tenant, account, hold


def commit_hold(session: Session, hold_id: int, now: dt.datetime | None = None) -> MlCreditHold:
    """Keep a pending hold's credits as spent. A hold that already timed out is
    released instead and `Conflict` is raised, so no work is charged late."""
    now = now or clock.now()
    tenant, account, hold = _pending_hold(session, hold_id)
    if hold.status == "committed":
        return hold
    if hold.status != "pending":
        raise Conflict(f"credit hold {hold_id} is {hold.status}; it cannot be committed.")
    if hold.expires_at <= now:
        ledger.release(session, tenant, account, hold, reason="hold timed out",
                       status="expired", now=now)
        raise Conflict(f"credit hold {hold_id} timed out at {hold.expires_at.isoformat()}.",
                       hint="Raise ML_TIMEOUT if the work needs longer.")
    hold.status, hold.resolved_at = "committed", now
    account.held -= hold.amount
    session.flush()
    return hold


def release_hold(session: Session, hold_id: int, *, reason: str,
                 now: dt.datetime | None = None) -> MlCreditHold:
    """Give a pending hold's credits back; a no-op for a hold already released."""
    now = now or clock.now()
    tenant, account, hold = _pending_hold(session, hold_id)
    if hold.status in ("released", "expired"):
        return hold
    if hold.status != "pending":
        raise Conflict(f"credit hold {hold_id} is {hold.status}; it cannot be released.")
    ledger.release(session, tenant, account, hold, reason=reason, status="released", now=now)
    return hold


def derive_grant_key(slug: str, amount: int, reason: str, expires: dt.datetime | None,
                     priority: int, now: dt.datetime) -> str:
    """Derive a key from the arguments and the current minute, so that a script
    retried within the minute grants once."""
    text = "|".join([slug, str(amount), reason, expires.isoformat() if expires else "",
                     str(priority), now.strftime("%Y-%m-%dT%H:%M")])
    return "grant-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def grant(session: Session, tenant: Tenant, amount: int, *, reason: str, key: str,
          expires_at: dt.datetime | None = None, priority: int = 100,
          effective_at: dt.datetime | None = None,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """Add a grant bucket once per `key`; return it with `replayed` set on a repeat."""
    now = now or clock.now()
    ledger.validate_amount(amount)
    ledger.validate_key(key)
    if not reason or not reason.strip() or len(reason) > 500:
        raise InvalidInput("a grant needs a --reason of 1-500 characters.",
                           hint='e.g. --reason "support ticket 118"')
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 1000:
        raise InvalidInput(f"invalid priority {priority!r}.", hint="Use 0-1000; lower burns first.")
    if expires_at is not None and expires_at <= now:
        raise InvalidInput(f"expiry {expires_at.isoformat()} is not in the future.",
                           hint="Pass a later --expires date.")
    existing = session.scalar(select(MlCreditGrant).where(MlCreditGrant.idempotency_key == key))
    if existing is None:
        account = _prepare(session, tenant, now)
        existing = session.scalar(select(MlCreditGrant).where(
            MlCreditGrant.idempotency_key == key))
    if existing is not None:
        if existing.tenant_id != tenant.id or existing.amount != amount:
            raise Conflict(f"idempotency key {key!r} was already used for another grant.",
                           hint="Use a new key for a different grant.")
        return {**_grant_dict(existing), "tenant": tenant.slug, "replayed": True}
    row = MlCreditGrant(tenant_id=tenant.id, amount=amount, remaining=amount, priority=priority,
                        reason=reason.strip(), effective_at=effective_at or now,
                        expires_at=expires_at, idempotency_key=key, created_at=now)
    session.add(row)
    session.flush()
    account.grant_remaining += amount
    ledger.append_entry(session, tenant, account, kind="grant", operation="grant",
                        buckets={f"grant:{row.id}": amount}, now=now,
                        idempotency_key=f"grant:{key}",
                        context={"reason": row.reason, "grant_id": row.id})
    return {**_grant_dict(row), "tenant": tenant.slug, "replayed": False}


def _grant_dict(row: MlCreditGrant) -> dict[str, Any]:
    return {"grant_id": row.id, "amount": row.amount, "remaining": row.remaining,
            "priority": row.priority, "reason": row.reason, "expires_at": row.expires_at,
            "idempotency_key": row.idempotency_key}


def refund(session: Session, tenant: Tenant, key: str, *, reason: str | None = None,
           now: dt.datetime | None = None) -> dict[str, Any]:
    """Return what the consumption with `key` took, to its buckets, once.

    Shares of buckets that have expired since (a past period's allowance, an
    expired grant) are not restored; the result says how much was."""
    now = now or clock.now()
    ledger.validate_key(key)
    charge = session.scalar(select(MlUsageHistory).where(MlUsageHistory.idempotency_key == key))
    if charge is None or charge.kind != "consume" or charge.tenant_id != tenant.id:
        raise NotFound(f"no consumption with idempotency key {key!r} for tenant "
                       f"{tenant.slug!r}.", hint=f"Look it up with: qml credits history "
                                                 f"{tenant.slug}")
    account = _prepare(session, tenant, now)
    previous = session.scalar(select(MlUsageHistory).where(
        MlUsageHistory.idempotency_key == f"refund:{key}"))
    if previous is not None:
        return {"tenant": tenant.slug, "idempotency_key": key, "refunded": previous.credits,
                "charged": -charge.credits, "balance_after": previous.balance_after,
                "replayed": True}
    hold_id = charge.context.get("hold_id")
    if hold_id is not None:
        hold = session.get(MlCreditHold, hold_id)
        if hold.status != "committed":
            raise Conflict(f"the charge {key!r} is a hold that is {hold.status}.",
                           hint="Only committed charges can be refunded.")
    restored = ledger.restore(session, account, charge.buckets, charge.created_at, now)
    entry = ledger.append_entry(session, tenant, account, kind="refund",
                                operation=charge.operation, buckets=restored, now=now,
                                idempotency_key=f"refund:{key}",
                                context={"reason": reason, "refunds": charge.id,
                                         "charged": -charge.credits})
    return {"tenant": tenant.slug, "idempotency_key": key, "refunded": entry.credits,
            "charged": -charge.credits, "balance_after": entry.balance_after,
            "replayed": False}


def set_plan(session: Session, tenant: Tenant, plan_name: str, *, effective: str,
             now: dt.datetime | None = None) -> dict[str, Any]:
    """Change the tenant's plan now or from the next period.

    With `now`, this period's allowance becomes the new plan's allowance minus what
    was used of it this period (at least 0); a downgrade never refills."""
    now = now or clock.now()
    if effective not in ("now", "next-period"):
        raise InvalidInput(f"invalid --effective {effective!r}.", hint="Use now or next-period.")
    plan = get_plan(session, plan_name)
    account = _prepare(session, tenant, now)
    old = session.get(SubscriptionPlan, tenant.plan_id)
    if effective == "next-period":
        tenant.pending_plan_id = plan.id if plan.id != tenant.plan_id else None
        session.flush()
        return {"tenant": tenant.slug, "plan": old.name, "pending_plan": plan.name,
                "effective_at": account.period_end}
    new_remaining = max(0, plan.monthly_ml_credits - account.used_this_period)
    delta = new_remaining - account.allowance_remaining
    tenant.plan_id, tenant.pending_plan_id = plan.id, None
    account.allowance = plan.monthly_ml_credits
    account.allowance_remaining = new_remaining
    ledger.append_entry(session, tenant, account, kind="plan_change", operation="plan_change",
                        buckets={ledger.ALLOWANCE: delta}, now=now,
                        context={"from": old.name, "to": plan.name})
    return {"tenant": tenant.slug, "plan": plan.name, "previous_plan": old.name,
            "allowance_remaining": new_remaining, "change": delta, "effective_at": now}


def reset_monthly(session_factory, *, now: dt.datetime | None = None,
                  dry_run: bool = False) -> dict[str, Any]:
    """Reset every tenant whose period has ended, catching up missed months.

    Each tenant runs in its own transaction with its account locked, so two
    concurrent runs write one reset per tenant and period."""
    now = now or clock.now()
    with session_factory() as session:
        enabled = _settings(session)["MONTHLY_RESET_ENABLED"]
        due = session.execute(select(Tenant.id, Tenant.slug).join(
            MlCredits, MlCredits.tenant_id == Tenant.id).where(
            MlCredits.period_end <= now).order_by(Tenant.id)).all()
    report = {"enabled": enabled, "dry_run": dry_run, "checked_at": now, "due": len(due),
              "resets": []}
    if not enabled or dry_run:
        report["resets"] = [{"tenant": slug, "would_reset": True} for _, slug in due]
        return report
    for tenant_id, _slug in due:
        with session_factory() as session:
            tenant = session.get(Tenant, tenant_id)
            account = ledger.lock_account(session, tenant)
            report["resets"] += ledger.roll_periods(session, tenant, account, now)
    return report


def expire_all(session_factory, *, now: dt.datetime | None = None) -> dict[str, int]:
    """End expired grants and release timed-out holds for every tenant."""
    now = now or clock.now()
    with session_factory() as session:
        grant_tenants = set(session.scalars(select(MlCreditGrant.tenant_id).where(
            MlCreditGrant.expired.is_(False), MlCreditGrant.expires_at <= now)))
        hold_tenants = set(session.scalars(select(MlCreditHold.tenant_id).where(
            MlCreditHold.status == "pending", MlCreditHold.expires_at <= now)))
    totals = {"grants_expired": 0, "holds_released": 0, "tenants": 0}
    for tenant_id in sorted(grant_tenants | hold_tenants):
        with session_factory() as session:
            tenant = session.get(Tenant, tenant_id)
            account = ledger.lock_account(session, tenant)
            totals["grants_expired"] += ledger.expire_grants(session, tenant, account, now)
            totals["holds_released"] += ledger.expire_holds(session, tenant, account, now)
            totals["tenants"] += 1
    return totals
