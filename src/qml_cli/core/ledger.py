"""Ledger mechanics: account locks, bucket draws and restores, ledger rows.

Every change of a balance is one `ml_usage_history` row whose `buckets` field records
which buckets (`allowance`, `grant:ID`) it moved. The cached balances in
`ml_credits` and `ml_credit_grants.remaining` always equal the sums of those
rows, and `qml credits audit` checks it. Callers hold the account lock
(`lock_account`) for the whole transaction, so concurrent writers of one tenant
are serialised: `SELECT ... FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.

Period roll-over and expiry live in `ledger_settle`. The allowance bucket keeps
`allowance_remaining = max(0, allowance + carried - used_this_period)`, so a plan
change or a refund never refills more than the period's allowance.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Select, bindparam, select
from sqlalchemy.orm import Session

from qml_cli.core import clock
from qml_cli.core.logs import get_logger
from qml_cli.core.models import (
    FeatureFlag,
    MlCreditGrant,
    MlCredits,
    MlUsageHistory,
    SubscriptionPlan,
    Tenant,
)
from qml_cli.errors import InvalidInput

log = get_logger("ledger")
ALLOWANCE = "allowance"
# Idempotency keys of system rows start with these; callers may not use them.
RESERVED_PREFIXES = ("reset:", "expire:", "release:", "refund:", "grant:", "commit:")
MAX_AMOUNT = 1_000_000_000
FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.UTC)


def lock_account(session: Session, tenant: Tenant) -> MlCredits:
    """Return the tenant's credit account, locked until the transaction ends."""
    return lock_account_with_flags(session, tenant, ())[0]


def lock_account_with_flags(
    session: Session, tenant: Tenant, names: Sequence[str]
) -> tuple[MlCredits, dict[str, bool]]:
    """Lock the tenant's account and read the stored feature flags `names` in the
    same statement; return the account and the flags that are set."""
    statement = _lock_statement(session.get_bind().dialect.name, tuple(names))
    row = session.execute(statement, {"tenant_id": tenant.id}).one()
    stored = {name: value for name, value in zip(names, row[1:], strict=True)}
    return row[0], {
        name: bool(value) for name, value in stored.items() if value is not None
    }


@functools.cache
def _lock_statement(dialect: str, names: tuple[str, ...]) -> Select:
    """Build once the statement that locks an account and reads stored flags."""
    flags = [
        select(FeatureFlag.enabled).where(FeatureFlag.name == name).scalar_subquery()
        for name in names
    ]
    statement = select(MlCredits, *flags).where(
        MlCredits.tenant_id == bindparam("tenant_id")
    )
    if dialect == "postgresql":
        statement = statement.with_for_update(of=MlCredits)
    return statement.execution_options(populate_existing=True)


def balance(account: MlCredits) -> int:
    """Credits the tenant can spend now: allowance left plus active grants."""
    return account.allowance_remaining + account.grant_remaining


def allowance_target(account: MlCredits) -> int:
    """Return the allowance left that the period's figures imply (never negative)."""
    return max(0, account.allowance + account.carried - account.used_this_period)


def entry_values(
    tenant: Tenant,
    account: MlCredits,
    *,
    kind: str,
    operation: str,
    buckets: dict[str, int],
    now: dt.datetime,
    idempotency_key: str | None = None,
    success: bool = True,
    error: str | None = None,
    context: dict[str, Any] | None = None,
    processing_time_ms: float | None = None,
) -> dict[str, Any]:
    """Return the column values of one ledger row; `buckets` must already be
    applied to `account`, whose `updated_at` becomes `now`."""
    account.updated_at = now
    return {
        "tenant_id": tenant.id,
        "operation": operation,
        "kind": kind,
        "credits": sum(buckets.values()),
        "balance_after": balance(account),
        "buckets": {name: value for name, value in buckets.items() if value},
        "idempotency_key": idempotency_key,
        "processing_time_ms": processing_time_ms,
        "success": success,
        "error": error,
        "context": context or {},
        "created_at": now,
    }


def new_entry(tenant: Tenant, account: MlCredits, **fields: Any) -> MlUsageHistory:
    """Build one ledger row object (see `entry_values` for the fields)."""
    return MlUsageHistory(**entry_values(tenant, account, **fields))


def append_entry(
    session: Session, tenant: Tenant, account: MlCredits, **fields: Any
) -> MlUsageHistory:
    """Append and flush one ledger row (see `new_entry` for the fields)."""
    values = entry_values(tenant, account, **fields)
    entry = MlUsageHistory(**values)
    session.add(entry)
    session.flush()
    log_entry(values)
    return entry


def insert_entry_once(
    session: Session, tenant: Tenant, account: MlCredits, **fields: Any
) -> dict[str, Any] | None:
    """Insert one ledger row unless its idempotency key is taken; return its
    column values with its `id`, or None when the key exists.

    The insert (`ON CONFLICT DO NOTHING RETURNING id`) runs on the session's
    connection without flushing the session first, so that a caller can discard
    its unflushed account changes when the key turns out to be a replay."""
    values = entry_values(tenant, account, **fields)
    statement = insert_once_statement(session.get_bind().dialect.name)
    values["id"] = session.connection().execute(statement, values).scalar()
    if values["id"] is None:
        return None
    log_entry(values)
    return values


@functools.cache
def insert_once_statement(dialect: str) -> Insert:
    """Build once the Core insert of a ledger row that skips a taken key."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = MlUsageHistory.__table__
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(table.c.id)
    )


# The columns a ledger row is inserted with (the id comes from the database).
ENTRY_COLUMNS = (
    "tenant_id",
    "operation",
    "kind",
    "credits",
    "balance_after",
    "buckets",
    "idempotency_key",
    "processing_time_ms",
    "success",
    "error",
    "context",
    "created_at",
)


def log_entry(values: dict[str, Any]) -> None:
    """Log one ledger row given its column values."""
    log.info(
        "ledger entry",
        extra={
            "operation": values["operation"],
            "tenant_id": values["tenant_id"],
            "credits_used": -values["credits"] if values["kind"] == "consume" else 0,
            "success": values["success"],
            "processing_time": values["processing_time_ms"],
        },
    )


def burn_order(grant: MlCreditGrant) -> tuple:
    """Sort key of grants: priority (lower first), soonest expiry (none last),
    oldest."""
    return (grant.priority, grant.expires_at or FAR_FUTURE, grant.created_at, grant.id)


def active_grants(session: Session, tenant: Tenant) -> list[MlCreditGrant]:
    """Grants whose credits are in the balance and not used up, in burn order.

    Grants past their expiry are included until `end_grants` marks them."""
    grants = session.scalars(
        select(MlCreditGrant).where(
            MlCreditGrant.tenant_id == tenant.id,
            MlCreditGrant.expired.is_(False),
            MlCreditGrant.activated_at.is_not(None),
            MlCreditGrant.remaining > 0,
        )
    ).all()
    return sorted(grants, key=burn_order)


def draw(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    amount: int,
    now: dt.datetime,
    grants: list[MlCreditGrant] | None = None,
) -> dict[str, int]:
    """Take `amount` from the allowance, then the grants in burn order; return the
    signed share of each bucket. The caller checked that the balance suffices and,
    when it passes `grants`, that they are settled at `now` and in burn order."""
    buckets: dict[str, int] = {}
    take = min(amount, account.allowance_remaining)
    if take:
        account.allowance_remaining -= take
        account.used_this_period += take
        buckets[ALLOWANCE] = -take
    rest = amount - take
    if rest and grants is None:
        grants = [
            grant
            for grant in active_grants(session, tenant)
            if grant.expires_at is None or grant.expires_at > now
        ]
    for grant in grants or ():
        if rest == 0:
            break
        take = min(rest, grant.remaining)
        if take == 0:
            continue
        grant.remaining -= take
        account.grant_remaining -= take
        buckets[f"grant:{grant.id}"] = -take
        rest -= take
    if rest:
        raise AssertionError(f"draw of {amount} exceeded the balance by {rest}")
    return buckets


def restore(
    session: Session,
    account: MlCredits,
    drawn: dict[str, int],
    drawn_at: dt.datetime,
    now: dt.datetime,
) -> dict[str, int]:
    """Give back what a draw took, to the same buckets; return the signed shares.

    The allowance share returns only while the period it came from lasts, and then
    only up to the period's allowance (after a downgrade, less than was drawn). A
    grant's share returns only while the grant is live, so nothing expired comes back.
    """
    restored: dict[str, int] = {}
    for name, value in drawn.items():
        amount = -int(value)
        if amount <= 0:
            continue
        if name == ALLOWANCE:
            if drawn_at < account.period_start:
                continue
            account.used_this_period -= amount
            target = allowance_target(account)
            if target != account.allowance_remaining:
                restored[name] = target - account.allowance_remaining
                account.allowance_remaining = target
            continue
        grant = session.get(MlCreditGrant, int(name.split(":", 1)[1]))
        if (
            grant is None
            or grant.expired
            or (grant.expires_at and grant.expires_at <= now)
        ):
            continue
        grant.remaining += amount
        account.grant_remaining += amount
        restored[name] = amount
    return restored


def open_account(
    session: Session, tenant: Tenant, plan: SubscriptionPlan, now: dt.datetime
) -> MlCredits:
    """Open the tenant's account for the current period with the plan's allowance."""
    start, end = clock.month_period(now, tenant.timezone)
    account = MlCredits(
        tenant_id=tenant.id,
        period_start=start,
        period_end=end,
        allowance=plan.monthly_ml_credits,
        allowance_remaining=plan.monthly_ml_credits,
        grant_remaining=0,
        held=0,
        used_this_period=0,
        carried=0,
        updated_at=now,
    )
    session.add(account)
    session.flush()
    append_entry(
        session,
        tenant,
        account,
        kind="reset",
        operation="period_open",
        buckets={ALLOWANCE: plan.monthly_ml_credits},
        now=now,
        idempotency_key=reset_key(tenant, start),
        context={
            "plan": plan.name,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
        },
    )
    return account


def reset_key(tenant: Tenant, period_start: dt.datetime) -> str:
    """Return the unique key of a period's reset row, so each period resets once."""
    return f"reset:{tenant.id}:{period_start:%Y-%m-%dT%H:%MZ}"


def validate_amount(amount: Any, name: str = "amount") -> int:
    """Return `amount` if it is a whole number of credits in 1..MAX_AMOUNT."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise InvalidInput(
            f"invalid {name} {amount!r}.",
            hint="Credits are whole numbers of 1 or more.",
        )
    if amount > MAX_AMOUNT:
        raise InvalidInput(
            f"{name} {amount} is too large.",
            hint=f"Use at most {MAX_AMOUNT} credits in one operation.",
        )
    return amount


def validate_key(key: Any) -> str:
    """Return `key` if it is a usable idempotency key without a reserved prefix."""
    if (
        not isinstance(key, str)
        or not key.strip()
        or len(key) > 150
        or not key.isprintable()
    ):
        raise InvalidInput(
            f"invalid idempotency key {key!r}.",
            hint="Use 1-150 printable characters that identify the operation.",
        )
    if key.startswith(RESERVED_PREFIXES):
        raise InvalidInput(
            f"idempotency key {key!r} uses a reserved prefix.",
            hint="Keys may not start with " + ", ".join(RESERVED_PREFIXES) + ".",
        )
    return key


def validate_operation(operation: Any) -> str:
    """Return `operation` if it is 1-64 printable characters."""
    if (
        not isinstance(operation, str)
        or not operation.strip()
        or len(operation) > 64
        or not operation.isprintable()
    ):
        raise InvalidInput(
            f"invalid operation {operation!r}.",
            hint="Use 1-64 printable characters, e.g. prediction.",
        )
    return operation
