"""Credit operations: consume (single and batch), reserve/commit/release, refund.

Each runs inside the caller's transaction with the tenant's account locked, and
writes nothing when it raises (the caller's transaction rolls back). Grants and
plan changes (`credit_changes`) and the jobs over every tenant (`credit_jobs`) are
re-exported here, so `credits` is the one module callers import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from qml_cli.core import clock, ledger, ledger_fast, ledger_settle
from qml_cli.core.credit_changes import derive_grant_key, grant, refund, set_plan
from qml_cli.core.credit_holds import commit_hold, release_hold
from qml_cli.core.credit_jobs import expire_all, reset_monthly
from qml_cli.core.models import MlCreditHold, MlCredits, MlUsageHistory, Tenant
from qml_cli.errors import Conflict, InsufficientCredits, InvalidInput

__all__ = [
    "Charge",
    "ChargeItem",
    "commit_hold",
    "consume",
    "consume_batch",
    "derive_grant_key",
    "expire_all",
    "grant",
    "refund",
    "release_hold",
    "reserve",
    "reset_monthly",
    "set_plan",
]


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


@dataclass(frozen=True)
class ChargeItem:
    """One charge of `consume_batch`, with its own idempotency key."""

    amount: int
    operation: str
    key: str
    context: dict[str, Any] | None = None
    processing_time_ms: float | None = None


def _check_active(tenant: Tenant) -> None:
    if tenant.status != "active":
        raise InvalidInput(
            f"tenant {tenant.slug!r} is {tenant.status}.",
            hint=f"Enable it first, or check with: qml tenants show {tenant.slug}",
        )


def _replayed(
    session: Session,
    tenant: Tenant,
    entry: MlUsageHistory,
    amount: int,
    operation: str,
    held: bool,
) -> Charge:
    """Return the stored charge `entry` again, or raise `Conflict` if the request
    differs from it in tenant, operation, amount or reservation."""
    original = entry.context.get("amount", -entry.credits)
    was_held = "hold_id" in entry.context
    if (
        entry.tenant_id != tenant.id
        or entry.kind != "consume"
        or original != amount
        or entry.operation != operation
        or was_held != held
    ):
        owner = session.get(Tenant, entry.tenant_id)
        what = "reservation" if was_held else "consumption"
        raise Conflict(
            f"idempotency key {entry.idempotency_key!r} was already used for a {what} "
            f"({entry.operation}) of {original} credits by tenant {owner.slug!r}.",
            hint="Replay with the same tenant, operation and amount, or use a new key.",
        )
    return Charge(
        tenant=tenant.slug,
        operation=entry.operation,
        amount=original,
        charged=-entry.credits,
        balance_after=entry.balance_after,
        buckets=entry.buckets,
        idempotency_key=entry.idempotency_key,
        ledger_id=entry.id,
        replayed=True,
        hold_id=entry.context.get("hold_id"),
        credits_enabled=not entry.context.get("credits_disabled", False),
    )


def _shortfall(tenant: Tenant, available: int, cost: int, operation: str):
    return InsufficientCredits(
        f"tenant {tenant.slug!r} has {available} credits available, {operation} needs "
        f"{cost}.",
        available=available,
        required=cost,
    )


def _charge(
    session: Session,
    tenant: Tenant,
    amount: int,
    *,
    operation: str,
    key: str,
    now: dt.datetime,
    context: dict[str, Any] | None,
    hold_seconds: float | None,
    processing_time_ms: float | None,
) -> Charge:
    ledger.validate_amount(amount)
    ledger.validate_key(key)
    ledger.validate_operation(operation)
    held = hold_seconds is not None
    if not held:
        fast = ledger_fast.try_consume(
            session,
            tenant,
            amount,
            operation=operation,
            key=key,
            now=now,
            context=context,
            processing_time_ms=processing_time_ms,
        )
        if fast is not None:
            return _new_charge(tenant, amount, fast[0], hold_id=None, enabled=fast[1])
    locked = ledger_settle.prepare(session, tenant, now)
    account = locked.account
    cost = amount if locked.credits_enabled else 0
    if held or tenant.status != "active" or cost > ledger.balance(account):
        # Looked up under the lock, so a racer with the same key has committed.
        entry = _stored_charges(session, [key]).get(key)
        if entry is not None:
            return _replayed(session, tenant, entry, amount, operation, held)
    _check_active(tenant)
    if cost > ledger.balance(account):
        raise _shortfall(tenant, ledger.balance(account), cost, operation)

    buckets = ledger.draw(session, tenant, account, cost, now, locked.grants)
    context = {**(context or {}), "amount": amount}
    if not locked.credits_enabled:
        context["credits_disabled"] = True
    fields = dict(
        kind="consume",
        operation=operation,
        buckets=buckets,
        now=now,
        idempotency_key=key,
        context=context,
        processing_time_ms=processing_time_ms,
    )
    hold = (
        _open_hold(session, tenant, account, cost, now, hold_seconds, fields)
        if held
        else None
    )
    if held:
        row = ledger.append_entry(session, tenant, account, **fields)
        entry = {name: getattr(row, name) for name in ("id", *ledger.ENTRY_COLUMNS)}
    else:
        entry = ledger.insert_entry_once(session, tenant, account, **fields)
    if entry is None:
        # The key was taken after all (the rows are unique, not only the lookup):
        # drop this draw, which was never flushed, and return the stored charge.
        for changed in (account, *locked.grants):
            session.expire(changed)
        stored = _stored_charges(session, [key])[key]
        return _replayed(session, tenant, stored, amount, operation, held)
    return _new_charge(
        tenant,
        amount,
        entry,
        hold_id=hold.id if hold else None,
        enabled=locked.credits_enabled,
    )


def _new_charge(
    tenant: Tenant,
    amount: int,
    entry: dict[str, Any],
    *,
    hold_id: int | None,
    enabled: bool,
) -> Charge:
    """Build the result of a new charge from its ledger row's column values."""
    return Charge(
        tenant=tenant.slug,
        operation=entry["operation"],
        amount=amount,
        charged=-entry["credits"],
        balance_after=entry["balance_after"],
        buckets=entry["buckets"],
        idempotency_key=entry["idempotency_key"],
        ledger_id=entry["id"],
        hold_id=hold_id,
        credits_enabled=enabled,
    )


def _open_hold(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    cost: int,
    now: dt.datetime,
    hold_seconds: float,
    fields: dict[str, Any],
) -> MlCreditHold:
    """Add the pending hold of a reservation and note it in the row's context."""
    hold = MlCreditHold(
        tenant_id=tenant.id,
        operation=fields["operation"],
        amount=cost,
        idempotency_key=fields["idempotency_key"],
        status="pending",
        created_at=now,
        expires_at=now + dt.timedelta(seconds=hold_seconds),
    )
    session.add(hold)
    session.flush()
    account.held += cost
    fields["context"]["hold_id"] = hold.id
    return hold


def consume(
    session: Session,
    tenant: Tenant,
    amount: int,
    *,
    operation: str,
    key: str,
    now: dt.datetime | None = None,
    context: dict[str, Any] | None = None,
    processing_time_ms: float | None = None,
) -> Charge:
    """Charge `amount` once per `key`; raise `InsufficientCredits` (exit 3) if the
    balance is short and `Conflict` (exit 2) if the key was used differently."""
    return _charge(
        session,
        tenant,
        amount,
        operation=operation,
        key=key,
        now=now or clock.now(),
        context=context,
        hold_seconds=None,
        processing_time_ms=processing_time_ms,
    )


def consume_batch(
    session: Session,
    tenant: Tenant,
    items: Sequence[ChargeItem],
    *,
    now: dt.datetime | None = None,
) -> list[Charge]:
    """Charge many items of one tenant in one transaction, each once per its key.

    All or nothing: `InsufficientCredits` if the new items together exceed the
    balance, `Conflict` if a key was used differently (also within `items`).
    Returns one `Charge` an item, in order; replays are marked `replayed`."""
    now = now or clock.now()
    for item in items:
        ledger.validate_amount(item.amount)
        ledger.validate_key(item.key)
        ledger.validate_operation(item.operation)
    locked = ledger_settle.prepare(session, tenant, now)
    stored = _stored_charges(session, [item.key for item in items])
    fresh: dict[str, ChargeItem] = {}
    for item in items:
        if item.key not in stored and item.key not in fresh:
            fresh[item.key] = item
    if fresh:
        _check_active(tenant)
    account = locked.account
    factor = 1 if locked.credits_enabled else 0
    cost = sum(item.amount for item in fresh.values()) * factor
    if cost > ledger.balance(account):
        raise _shortfall(tenant, ledger.balance(account), cost, "the batch")

    rows = []
    for item in fresh.values():
        buckets = (
            ledger.draw(
                session, tenant, account, item.amount * factor, now, locked.grants
            )
            if factor
            else {}
        )
        context = {**(item.context or {}), "amount": item.amount}
        if not factor:
            context["credits_disabled"] = True
        entry = ledger.new_entry(
            tenant,
            account,
            kind="consume",
            operation=item.operation,
            buckets=buckets,
            now=now,
            idempotency_key=item.key,
            context=context,
            processing_time_ms=item.processing_time_ms,
        )
        rows.append({column: getattr(entry, column) for column in ledger.ENTRY_COLUMNS})
    if rows:
        statement = insert(MlUsageHistory).returning(
            MlUsageHistory.id, sort_by_parameter_order=True
        )
        ids = session.scalars(statement, rows).all()
        for row, ledger_id in zip(rows, ids, strict=True):
            stored[row["idempotency_key"]] = _row_entry(row, ledger_id)
    ledger.log.info(
        "ledger batch",
        extra={
            "operation": "consume_batch",
            "tenant_id": tenant.id,
            "credits_used": cost,
        },
    )

    charges = []
    first = {row["idempotency_key"] for row in rows}
    for item in items:
        charge = _replayed(
            session, tenant, stored[item.key], item.amount, item.operation, held=False
        )
        if item.key in first:
            first.discard(item.key)
            charge.replayed = False
        charges.append(charge)
    return charges


def _row_entry(row: dict[str, Any], ledger_id: int) -> MlUsageHistory:
    entry = MlUsageHistory(**row)
    entry.id = ledger_id
    return entry


def _stored_charges(session: Session, keys: list[str]) -> dict[str, MlUsageHistory]:
    stored: dict[str, MlUsageHistory] = {}
    unique = sorted(set(keys))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        for entry in session.scalars(
            select(MlUsageHistory).where(MlUsageHistory.idempotency_key.in_(chunk))
        ):
            stored[entry.idempotency_key] = entry
    return stored


def reserve(
    session: Session,
    tenant: Tenant,
    amount: int,
    *,
    operation: str,
    key: str,
    timeout_s: float,
    now: dt.datetime | None = None,
    context: dict[str, Any] | None = None,
) -> Charge:
    """Take `amount` into a pending hold that `commit_hold` keeps and `release_hold`
    (or the timeout, through `credits expire` or the next write) gives back."""
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not 0 < timeout_s <= 86_400 * 7
    ):
        raise InvalidInput(
            f"invalid hold timeout {timeout_s!r} s.",
            hint="Use a positive number of seconds, at most 7 days.",
        )
    return _charge(
        session,
        tenant,
        amount,
        operation=operation,
        key=key,
        now=now or clock.now(),
        context=context,
        hold_seconds=timeout_s,
        processing_time_ms=None,
    )
